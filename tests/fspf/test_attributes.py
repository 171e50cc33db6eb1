"""Owners, groups and extended attributes of authenticated entries: sealed, and every change refused by
name — a file capability added to a binary is privilege the policy never measured."""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import (
    IntegrityError,
    Protection,
    Region,
    attributes,
    generate_key,
    metadata as metadata_module,
    protect_tree,
    verify_tree,
)
from pulumi_sconify.engine.fspf.attributes import CAPABILITY, Attributes
from pulumi_sconify.engine.fspf.metadata import Manifest, image_context, seal
from pulumi_sconify.engine.layout import FSPF_METADATA

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files other owners takes root")

NET_BIND_SERVICE = 10
NET_RAW = 13


def capability(*bits: int) -> bytes:
    """A ``security.capability`` value (VFS_CAP_REVISION_2, effective): the given permitted bits."""
    permitted = sum(1 << bit for bit in bits)
    return struct.pack("<IIIII", 0x02000001, permitted, 0, 0, 0)


def build(root: Path) -> Path:
    """A small tree whose authenticated entries have owners, groups and attributes of their own."""
    (root / "usr" / "bin").mkdir(parents=True)
    server = root / "usr" / "bin" / "server"
    server.write_bytes(b"\x7fELF a server that binds port 80\n")
    os.chown(server, 0, 0)
    server.chmod(0o755)
    os.setxattr(server, CAPABILITY, capability(NET_BIND_SERVICE))
    data = root / "usr" / "share"
    data.mkdir()
    os.chown(data, 1000, 1001)
    notes = data / "notes.txt"
    notes.write_text("owned by the application user\n")
    os.chown(notes, 1000, 1001)
    os.setxattr(notes, "user.origin", b"build 42")
    link = root / "usr" / "bin" / "srv"
    link.symlink_to("server")
    os.chown(link, 7, 8, follow_symlinks=False)
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text("print('encrypted, so written afresh at run time')\n")
    return root


REGIONS = [Region("/usr", Protection.AUTHENTICATED), Region("/code", Protection.ENCRYPTED)]


