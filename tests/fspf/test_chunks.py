"""Chunked AES-GCM: the tag digest volumes use to tell unchanged files from changed ones."""

from __future__ import annotations

import hashlib
import io
import os

from pulumi_sconify.engine.fspf import chunks, generate_key


def test_chunk_tags_digest_tells_same_from_changed_content() -> None:
    key, size = generate_key(), 3 * 65_536 + 5
    content = bytearray(os.urandom(size))
    written = hashlib.sha256()
    chunks.encrypt_file(key, "/V1/f", io.BytesIO(content), io.BytesIO(), size, 65_536, tags=written)
    same = chunks.chunk_tags_digest(key, "/V1/f", io.BytesIO(bytes(content)), size, 65_536)
    assert same == written.digest()
    content[size - 1] ^= 1
    assert chunks.chunk_tags_digest(key, "/V1/f", io.BytesIO(bytes(content)), size, 65_536) != same
    assert chunks.chunk_tags_digest(key, "/V1/g", io.BytesIO(bytes(content)), size, 65_536) != same
