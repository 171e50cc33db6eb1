"""A small image-like tree with every kind of entry, protected, for the FSPF tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pulumi_sconify.engine.fspf import Protected, Protection, Region, generate_key, protect_tree

SECRET_CODE = b"print('the secret algorithm 7f3a9c')\n"
CHUNK = 4096  # small chunks, so that modest files have several


@dataclass
class ProtectedTree:
    source: Path
    out: Path
    key: bytes
    result: Protected

    @property
    def tag(self) -> bytes:
        return self.result.tag

    def blob_of(self, path: str) -> Path:
        entry = self.result.manifest.entry_map()[path]
        assert entry.blob is not None
        return self.out / "fspf" / "data" / entry.blob


def build_source(root: Path) -> Path:
    (root / "code" / "lib").mkdir(parents=True)
    (root / "code" / "app.py").write_bytes(SECRET_CODE)
    (root / "code" / "lib" / "big.bin").write_bytes(os.urandom(3 * CHUNK + 123))
    (root / "code" / "lib" / "other.bin").write_bytes(os.urandom(3 * CHUNK + 123))
    (root / "code" / "empty").write_bytes(b"")
    (root / "code" / "static").mkdir()
    (root / "code" / "static" / "index.html").write_text("<h1>public</h1>\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3").write_bytes(os.urandom(5 * CHUNK + 7))
    (root / "usr" / "bin" / "python3").chmod(0o755)
    (root / "usr" / "bin" / "helper").write_bytes(b"#!/bin/sh\necho helper\n")
    (root / "usr" / "bin" / "python").symlink_to("python3")
    (root / "usr" / "tmp").mkdir()
    (root / "usr" / "tmp" / "scratch").write_text("not protected\n")
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("native\n")
    return root


REGIONS = [
    Region("/code", Protection.ENCRYPTED),
    Region("/code/static", Protection.AUTHENTICATED),
    Region("/usr", Protection.AUTHENTICATED),
    Region("/usr/tmp", Protection.NOT_PROTECTED),
]


def protected_tree(tmp_path: Path) -> ProtectedTree:
    source = build_source(tmp_path / "src")
    key = generate_key()
    out = tmp_path / "out"
    return ProtectedTree(source, out, key, protect_tree(source, out, key, REGIONS, chunk_size=CHUNK))
