"""Benchmark of file-system protection: throughput as ratios against baselines run in the same process.

Baselines:
- raw AES-256-GCM from the same library (cryptography) over the same bytes, already in memory, in
  1 MiB pieces: the ceiling of what protection can reach on this machine;
- gocryptfs (Debian package), writing and reading the same files through its FUSE mount — an
  encrypted file system without rollback protection, the usual way to encrypt a directory.

Two data sets of the same total size: a few large files, and many files of mixed sizes (1 KiB to
4 MiB, log-uniform). Run: ``.venv/bin/python benchmarks/fspf.py [--mib 256] [--no-gocryptfs]``.
Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pulumi_sconify.engine.fspf import (
    Protection,
    Region,
    decrypt_tree,
    generate_key,
    protect_tree,
    verify_tree,
)

MIB = 1024 * 1024


def make_large(root: Path, total: int) -> None:
    count = 8
    for index in range(count):
        (root / f"large-{index}.bin").write_bytes(os.urandom(total // count))


def make_mixed(root: Path, total: int) -> None:
    generator = random.Random(7)
    written = 0
    index = 0
    while written < total:
        size = min(int(math.exp(generator.uniform(math.log(1024), math.log(4 * MIB)))), total - written)
        folder = root / f"d{index % 32}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{index}.bin").write_bytes(os.urandom(size))
        written += size
        index += 1


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def raw_aes_gcm(source: Path) -> float:
    data = [path.read_bytes() for path in sorted(source.rglob("*")) if path.is_file()]
    cipher = AESGCM(generate_key())
    nonce = os.urandom(12)

    def run() -> None:
        for blob in data:
            view = memoryview(blob)
            for offset in range(0, len(blob), MIB):
                cipher.encrypt(nonce, view[offset : offset + MIB], None)

    return timed(run)


class GocryptfsMount:
    """A gocryptfs file system mounted for the benchmark (and unmounted to drop its page cache)."""

    def __init__(self, base: Path) -> None:
        self.cipher = base / "gocryptfs-cipher"
        self.plain = base / "gocryptfs-plain"
        self.password = base / "gocryptfs-password"
        self.cipher.mkdir(parents=True)
        self.plain.mkdir(parents=True)
        self.password.write_text("benchmark\n")
        subprocess.run(
            ["gocryptfs", "-init", "-q", "-passfile", str(self.password), str(self.cipher)], check=True
        )

    def mount(self) -> None:
        subprocess.run(
            [
                "gocryptfs",
                "-q",
                "-nosyslog",
                "-passfile",
                str(self.password),
                str(self.cipher),
                str(self.plain),
            ],
            check=True,
        )

    def unmount(self) -> None:
        subprocess.run(["fusermount", "-u", str(self.plain)], check=True)


def memory_backed_dir() -> str | None:
    return "/dev/shm" if Path("/dev/shm").is_dir() else None  # a tmpfs, as the runtime uses


def copy_tree_files(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(exist_ok=True)
        else:
            shutil.copyfile(path, destination)


def read_all(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as stream:
                while stream.read(MIB):
                    pass


def measure(name: str, total: int, base: Path, with_gocryptfs: bool) -> None:
    source = base / f"{name}-src"
    source.mkdir()
    (make_large if name == "large" else make_mixed)(source, total)
    read_all(source)  # into the page cache, as for every contender
    megabytes = total / MIB
    raw = raw_aes_gcm(source)

    key = generate_key()
    out = base / f"{name}-protected"
    regions = [Region("/", Protection.ENCRYPTED)]
    result: list[bytes] = []
    protect = timed(lambda: result.append(protect_tree(source, out, key, regions).tag))
    verify = timed(lambda: verify_tree(out, key, result[0]))
    # The runtime decrypts into memory-backed directories: so does the benchmark, where it can.
    with tempfile.TemporaryDirectory(prefix="fspf-bench-", dir=memory_backed_dir()) as plain:
        decrypt = timed(lambda: decrypt_tree(out, Path(plain) / "decrypted", key, result[0]))
    copy = timed(lambda: copy_tree_files(source, base / f"{name}-copy"))
    authenticated_out = base / f"{name}-authenticated"
    authenticate = timed(
        lambda: protect_tree(source, authenticated_out, key, [Region("/", Protection.AUTHENTICATED)])
    )

    print(f"\n{name} files, {megabytes:.0f} MiB")
    print(f"  raw AES-256-GCM (ceiling)     {megabytes / raw:8.0f} MiB/s")
    print(f"  plain copy, no crypto         {megabytes / copy:8.0f} MiB/s   {raw / copy:5.2f} x raw AES-GCM")
    rows = [
        ("protect, encrypted", protect),
        ("verify, encrypted", verify),
        ("decrypt (to tmpfs)", decrypt),
        ("protect, authenticated", authenticate),
    ]
    for label, seconds in rows:
        print(f"  {label:28}  {megabytes / seconds:8.0f} MiB/s   {raw / seconds:5.2f} x raw AES-GCM")

    if not with_gocryptfs:
        return
    mount = GocryptfsMount(base / name)
    mount.mount()
    try:
        write = timed(lambda: copy_tree_files(source, mount.plain))
    finally:
        mount.unmount()
    mount.mount()  # a fresh mount: reads must decrypt, not come from the FUSE page cache
    try:
        read = timed(lambda: read_all(mount.plain))
    finally:
        mount.unmount()
    print(
        f"  gocryptfs write               {megabytes / write:8.0f} MiB/s   {raw / write:5.2f} x raw AES-GCM"
    )
    print(f"  gocryptfs read                {megabytes / read:8.0f} MiB/s   {raw / read:5.2f} x raw AES-GCM")
    print(f"  protect / plain copy          {copy / protect:8.2f} x")
    print(f"  protect / gocryptfs write     {write / protect:8.2f} x")
    print(f"  decrypt / gocryptfs read      {read / decrypt:8.2f} x")
    print(f"  verify  / gocryptfs read      {read / verify:8.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="total size of the data, half large, half mixed")
    parser.add_argument("--no-gocryptfs", action="store_true", help="skip the gocryptfs baseline")
    args = parser.parse_args()
    with_gocryptfs = not args.no_gocryptfs and shutil.which("gocryptfs") is not None
    if not with_gocryptfs:
        print("gocryptfs baseline skipped (not installed, or --no-gocryptfs)")
    with tempfile.TemporaryDirectory(prefix="fspf-bench-") as directory:
        base = Path(directory)
        for name in ("large", "mixed"):
            measure(name, args.mib * MIB // 2, base, with_gocryptfs)


if __name__ == "__main__":
    main()
