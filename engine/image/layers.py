"""Reading image layers safely, and writing reproducible ones.

Every tar entry of an untrusted layer is checked before anything is done with it: no absolute paths,
no ``..``, no device files or FIFOs, no symbolic link that climbs out of the tree, no hard link to a
path that is not a plain path in the tree, no entry twice in one layer. A violation ends the work with
an :class:`~.oci.ImageError` that names the layer and the entry.

Layers this module writes are reproducible: entries sorted, timestamps fixed, owners root, gzip
without a name or time, so the same content always has the same digest.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .oci import GZIP_LAYERS, ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
FIXED_MTIME = 0
_ALLOWED_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE}


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def tree_path(name: str, what: str) -> str:
    """A tar entry name as an absolute path in the tree; refuses absolute names and ``..``."""
    if "\x00" in name:
        raise ImageError(f"{what}: entry name contains NUL")
    if name.startswith("/"):
        raise ImageError(f"{what}: absolute entry name {name!r}")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{what}: entry {name!r} climbs out of the tree")
    return "/" + "/".join(parts)


def _check_symlink(path: str, target: str, what: str) -> None:
    if "\x00" in target or not target:
        raise ImageError(f"{what}: link {path} has an invalid target")
    if target.startswith("/"):
        return  # absolute targets resolve inside the container's root
    depth = len(posixpath.dirname(path).strip("/").split("/")) if posixpath.dirname(path) != "/" else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise ImageError(f"{what}: link {path} points outside the tree")
        elif part not in ("", "."):
            depth += 1


@dataclass(frozen=True)
class LayerEntry:
    path: str
    member: tarfile.TarInfo
    content: IO[bytes] | None
    """Regular files only: the content, readable while this entry is current."""

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


def read_layer(chunks: Iterator[bytes], media_type: str, what: str) -> Iterator[LayerEntry]:
    """The checked entries of a layer, streamed (one entry's content at a time)."""
    plain = _gunzip(chunks, what) if media_type in GZIP_LAYERS else chunks
    stream = io.BufferedReader(_ChunkReader(plain), 1 << 20)
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                path = tree_path(member.name, what)
                if member.type not in _ALLOWED_TYPES:
                    kind = (
                        "device file"
                        if member.ischr() or member.isblk()
                        else "FIFO"
                        if member.isfifo()
                        else ("unsupported entry")
                    )
                    raise ImageError(f"{what}: {kind} {path} is not allowed in an image layer")
                if path in seen:
                    raise ImageError(f"{what}: {path} appears twice in one layer")
                seen.add(path)
                if member.issym():
                    _check_symlink(path, member.linkname, what)
                if member.islnk():
                    tree_path(member.linkname, what)
                content = archive.extractfile(member) if member.isfile() else None
                yield LayerEntry(path, member, content)
            # Read to the very end: gzip checks its trailer (truncation, CRC) only there, and the
            # blob's digest is checked only once every byte has been read.
            remainder = archive.fileobj
            assert remainder is not None
            while remainder.read(1 << 20):
                pass
        for _ in plain:
            pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ImageError(
            f"{what}: not a valid layer ({type(error).__name__}: truncated or corrupt)"
        ) from None


def _gunzip(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Decompress a gzip stream, insisting on its end: tarfile's own stream mode would take a
    truncated layer for a short one."""
    decompressor = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        pending = chunk
        while pending:
            yield decompressor.decompress(pending)
            pending = decompressor.unused_data
            if decompressor.eof and pending:  # another gzip member follows
                decompressor = zlib.decompressobj(wbits=31)
    if not decompressor.eof:
        raise ImageError(f"{what}: not a valid layer (truncated gzip stream)")


@dataclass(frozen=True)
class WrittenLayer:
    """A layer written to a file: its compressed digest and size, and its uncompressed ``diff_id``."""

    path: Path
    digest: str
    size: int
    diff_id: str


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hasher.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


class LayerWriter:
    """Write a gzip-compressed layer, computing both digests on the way; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._compressed = _HashingWriter(self._file)
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._compressed, mtime=FIXED_MTIME, compresslevel=6
        )
        self._plain = _HashingWriter(self._gzip)  # type: ignore[arg-type]
        self.tar = tarfile.open(fileobj=self._plain, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if kind is not None:
            self.abort()

    def abort(self) -> None:
        """Close everything and remove the partial file (after a failure)."""
        for closer in (self.tar.close, self._gzip.close, self._file.close):
            with contextlib.suppress(
                OSError, ValueError, tarfile.TarError
            ):  # already failing: close what we can
                closer()
        self.path.unlink(missing_ok=True)

    def add(self, member: tarfile.TarInfo, content: IO[bytes] | None = None) -> None:
        self.tar.addfile(member, content)

    def finish(self) -> WrittenLayer:
        self.tar.close()
        self._gzip.close()
        self._file.close()
        return WrittenLayer(
            self.path,
            "sha256:" + self._compressed.hasher.hexdigest(),
            self._compressed.size,
            "sha256:" + self._plain.hasher.hexdigest(),
        )


def normalized_member(
    path: str, kind: bytes, mode: int, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    """A tar entry with reproducible metadata: owned by root, fixed time."""
    member = tarfile.TarInfo(path.lstrip("/") + ("/" if kind == tarfile.DIRTYPE and path != "/" else ""))
    member.type = kind
    member.mode = mode
    member.size = size
    member.linkname = linkname
    member.mtime = FIXED_MTIME
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def write_tree_layer(source: Path, path: Path) -> WrittenLayer:
    """A layer holding the tree ``source`` (files, directories, links), sorted and normalized."""
    with LayerWriter(path) as writer:
        return _write_tree(writer, source)


def _write_tree(writer: LayerWriter, source: Path) -> WrittenLayer:
    for location in sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix()):
        relative = "/" + location.relative_to(source).as_posix()
        info = location.lstat()
        if location.is_symlink():
            writer.add(normalized_member(relative, tarfile.SYMTYPE, 0o777, linkname=str(location.readlink())))
        elif location.is_dir():
            writer.add(normalized_member(relative, tarfile.DIRTYPE, info.st_mode & 0o7777))
        else:
            with location.open("rb") as content:
                writer.add(
                    normalized_member(relative, tarfile.REGTYPE, info.st_mode & 0o7777, info.st_size), content
                )
    return writer.finish()
