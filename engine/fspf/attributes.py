"""Who owns a protected entry, and what extended attributes it carries: sealed, then checked.

Content and mode are not all that decides what a file can do. Its owner decides who may change or run
it as themselves, ``security.capability`` grants privilege to whoever executes it (``setcap
cap_net_raw+ep``), ACLs (``system.posix_acl_*``) grant access, and ``user.*`` attributes are read by
programs. Every protected entry therefore seals its owner, its group and its extended attributes, and
verification refuses any difference by name: one attribute more, one less or one changed.

Labels the *host* assigns are the exception: an SELinux, AppArmor or Smack label is given to a
container's files by the machine's security policy, and IMA/EVM values by the machine's integrity
policy. They restrict, grant nothing the image could choose, and differ from host to host, so they are
neither sealed nor checked. ``trusted.*`` attributes are left out too: only a process with
``CAP_SYS_ADMIN`` on the host sees them at all, so whether they are there depends on who looks, and no
program in a container can be told anything by them.
"""

from __future__ import annotations

import errno
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import IntegrityError

CAPABILITY = "security.capability"

HOST_ASSIGNED = frozenset(
    {
        "security.selinux",
        "security.apparmor",
        "security.SMACK64",
        "security.SMACK64EXEC",
        "security.SMACK64MMAP",
        "security.SMACK64TRANSMUTE",
        "security.ima",
        "security.evm",
    }
)
"""Extended attributes set by the host's security modules, not by the image."""

_HOST_ONLY_NAMESPACE = "trusted."


def host_assigned(name: str) -> bool:
    """An attribute that is the host's business, not the image's: never sealed, never checked."""
    return name in HOST_ASSIGNED or name.startswith(_HOST_ONLY_NAMESPACE)


_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}
"""What ``listxattr`` answers where a file system or a file type has no extended attributes."""


@dataclass(frozen=True)
class Attributes:
    """An entry's owner, group and the extended attributes the image gives it."""

    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    """Sorted by name; never one that is :func:`host_assigned`."""

    @staticmethod
    def of(uid: int, gid: int, xattrs: dict[str, bytes]) -> Attributes:
        kept = {name: value for name, value in xattrs.items() if not host_assigned(name)}
        return Attributes(uid, gid, tuple(sorted(kept.items())))


ROOT_OWNED = Attributes()
"""What a layer this software writes gives every entry: root's, without extended attributes."""


def read_xattrs(location: str | os.PathLike[str]) -> dict[str, bytes]:
    """The extended attributes of ``location`` itself (a link's own, not its target's), host labels
    left out; none where the file system keeps none."""
    try:
        names = _list(location)
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            return {}
        raise
    values: dict[str, bytes] = {}
    for name in names:
        if host_assigned(name):
            continue
        try:
            values[name] = _get(location, name)
        except OSError as error:
            if error.errno != errno.ENODATA:  # removed between the two calls: it is not there
                raise
    return values


def _list(location: str | os.PathLike[str]) -> list[str]:
    if hasattr(os, "listxattr"):
        return os.listxattr(location, follow_symlinks=False)
    return _LibcXattrs.instance().list(os.fsencode(location))


def _get(location: str | os.PathLike[str], name: str) -> bytes:
    if hasattr(os, "getxattr"):
        return os.getxattr(location, name, follow_symlinks=False)
    return _LibcXattrs.instance().get(os.fsencode(location), os.fsencode(name))


class _LibcXattrs:
    """``llistxattr``/``lgetxattr`` through the C library, for a Python built without them (CPython
    before 3.11.3 on musl, as in older Alpine images): the runtime must see the attributes of what it
    verifies, whatever Python the image has."""

    _instance: _LibcXattrs | None = None

    def __init__(self) -> None:
        try:
            import ctypes  # noqa: PLC0415 - only where os lacks the calls
        except ImportError:
            # Then nothing can tell whether a file gained a capability: refuse, rather than not look.
            raise IntegrityError(
                "Verification failed: this image's Python can read no extended attributes (it has "
                "neither os.listxattr nor ctypes), so a capability added to a file would go unseen"
            ) from None
        libc = ctypes.CDLL(None, use_errno=True)
        self._ctypes = ctypes
        self._list_call, self._get_call = libc.llistxattr, libc.lgetxattr
        for call in (self._list_call, self._get_call):
            call.restype = ctypes.c_ssize_t
        self._list_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        self._get_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]

    @classmethod
    def instance(cls) -> _LibcXattrs:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _sized(self, call: Callable[[Any, int], int], path: bytes) -> bytes:
        while True:  # ask for the size, then read; again if it grew in between
            size = self._checked(call(None, 0), path)
            buffer = self._ctypes.create_string_buffer(max(size, 1))
            try:
                length = self._checked(call(buffer, size), path)
            except OSError as error:
                if error.errno != errno.ERANGE:
                    raise
                continue
            return buffer.raw[:length]

    def _checked(self, result: int, path: bytes) -> int:
        if result < 0:
            number = self._ctypes.get_errno()
            raise OSError(number, os.strerror(number), os.fsdecode(path))
        return result

    def list(self, path: bytes) -> list[str]:
        names = self._sized(lambda buffer, size: self._list_call(path, buffer, size), path)
        return [os.fsdecode(name) for name in names.split(b"\x00") if name]

    def get(self, path: bytes, name: bytes) -> bytes:
        return self._sized(lambda buffer, size: self._get_call(path, name, buffer, size), path)


def read_attributes(location: str | os.PathLike[str], info: os.stat_result) -> Attributes:
    """The attributes of the entry at ``location`` as the disk has them (``info`` is its ``lstat``)."""
    return Attributes.of(info.st_uid, info.st_gid, read_xattrs(location))


def apply_attributes(location: str | os.PathLike[str], attributes: Attributes, is_link: bool) -> None:
    """Give ``location`` these attributes. Call it before setting the mode: changing the owner clears
    set-user-ID and set-group-ID bits, and the kernel removes ``security.capability`` with them."""
    info = os.lstat(location)
    if (info.st_uid, info.st_gid) != (attributes.uid, attributes.gid):
        os.chown(location, attributes.uid, attributes.gid, follow_symlinks=False)
    for name, value in attributes.xattrs:
        if is_link and name.startswith("user."):
            continue  # the kernel keeps no user.* attributes on links; none can have been read from one
        os.setxattr(location, name, value, follow_symlinks=False)


def check_attributes(path: str, kind: str, sealed: Attributes, found: Attributes) -> None:
    """Raise :class:`IntegrityError` naming the first difference between the sealed and found attributes."""
    if (found.uid, found.gid) != (sealed.uid, sealed.gid):
        raise IntegrityError(
            f"Verification of {path} failed: the {kind}'s owner changed "
            f"(sealed {sealed.uid}:{sealed.gid}, found {found.uid}:{found.gid})"
        )
    expected, present = dict(sealed.xattrs), dict(found.xattrs)
    for name in sorted(expected.keys() | present.keys()):
        if name not in present:
            change = "removed"
        elif name not in expected:
            change = "added"
        elif not hmac.compare_digest(expected[name], present[name]):
            change = "changed"
        else:
            continue
        raise IntegrityError(f"Verification of {path} failed: {_describe(name)} {change}")


def _describe(name: str) -> str:
    if name == CAPABILITY:
        return f"file capabilities ({CAPABILITY})"
    # Names come from the disk, which an attacker may have written: one printable line, always.
    return f"extended attribute {name if name.isprintable() else ascii(name)}"
