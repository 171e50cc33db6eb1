"""Chunked AES-256-GCM for one file: encryption (encrypted regions, volumes) and authentication.

Every file version has its own random 256-bit key (kept in the sealed metadata), so a (key, nonce)
pair is never used twice and the nonce can simply be the chunk index. Each chunk's tag is bound, as
additional authenticated data, to

    "sconify-fspf-chunk-v1" NUL  protection byte  path length (u32)  path (UTF-8)
    chunk index (u64)  file size (u64)  chunk count (u64)

so that a chunk cannot be reordered (index), moved to another file (path, and the other file's key),
swapped between protections, or survive truncation or extension of its file (size and count); a chunk
of an older version of the same file fails because that version had another key.

Encrypted files are stored as the concatenation of ``ciphertext_i || tag_i``. Authenticated files stay
in plaintext; their chunk tags (GMAC: the chunk is authenticated data, nothing is encrypted) live in the
sealed metadata. An empty file has one empty chunk, so even it carries a tag.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import chunk_failure

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

DEFAULT_CHUNK_SIZE = 64 * 1024
"""64 KiB: large enough that per-call overhead is small next to AES-GCM itself, small enough to stream."""
TAG_SIZE = 16
_CHUNKS_PER_READ = 16
_DOMAIN = b"sconify-fspf-chunk-v1\x00"
ENCRYPTED = b"E"
AUTHENTICATED = b"A"


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a file of ``size`` bytes; at least one, so an empty file is authenticated too."""
    return max(1, -(-size // chunk_size))


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", index)


def _binding(protection: bytes, path: str, index: int, size: int, count: int) -> bytes:
    encoded = path.encode("utf-8", "surrogateescape")
    return (
        _DOMAIN
        + protection
        + struct.pack(">I", len(encoded))
        + encoded
        + struct.pack(">QQQ", index, size, count)
    )


def _read_exactly(source: BinaryIO, length: int) -> bytes:
    """Read ``length`` bytes, fewer only at end of file."""
    parts = []
    while length:
        part = source.read(length)
        if not part:
            break
        parts.append(part)
        length -= len(part)
    return b"".join(parts)


def _plain_chunks(source: BinaryIO, size: int, chunk_size: int) -> Iterator[tuple[int, bytes]]:
    for index in range(chunk_count(size, chunk_size)):
        yield index, _read_exactly(source, min(chunk_size, size - index * chunk_size))


def encrypt_file(
    key: bytes,
    path: str,
    source: BinaryIO,
    sink: BinaryIO | None,
    size: int,
    chunk_size: int,
    tags: Hash | None = None,
) -> None:
    """Encrypt ``size`` bytes of ``source`` into ``sink`` as chunks bound to ``path``.

    ``tags``, if given, is updated with each chunk's tag in order (see :func:`chunk_tags_digest`). With no
    ``sink`` the ciphertext is dropped. Raises :class:`OSError` if the source holds fewer bytes than
    ``size`` (it changed while read).
    """
    cipher = AESGCM(key)
    count = chunk_count(size, chunk_size)
    for index, chunk in _plain_chunks(source, size, chunk_size):
        if len(chunk) != min(chunk_size, size - index * chunk_size):
            raise OSError(f"{path}: file shrank while it was being protected")
        sealed = cipher.encrypt(_nonce(index), chunk, _binding(ENCRYPTED, path, index, size, count))
        if tags is not None:
            tags.update(sealed[-TAG_SIZE:])
        if sink is not None:
            sink.write(sealed)


def chunk_tags_digest(key: bytes, path: str, source: BinaryIO, size: int, chunk_size: int) -> bytes:
    """SHA-256 over the chunk tags :func:`encrypt_file` gives ``source`` under ``key``.

    Volumes keep it per file to tell, at the next commit, whether a file changed: the same key, path and
    size give the same digest exactly for the same content (a different content colliding would be a GCM
    forgery). It costs one AES-GCM pass, a quarter of a SHA-256 pass over the plaintext. Content that did
    change is encrypted here under the earlier key and nonces; that is safe only because nothing of it is
    stored or shown but this digest, and the file then gets a new key.
    """
    tags = hashlib.sha256()
    encrypt_file(key, path, source, None, size, chunk_size, tags=tags)
    return tags.digest()


def decrypt_file(
    key: bytes,
    path: str,
    source: BinaryIO,
    sink: BinaryIO | None,
    size: int,
    chunk_size: int,
    shown_as: str | None = None,
) -> None:
    """Verify (and, given a ``sink``, decrypt) a file written by :func:`encrypt_file`.

    Raises :class:`~.errors.IntegrityError` naming the first chunk that does not verify, including a
    chunk that is missing (truncation) or followed by extra bytes (extension). Errors name the file
    ``shown_as`` where given (a volume file by its mount path, e.g. ``/V1/num``), else ``path``.
    """
    cipher = AESGCM(key)
    count = chunk_count(size, chunk_size)
    name = shown_as or path
    sealed_size = chunk_size + TAG_SIZE
    # Read several chunks per call: fewer system calls, measurably faster on large files.
    for first in range(0, count, _CHUNKS_PER_READ):
        last = min(count, first + _CHUNKS_PER_READ)
        wanted = (
            (last - first) * sealed_size
            if last < count
            else size - first * chunk_size + (last - first) * TAG_SIZE
        )
        batch = memoryview(_read_exactly(source, wanted))
        for index in range(first, last):
            offset = (index - first) * sealed_size
            expected = min(chunk_size, size - index * chunk_size) + TAG_SIZE
            sealed = batch[offset : offset + expected]
            if len(sealed) != expected or (index == count - 1 and source.read(1)):
                raise chunk_failure(name, index, chunk_size, size)
            try:
                plain = cipher.decrypt(_nonce(index), sealed, _binding(ENCRYPTED, path, index, size, count))
            except InvalidTag:
                raise chunk_failure(name, index, chunk_size, size) from None
            if sink is not None:
                sink.write(plain)


def authenticate_file(
    key: bytes, path: str, source: BinaryIO, size: int, chunk_size: int, sink: BinaryIO | None = None
) -> bytes:
    """The concatenated chunk tags of a plaintext file; copies it to ``sink`` on the way if given."""
    cipher = AESGCM(key)
    count = chunk_count(size, chunk_size)
    tags = []
    for index, chunk in _plain_chunks(source, size, chunk_size):
        if len(chunk) != min(chunk_size, size - index * chunk_size):
            raise OSError(f"{path}: file shrank while it was being protected")
        tags.append(
            cipher.encrypt(_nonce(index), b"", _binding(AUTHENTICATED, path, index, size, count) + chunk)
        )
        if sink is not None:
            sink.write(chunk)
    return b"".join(tags)


def verify_authenticated_file(
    key: bytes, path: str, source: BinaryIO, size: int, chunk_size: int, tags: bytes
) -> None:
    """Check a plaintext file against its chunk tags; raise naming the first chunk that differs."""
    cipher = AESGCM(key)
    count = chunk_count(size, chunk_size)
    if len(tags) != count * TAG_SIZE:
        raise chunk_failure(path, 0, chunk_size, size)
    for index, chunk in _plain_chunks(source, size, chunk_size):
        expected = tags[index * TAG_SIZE : (index + 1) * TAG_SIZE]
        if len(chunk) != min(chunk_size, size - index * chunk_size):
            raise chunk_failure(path, index, chunk_size, size)
        actual = cipher.encrypt(_nonce(index), b"", _binding(AUTHENTICATED, path, index, size, count) + chunk)
        if not hmac.compare_digest(actual, expected):
            raise chunk_failure(path, index, chunk_size, size)
    if source.read(1):
        raise chunk_failure(path, count - 1, chunk_size, size)
