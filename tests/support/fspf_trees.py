"""A small image-like tree with every kind of entry, protected, for the FSPF tests."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pulumi_sconify.engine.fspf import (
    FreshnessAnchor,
    InMemoryAnchor,
    Protected,
    Protection,
    Region,
    Volume,
    generate_key,
    protect_tree,
)
from pulumi_sconify.engine.fspf.volume import DATA

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


class Counter:
    """SCONE's counter service, run against a volume: open, read /num (0 if missing), add one, commit."""

    def __init__(
        self,
        tmp_path: Path,
        name: str = "ns/counter/V1",
        key: bytes | None = None,
        anchor: FreshnessAnchor | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.storage = tmp_path / f"storage-{name.replace('/', '_')}"
        self.storage.mkdir()
        self.name = name
        self.key = key or generate_key()
        self.anchor = anchor or InMemoryAnchor()
        self.runs = 0

    def open(self) -> Volume:
        self.runs += 1
        workdir = self.tmp_path / f"work-{self.name.replace('/', '_')}-{self.runs}"
        workdir.mkdir()
        return Volume.open(
            self.storage, workdir, name=self.name, key=self.key, anchor=self.anchor, mount_path="/V1"
        )

    def run(self) -> int:
        volume = self.open()
        number = volume.workdir / "num"
        value = int(number.read_text()) if number.exists() else 0
        number.write_text(f"{value + 1}\n")
        volume.commit()
        return value

    def blobs(self) -> set[str]:
        return {p.name for p in (self.storage / DATA).iterdir()}

    def snapshot(self, name: str) -> Path:
        copy = self.tmp_path / f"snapshot-{name}"
        shutil.copytree(self.storage, copy)
        return copy

    def restore(self, snapshot: Path) -> None:
        shutil.rmtree(self.storage)
        shutil.copytree(snapshot, self.storage)
