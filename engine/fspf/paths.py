"""Paths inside a protected tree: absolute POSIX strings, mapped onto a host directory safely."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import FspfError, UsageError


def check_tree_path(path: str, what: str) -> str:
    """A normalised absolute path inside a tree (``/``, ``/code``), or a :class:`UsageError`."""
    parts = path.split("/")[1:]
    if (
        not path.startswith("/")
        or (path != "/" and any(p in {"", ".", ".."} for p in parts))
        or "\x00" in path
    ):
        raise UsageError(f"{what}: expected a normalised absolute path inside the tree, such as /code")
    return path


def host_path(root: Path, path: str) -> Path:
    """Where the tree path ``path`` lives below the host directory ``root``."""
    return root / path.lstrip("/") if path != "/" else root


def is_within(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it (component-wise, so ``/codex`` is not within ``/code``)."""
    return prefix in {"/", path} or path.startswith(prefix + "/")


def child(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else f"{parent}/{name}"


def walk(root: Path, start: str = "/") -> Iterator[tuple[str, os.stat_result]]:
    """Every path below ``start`` (not ``start`` itself) in sorted order, with its ``lstat``.

    Symbolic links are reported, never followed.
    """
    yield from _walk(os.fspath(host_path(root, start)), start)


def _walk(directory: str, start: str) -> Iterator[tuple[str, os.stat_result]]:
    # os.scandir and plain strings: a container's /usr/lib has some 10,000 entries, and pathlib's
    # per-path overhead was a tenth of a second of every confidential start.
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in entries:
        path = child(start, entry.name)
        info = entry.stat(follow_symlinks=False)
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(entry.path, path)


class NotRegularFileError(FspfError, OSError):
    """Something other than a regular file where one must be (a FIFO, a device, a socket, a directory).
    An ``OSError`` too, so that callers reading a file handle it with every other failure to read one."""


FILE_TYPES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def open_regular(location: Path) -> int:
    """Open a regular file for reading, without following a symbolic link in its last component.

    ``O_NONBLOCK``, so that a FIFO put in a file's place cannot make the open wait forever for a writer;
    the type is checked before anything is read (for a regular file the flag changes nothing)."""
    fd = os.open(location, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
        raise NotRegularFileError(errno.EINVAL, f"{kind}, not a regular file", str(location))
    return fd


def fsync_directory(directory: Path) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
