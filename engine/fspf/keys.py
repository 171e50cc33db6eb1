"""Keys: generated from the OS CSPRNG, kept in files readable by their owner only.

A key is 32 bytes (AES-256). It is written and read as 64 hex characters, the form a session
policy's ``fspf_key`` has. Nothing here ever prints or logs a key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UsageError

KEY_BYTES = 32
TAG_BYTES = 16


def generate_key() -> bytes:
    """A fresh 256-bit key from the operating system's CSPRNG."""
    return os.urandom(KEY_BYTES)


def parse_key(text: str, what: str = "key") -> bytes:
    """Decode a 64-hex key; the error names ``what`` and never the text."""
    text = text.strip()
    if len(text) != 2 * KEY_BYTES:
        raise UsageError(f"{what}: expected {2 * KEY_BYTES} hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{what}: expected {2 * KEY_BYTES} hex characters") from None


def parse_tag(text: str, what: str = "tag") -> bytes:
    text = text.strip()
    try:
        tag = bytes.fromhex(text)
    except ValueError:
        tag = b""
    if len(tag) != TAG_BYTES:
        raise UsageError(f"{what}: expected {2 * TAG_BYTES} hex characters")
    return tag


def read_key_file(path: Path) -> bytes:
    """Read a key file written by :func:`load_or_create_key_file` (or by hand: 64 hex)."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"{path}: cannot read key file ({getattr(error, 'strerror', None) or 'not text'})"
        ) from None
    return parse_key(text, what=str(path))


def load_or_create_key_file(path: Path) -> tuple[bytes, bool]:
    """The key in ``path``, or a new one written there with mode 600. Returns ``(key, created)``.

    Creation is exclusive (``O_EXCL``): two processes racing to create the file cannot both win and
    end up with different keys, and an existing file — or a symbolic link planted in its place — is
    never overwritten.
    """
    if path.exists() or path.is_symlink():
        return read_key_file(path), False
    key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        return read_key_file(path), False
    except OSError as error:
        raise UsageError(f"{path}: cannot create key file ({error.strerror})") from None
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(key.hex() + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    return key, True
