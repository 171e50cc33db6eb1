"""Benchmark of the runtime: container start-up against the native image, and volume open + commit
against raw AES-256-GCM over the same bytes.

1. Start-up: the native counter image and its confidential version, each run to completion in podman
   (runc) five times; the median wall time of each, and the ratio. The confidential run measures the
   image, attests to a local CAS, verifies and decrypts /code, opens and commits the volume.
2. Volumes of 1, 100 and 1000 MiB (one file): commit (encrypt, write, fsync, CAS swap in memory) and open
   (read, verify, decrypt into tmpfs), against AES-256-GCM over the same bytes in memory.

Run as root: ``.venv/bin/python benchmarks/runtime.py [--skip-containers]``. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the counter image and server harnesses
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pulumi_sconify.provider.fspf import InMemoryAnchor, Volume, generate_key
from tests.cas.harness import RunningCas, identity
from tests.image.confidential_counter import PODMAN, ConfidentialCounter
from tests.image.counter_image import TAG, counter_layout

MIB = 1024 * 1024


def median_seconds(command: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup(base: Path) -> None:
    cas = RunningCas(base / "cas").start()
    try:
        counter = ConfidentialCounter(cas, identity(base, "owner"), base, namespace="ns-bench")
        native_layout = base / "native"  # podman cannot name an image from a path with a dot directory
        shutil.copytree(counter_layout(), native_layout)
        native = median_seconds([*PODMAN, "--tmpfs", "/V1", f"oci:{native_layout}:{TAG}"])
        confidential = median_seconds(counter.command())
        print("start-up (median of 5 complete runs of the counter, podman included)")
        print(f"  native image          {native:6.2f} s")
        print(f"  confidential image    {confidential:6.2f} s   {confidential / native:5.2f} x native")
    finally:
        cas.stop()


def _raw_seal(payload: bytes, cipher: AESGCM, nonce: bytes) -> None:
    view = memoryview(payload)
    for offset in range(0, len(payload), MIB):
        cipher.encrypt(nonce, view[offset : offset + MIB], None)


def _raw_store(payload: bytes, cipher: AESGCM, nonce: bytes, path: Path) -> None:
    view = memoryview(payload)
    with path.open("wb") as sink:
        for offset in range(0, len(payload), MIB):
            sink.write(cipher.encrypt(nonce, view[offset : offset + MIB], None))
        sink.flush()
        os.fsync(sink.fileno())


def _raw_load(path: Path, cipher: AESGCM, nonce: bytes, target: Path) -> None:
    with path.open("rb") as source, target.open("wb") as sink:
        while block := source.read(MIB + 16):
            sink.write(cipher.decrypt(nonce, block, None))


def volumes(base: Path) -> None:
    print("volume of one file: commit and open, against two baselines over the same bytes:")
    print("  raw:    AES-256-GCM in memory (the issue's baseline)")
    print("  stored: AES-256-GCM plus writing and fsyncing the ciphertext to the same disk (commit), or")
    print("          reading it back and writing the plaintext to memory (open): the least any encrypted")
    print("          volume on that disk must do")
    memory = Path("/dev/shm") if Path("/dev/shm").is_dir() else base
    for size in (1, 100, 1000):
        payload = os.urandom(size * MIB)
        cipher = AESGCM(generate_key())
        nonce = os.urandom(12)
        start = time.perf_counter()
        _raw_seal(payload, cipher, nonce)
        raw = time.perf_counter() - start
        start = time.perf_counter()
        _raw_store(payload, cipher, nonce, base / "raw.bin")
        stored = time.perf_counter() - start
        storage = base / f"storage-{size}"
        storage.mkdir()
        anchor = InMemoryAnchor()
        key = generate_key()
        with (
            tempfile.TemporaryDirectory(dir=memory) as first,
            tempfile.TemporaryDirectory(dir=memory) as second,
        ):
            start = time.perf_counter()
            _raw_load(base / "raw.bin", cipher, nonce, Path(second) / "raw.bin")
            loaded = time.perf_counter() - start
            (Path(second) / "raw.bin").unlink()
            volume = Volume.open(storage, Path(first), name="V1", key=key, anchor=anchor)
            (Path(first) / "data.bin").write_bytes(payload)
            start = time.perf_counter()
            volume.commit()
            commit = time.perf_counter() - start
            start = time.perf_counter()
            Volume.open(storage, Path(second), name="V1", key=key, anchor=anchor)
            opened = time.perf_counter() - start
        del payload
        shutil.rmtree(storage)
        (base / "raw.bin").unlink()
        print(
            f"  {size:5d} MiB  commit {commit:6.3f} s: {commit / raw:5.2f} x raw, "
            f"{commit / stored:5.2f} x stored   open {opened:6.3f} s: {opened / raw:5.2f} x raw, "
            f"{opened / loaded:5.2f} x stored"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-containers", action="store_true", help="only the volume figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as directory:
        if not args.skip_containers:
            startup(Path(directory))
        volumes(Path(directory))


if __name__ == "__main__":
    main()
