"""Apply image layers to a directory, as a container runtime would — but without ever leaving it.

Whiteouts (``.wh.name``) remove what lower layers put there; an opaque whiteout (``.wh..wh..opq``)
empties its directory of lower layers' content. Every write resolves the path's parents inside the
root (a symbolic link planted by a layer is followed only within the root), so no entry can write
outside it. Modes are applied after all layers, so that read-only directories do not stop extraction.

Owners and extended attributes are not written (that would take root, and the sconifier needs no
privilege): they are recorded from each entry's tar header, as a container runtime applies them —
``uid``/``gid``, and the ``SCHILY.xattr.*`` PAX records — and :meth:`RootFilesystem.attributes` answers
for any path of the tree. Run as root, it can also apply them, for a tree that is the image's exactly.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..fspf.attributes import CAPABILITY, ROOT_OWNED, Attributes, apply_attributes
from .layers import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, LayerEntry
from .oci import ImageError

_MAX_LINK_DEPTH = 40
XATTR_RECORD = "SCHILY.xattr."
"""The PAX record prefix under which tar (GNU, Go's archive/tar, Python's) carries extended attributes,
and the one container runtimes apply."""


def resolve_inside(root: Path, path: str, follow_last: bool = False) -> Path:
    """Where ``path`` (absolute, in the tree) lives under ``root``, following links only inside it."""
    resolved: list[str] = []
    pending = [part for part in path.split("/") if part]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        location = root.joinpath(*resolved, part)
        last = not pending
        if location.is_symlink() and (follow_last or not last):
            hops += 1
            if hops > _MAX_LINK_DEPTH:
                raise ImageError(f"{path}: too many levels of symbolic links")
            target = str(location.readlink())
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p and p != "."] + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _remove(location: Path) -> None:
    if location.is_symlink() or location.is_file():
        location.unlink()
    elif location.is_dir():
        shutil.rmtree(location)


class RootFilesystem:
    """A root file system assembled from layers in a scratch directory."""

    def __init__(
        self, root: Path, wanted: Callable[[str], bool] | None = None, apply_owners: bool = False
    ) -> None:
        """``wanted`` limits which files get their content written (directories and links always are):
        the sconifier needs only the files it protects, and writing thousands of others costs time.
        ``apply_owners`` gives every entry the owner and extended attributes its layer declares (which
        takes root); otherwise they are only recorded."""
        self.root = root
        self._apply_owners = apply_owners
        self.root.mkdir(parents=True, exist_ok=True)
        self._modes: dict[Path, int] = {}
        self._wanted = wanted
        self._directories: set[Path] = {root}
        self._attributes: dict[str, Attributes] = {}
        self.skipped: set[str] = set()

    def apply(self, entries: Iterable[LayerEntry]) -> None:
        """Apply one layer's entries (in tar order)."""
        written: set[str] = set()
        for entry in entries:
            parent, name = posixpath.split(entry.path)
            if name == OPAQUE_WHITEOUT:
                directory = resolve_inside(self.root, parent, follow_last=True)
                if directory.is_dir():
                    for child in directory.iterdir():
                        if posixpath.join(parent, child.name) not in written:
                            self._remove(child)
                self._directories = {self.root}
                continue
            if name.startswith(WHITEOUT_PREFIX):
                target = resolve_inside(self.root, posixpath.join(parent, name[len(WHITEOUT_PREFIX) :]))
                self._remove(target)
                self._directories = {self.root}
                continue
            written.add(entry.path)
            self._write(entry)

    def _write(self, entry: LayerEntry) -> None:
        if entry.path == "/":
            return
        member = entry.member
        if (member.isfile() or member.islnk()) and self._wanted is not None and not self._wanted(entry.path):
            self.skipped.add(entry.path)
            return
        location = resolve_inside(self.root, entry.path)
        if location.parent not in self._directories:
            location.parent.mkdir(parents=True, exist_ok=True)
            self._directories.add(location.parent)
        if member.isdir():
            if (location.exists() and not location.is_dir()) or location.is_symlink():
                self._remove(location)
                self._directories = {self.root}
            location.mkdir(exist_ok=True)
            self._directories.add(location)
            self._modes[location] = member.mode & 0o7777
            self._record(location, member)
            if self._apply_owners:
                apply_attributes(location, self.attributes(self._tree_path(location)), is_link=False)
            return
        if location.is_dir() and not location.is_symlink():
            self._remove(location)
            self._directories = {self.root}
        elif location.exists() or location.is_symlink():
            self._remove(location)
        self._record(location, member)
        if member.issym():
            location.symlink_to(member.linkname)
        elif member.islnk():
            target = "/" + member.linkname.lstrip("/")
            if target in self.skipped:
                raise ImageError(f"{entry.path}: hard link to {member.linkname}, outside the protected paths")
            source = resolve_inside(self.root, target)
            if not source.is_file() or source.is_symlink():
                raise ImageError(
                    f"{entry.path}: hard link to {member.linkname}, which is not a file in the tree"
                )
            os.link(source, location)
            self._link_attributes(source, location, member)
        else:
            assert entry.content is not None
            with location.open("wb") as sink:
                shutil.copyfileobj(entry.content, sink, 1 << 20)
            self._modes[location] = member.mode & 0o7777
        if self._apply_owners:
            apply_attributes(location, self.attributes(self._tree_path(location)), member.issym())

    def _tree_path(self, location: Path) -> str:
        return "/" + location.relative_to(self.root).as_posix()

    def _record(self, location: Path, member: tarfile.TarInfo) -> None:
        xattrs = {
            key.removeprefix(XATTR_RECORD): value.encode("utf-8", "surrogateescape")
            for key, value in member.pax_headers.items()
            if key.startswith(XATTR_RECORD)
        }
        self._attributes[self._tree_path(location)] = Attributes.of(member.uid, member.gid, xattrs)

    def _link_attributes(self, source: Path, location: Path, member: tarfile.TarInfo) -> None:
        """What a runtime makes of a hard link's header (podman's, measured): the link's owner, mode and
        attributes are given to the inode both names share, and a change of owner makes the kernel drop
        the file's capabilities on the way."""
        target, declared = (
            self.attributes(self._tree_path(source)),
            self.attributes(self._tree_path(location)),
        )
        xattrs = dict(target.xattrs)
        if (target.uid, target.gid) != (declared.uid, declared.gid):
            xattrs.pop(CAPABILITY, None)
        xattrs.update(declared.xattrs)
        shared = Attributes.of(declared.uid, declared.gid, xattrs)
        self._attributes[self._tree_path(source)] = self._attributes[self._tree_path(location)] = shared
        self._modes[source] = member.mode & 0o7777

    def _remove(self, location: Path) -> None:
        path = self._tree_path(location)
        if location.is_dir() and not location.is_symlink():
            below = path.rstrip("/") + "/"
            for known in [known for known in self._attributes if known.startswith(below)]:
                del self._attributes[known]
        self._attributes.pop(path, None)
        _remove(location)

    def attributes(self, path: str, info: os.stat_result | None = None) -> Attributes:
        """The owner, group and extended attributes the layers give the entry at ``path`` (a path in
        the tree, links resolved): a directory a layer only implied is root's, as a runtime makes it.
        ``info`` is not needed; it is accepted to fit :data:`~.regions.AttributeSource`."""
        return self._attributes.get(path, ROOT_OWNED)

    def replace_attributes(self, path: str, attributes: Attributes) -> None:
        """Record what a layer written on top gives ``path`` (the sconifier's own, root-owned)."""
        self._attributes[path] = attributes

    def finish(self) -> None:
        """Apply the modes the layers declared (after all content is in place)."""
        for location, mode in sorted(self._modes.items(), key=lambda item: -len(item[0].parts)):
            if location.exists() and not location.is_symlink():
                location.chmod(mode)

    def lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(resolve_inside(self.root, path))
        except FileNotFoundError:
            return None

    def is_dir(self, path: str) -> bool:
        info = self.lstat(path)
        return info is not None and stat.S_ISDIR(info.st_mode)