@pytest.fixture
def protected(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    key = generate_key()
    result = protect_tree(build(tmp_path / "source"), tmp_path / "out", key, REGIONS)
    return tmp_path / "out", key, result.tag


def test_owners_and_attributes_are_sealed_and_kept(tmp_path: Path) -> None:
    key = generate_key()
    result = protect_tree(build(tmp_path / "source"), tmp_path / "out", key, REGIONS)
    entries = result.manifest.entry_map()
    assert entries["/usr/bin/server"].attributes == Attributes(0, 0, ((CAPABILITY, capability(10)),))
    assert entries["/usr/share"].attributes == Attributes(1000, 1001)
    assert entries["/usr/share/notes.txt"].attributes == Attributes(
        1000, 1001, (("user.origin", b"build 42"),)
    )
    assert entries["/usr/bin/srv"].attributes == Attributes(7, 8)
    # The protected copy has them too (so it verifies), and the mode survives the change of owner.
    out = tmp_path / "out"
    assert os.getxattr(out / "usr/bin/server", CAPABILITY) == capability(NET_BIND_SERVICE)
    assert (out / "usr/bin/server").stat().st_mode & 0o7777 == 0o755
    assert (os.lstat(out / "usr/bin/srv").st_uid, os.lstat(out / "usr/bin/srv").st_gid) == (7, 8)
    verify_tree(out, key, result.tag)


def _chown(uid: int, gid: int) -> Callable[[Path], None]:
    return lambda location: os.chown(location, uid, gid, follow_symlinks=False)


TAMPERINGS: list[tuple[str, str, Callable[[Path], None], str]] = [
    (
        "owner of a file",
        "usr/share/notes.txt",
        _chown(0, 1001),
        "the file's owner changed (sealed 1000:1001, found 0:1001)",
    ),
    (
        "group of a file",
        "usr/share/notes.txt",
        _chown(1000, 0),
        "the file's owner changed (sealed 1000:1001, found 1000:0)",
    ),
    (
        "owner of a directory",
        "usr/share",
        _chown(0, 0),
        "the dir's owner changed (sealed 1000:1001, found 0:0)",
    ),
    ("owner of a link", "usr/bin/srv", _chown(0, 0), "the symlink's owner changed (sealed 7:8, found 0:0)"),
    (
        "capability added",
        "usr/share/notes.txt",
        lambda location: os.setxattr(location, CAPABILITY, capability(NET_RAW)),
        "file capabilities (security.capability) added",
    ),
    (
        "capability widened",
        "usr/bin/server",
        lambda location: os.setxattr(location, CAPABILITY, capability(NET_BIND_SERVICE, NET_RAW)),
        "file capabilities (security.capability) changed",
    ),
    (
        "capability removed",
        "usr/bin/server",
        lambda location: os.removexattr(location, CAPABILITY),
        "file capabilities (security.capability) removed",
    ),
    (
        "attribute added",
        "usr/bin/server",
        lambda location: os.setxattr(location, "user.mime_type", b"text/x-shellscript"),
        "extended attribute user.mime_type added",
    ),
    (
        "attribute changed",
        "usr/share/notes.txt",
        lambda location: os.setxattr(location, "user.origin", b"build 43"),
        "extended attribute user.origin changed",
    ),
    (
        "attribute removed",
        "usr/share/notes.txt",
        lambda location: os.removexattr(location, "user.origin"),
        "extended attribute user.origin removed",
    ),
    (
        "attribute on a directory",
        "usr/share",
        lambda location: os.setxattr(location, "user.added", b"1"),
        "extended attribute user.added added",
    ),
    (
        "attribute with an unprintable name",
        "usr/share",
        lambda location: os.setxattr(location, "user.a\nFATAL forged", b"1"),
        "extended attribute 'user.a\\nFATAL forged' added",
    ),
]


@pytest.mark.parametrize(
    ("entry", "tamper", "message"),
    [pytest.param(entry, tamper, message, id=name) for name, entry, tamper, message in TAMPERINGS],
)
def test_each_change_is_refused_by_name(
    protected: tuple[Path, bytes, bytes], entry: str, tamper: Callable[[Path], None], message: str
) -> None:
    out, key, tag = protected
    tamper(out / entry)
    with pytest.raises(IntegrityError) as refused:
        verify_tree(out, key, tag)
    assert str(refused.value) == f"Verification of /{entry} failed: {message}"
    assert "\n" not in str(refused.value)


def test_labels_the_host_assigns_are_neither_sealed_nor_checked(protected: tuple[Path, bytes, bytes]) -> None:
    """An SELinux label is the host's policy (it differs from host to host); trusted.* attributes are
    visible only to the host's administrator."""
    out, key, tag = protected
    os.setxattr(out / "usr/bin/server", "security.selinux", b"system_u:object_r:container_file_t:s0\x00")
    os.setxattr(out / "usr/share/notes.txt", "trusted.overlay.origin", b"\x00")
    verify_tree(out, key, tag)


def test_encrypted_entries_carry_no_owner(tmp_path: Path) -> None:
    """Encrypted files are written afresh at run time by the runtime's user: there is no owner to keep."""
    source = build(tmp_path / "source")
    os.chown(source / "code" / "app.py", 1000, 1000)
    result = protect_tree(source, tmp_path / "out", generate_key(), REGIONS)
    assert result.manifest.entry_map()["/code/app.py"].attributes == Attributes()


def test_image_metadata_of_format_1_is_refused_by_name(
    protected: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 sealed no owners: an image protected by it cannot vouch for them, so it is refused
    (and told what to do), rather than verified as if every entry were root's."""
    out, key, _ = protected
    manifest = Manifest(kind="image", chunk_size=4096, regions=(Region("/", Protection.NOT_PROTECTED),))
    monkeypatch.setattr(metadata_module, "FORMAT_VERSION", 1)
    sealed, tag = seal(manifest, key, image_context())
    monkeypatch.undo()
    metadata = out / FSPF_METADATA.lstrip("/")
    metadata.unlink()
    metadata.write_bytes(sealed)
    with pytest.raises(IntegrityError, match="format version 1 does not seal owners and extended attributes"):
        verify_tree(out, key, tag)


def test_a_python_without_xattr_calls_reads_them_through_the_c_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpine's Python has no os.listxattr: the runtime in such an image must see attributes all the same."""
    from pulumi_sconify.engine.fspf import attributes

    source = build(tmp_path / "source")
    paths = [
        source / "usr/bin/server",
        source / "usr/share/notes.txt",
        source / "usr/bin/srv",
        source / "code",
    ]
    expected = [attributes.read_xattrs(path) for path in paths]
    monkeypatch.delattr(os, "listxattr")
    monkeypatch.delattr(os, "getxattr")
    os.setxattr(source / "usr/share/notes.txt", "user.large", b"x" * 3000)
    expected[1]["user.large"] = b"x" * 3000
    assert [attributes.read_xattrs(path) for path in paths] == expected
    assert expected[0] == {CAPABILITY: capability(NET_BIND_SERVICE)}
    with pytest.raises(FileNotFoundError):
        attributes.read_xattrs(source / "missing")


def test_a_python_that_can_read_no_attributes_refuses_rather_than_looks_away(
    protected: tuple[Path, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, key, tag = protected
    monkeypatch.delattr(os, "listxattr")
    monkeypatch.setattr(attributes._LibcXattrs, "_instance", None)
    monkeypatch.setitem(sys.modules, "ctypes", None)  # import ctypes now raises ImportError
    with pytest.raises(IntegrityError, match="can read no extended attributes"):
        verify_tree(out, key, tag)
