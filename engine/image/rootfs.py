"""Apply image layers to a directory, as a container runtime would — but without ever leaving it.

Whiteouts (``.wh.name``) remove what lower layers put there; an opaque whiteout (``.wh..wh..opq``)
empties its directory of lower layers' content. Every write resolves the path's parents inside the
root (a symbolic link planted by a layer is followed only within the root), so no entry can write
outside it. Modes are applied after all layers, so that read-only directories do not stop extraction.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from .layers import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, LayerEntry
from .oci import ImageError

_MAX_LINK_DEPTH = 40


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

    def __init__(self, root: Path, wanted: Callable[[str], bool] | None = None) -> None:
        """``wanted`` limits which files get their content written (directories and links always are):
        the sconifier needs only the files it protects, and writing thousands of others costs time."""
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._modes: dict[Path, int] = {}
        self._wanted = wanted
        self._directories: set[Path] = {root}
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
                            _remove(child)
                self._directories = {self.root}
                continue
            if name.startswith(WHITEOUT_PREFIX):
                target = resolve_inside(self.root, posixpath.join(parent, name[len(WHITEOUT_PREFIX) :]))
                _remove(target)
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
                _remove(location)
                self._directories = {self.root}
            location.mkdir(exist_ok=True)
            self._directories.add(location)
            self._modes[location] = member.mode & 0o7777
            return
        if location.is_dir() and not location.is_symlink():
            shutil.rmtree(location)
            self._directories = {self.root}
        elif location.exists() or location.is_symlink():
            location.unlink()
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
        else:
            assert entry.content is not None
            with location.open("wb") as sink:
                shutil.copyfileobj(entry.content, sink, 1 << 20)
            self._modes[location] = member.mode & 0o7777

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
