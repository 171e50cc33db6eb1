"""Benchmark of the runtime: container start-up against the native image, and volume open + commit
against raw AES-256-GCM over the same bytes.

1. Start-up: the native counter image and its confidential version, each run to completion in podman
   (runc) five times; the median wall time of each, and the ratio; for the Debian (glibc) counter, the
   musl one (Alpine's kind, see tests/support/images/musl.py), BusyBox alone and a scratch image with a
   static Go counter (tests/support/images/minimal.py). The confidential run measures the image (its whole
   root), attests to a local CAS, verifies and decrypts its encrypted directory, opens and commits the
   volume. Debian's PostgreSQL 15 from start to its first answer, natively and confidentially. Then the
   runtime's own peak memory (the harness: attestation, volume, supervision of ``true``).
2. Volumes of 1, 100 and 1000 MiB (one file): commit (encrypt, write, fsync, anchor swap in memory) and
   open (read, verify, decrypt into tmpfs), against AES-256-GCM over as many bytes in memory, and against
   the least an encrypted volume on the same disk must do (encrypt + write + fsync; read + decrypt).

Run as root: ``.venv/bin/python benchmarks/runtime.py [--skip-containers]``. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the counter image and server harnesses
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pulumi_sconify.engine.fspf import InMemoryAnchor, Volume, generate_key
from pulumi_sconify.engine.runtime.binary import BINARIES
from tests.support.cas import RunningCas, identity
from tests.support.images.confidential_counter import PODMAN, ConfidentialCounter
from tests.support.images.counter import TAG, counter_layout
from tests.support.images.minimal import BUSYBOX_COUNTER, busybox_layout, static_layout
from tests.support.images.musl import musl_counter_layout
from tests.support.images.postgres import postgres_layout, postgres_program
from tests.support.policies import counter as counter_policy, namespace, text
from tests.support.processes import free_port
from tests.support.runtime_harness import Harness, build_harness

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
        print("start-up (median of 5 complete runs of the counter, podman included)")
        images = (
            ("Debian (glibc)", counter_layout(), "python3 /code/app.py", ("/code",)),
            ("musl", musl_counter_layout(), "python3 /code/app.py", ("/code",)),
            ("busybox", busybox_layout(), f"/bin/sh -c '{BUSYBOX_COUNTER}'", ()),
            ("static (scratch)", static_layout(), "/counter", ("/conf",)),
        )
        for name, layout, program, dirs in images:
            directory = base / name.split()[0].lower()
            directory.mkdir()
            owner = identity(directory, "owner")
            namespace = f"ns-bench-{directory.name}"
            counter = ConfidentialCounter(
                cas, owner, directory, namespace=namespace, native=layout, program=program, dirs=dirs
            )
            native_layout = directory / "native"  # podman cannot name an image by a path with a dot directory
            shutil.copytree(layout, native_layout)
            native = median_seconds([*PODMAN, "--tmpfs", "/V1", f"oci:{native_layout}:{TAG}"])
            confidential = median_seconds(counter.command())
            print(f"  {name} image")
            print(f"    native              {native:6.2f} s")
            print(f"    confidential        {confidential:6.2f} s   {confidential / native:5.2f} x native")
            print("    where the runtime's time goes (one more run, with SCONE_LOG=INFO):")
            logged = subprocess.run(
                counter.command("--env", "SCONE_LOG=INFO"), check=True, capture_output=True, text=True
            )
            for line in logged.stderr.splitlines():
                if line.startswith("[SCONIFY|INFO]") and "(" in line:
                    print("      " + line.removeprefix("[SCONIFY|INFO] "))
        postgres_startup(cas, base)
        runtime_memory(cas, base)
    finally:
        cas.stop()


def _until_ready(command: list[str], name: str, ready: Callable[[], bool]) -> float:
    """Seconds from starting ``command`` (a container called ``name``) until ``ready()``; then stopped."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready():
        assert process.poll() is None, f"{name} ended before it served"
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    subprocess.run(["podman", "stop", "--time", "120", name], capture_output=True, check=True)
    process.wait()
    return elapsed


def postgres_startup(cas: RunningCas, base: Path) -> None:
    """Debian's PostgreSQL 15 from start to its first answer, on a data directory made by an earlier run:
    natively on a plain directory, and confidentially on its encrypted volume (median of 5 each)."""
    directory = base / "postgres"
    directory.mkdir()
    port = free_port()
    program = postgres_program(port)
    image = ConfidentialCounter(
        cas,
        identity(directory, "owner"),
        directory,
        "ns-bench-pg",
        native=postgres_layout(),
        program=program,
        dirs=(),
    )
    native_layout, plain = directory / "native", directory / "plain"
    shutil.copytree(postgres_layout(), native_layout)
    plain.mkdir()

    def ready() -> bool:
        probe = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-Atc", "select 1"]
        return subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip() == "1"

    native_command = [
        *PODMAN,
        "--name",
        "bench-pg-native",
        "-v",
        f"{plain}:/V1",
        f"oci:{native_layout}:{TAG}",
    ]
    native_command += shlex.split(program)
    times: dict[str, list[float]] = {"native": [], "confidential": []}
    for run in range(6):  # the first run of each initialises its data directory: not counted
        native = _until_ready(native_command, "bench-pg-native", ready)
        confidential = _until_ready(image.command("--name", "bench-pg"), "bench-pg", ready)
        if run:
            times["native"].append(native)
            times["confidential"].append(confidential)
    native, confidential = statistics.median(times["native"]), statistics.median(times["confidential"])
    print("  Debian's PostgreSQL 15 (start until it answers, data directory existing)")
    print(f"    native              {native:6.2f} s")
    print(f"    confidential        {confidential:6.2f} s   {confidential / native:5.2f} x native")


def runtime_memory(cas: RunningCas, base: Path) -> None:
    """The runtime's own peak resident memory, as GNU time reports it for the harness (the runtime's code
    for attestation, the volume and supervision) running ``true`` on a volume of the counter's policy."""
    owner = identity(base, "memory-owner")
    with cas.client(owner) as client:
        client.post_session(namespace("ns-memory"))
        client.post_session(text(counter_policy("ns-memory")))
    harness = Harness(
        build_harness(base),
        cas,
        "ns-memory/python-session/python-service",
        base / "m-storage",
        base / "m-plain",
    )
    measured = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *harness.command(["/bin/true"])],
        capture_output=True,
        text=True,
        check=True,
    )
    print(
        f"  the runtime's peak memory: {int(measured.stderr.split()[-1]) / 1024:.1f} MiB (harness, /bin/true)"
    )
    for architecture in ("amd64", "arm64"):
        size = (BINARIES / f"sconify-run-{architecture}").stat().st_size
        print(f"  image size added by the runtime ({architecture}): {size / 1e6:.1f} MB")


def _best(step: Callable[[], float], repeats: int) -> float:
    return min(step() for _ in range(repeats))


def _raw(size: int, cipher: AESGCM) -> float:
    """AES-256-GCM over ``size`` MiB in memory, 1 MiB at a time (AES-GCM's speed does not depend on the
    bytes, so one block stands for all)."""
    block = os.urandom(MIB)
    start = time.perf_counter()
    for index in range(size):
        cipher.encrypt(index.to_bytes(12, "big"), block, None)
    return time.perf_counter() - start


def _store(plaintext: Path, cipher: AESGCM, ciphertext: Path) -> float:
    """Read the plaintext from memory, encrypt it, write and fsync the ciphertext: a commit's minimum."""
    start = time.perf_counter()
    with plaintext.open("rb") as source, ciphertext.open("wb") as sink:
        index = 0
        while block := source.read(MIB):
            sink.write(cipher.encrypt(index.to_bytes(12, "big"), block, None))
            index += 1
        sink.flush()
        os.fsync(sink.fileno())
    return time.perf_counter() - start


def _load(ciphertext: Path, cipher: AESGCM, plaintext: Path) -> float:
    """Read the ciphertext, decrypt it, write the plaintext to memory: an open's minimum."""
    start = time.perf_counter()
    with ciphertext.open("rb") as source, plaintext.open("wb") as sink:
        index = 0
        while block := source.read(MIB + 16):
            sink.write(cipher.decrypt(index.to_bytes(12, "big"), block, None))
            index += 1
    elapsed = time.perf_counter() - start
    plaintext.unlink()
    return elapsed


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as sink:
        for _ in range(size):
            sink.write(os.urandom(MIB))


def _commit(storage: Path, memory: Path, size: int) -> tuple[float, float]:
    """Commit a volume holding one file of ``size`` MiB, then open it: the two times."""
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir()
    anchor, key = InMemoryAnchor(), generate_key()
    with (
        tempfile.TemporaryDirectory(dir=memory) as first,
        tempfile.TemporaryDirectory(dir=memory) as second,
    ):
        volume = Volume.open(storage, Path(first), name="V1", key=key, anchor=anchor)
        _write_random(Path(first) / "data.bin", size)
        start = time.perf_counter()
        volume.commit()
        commit = time.perf_counter() - start
        shutil.rmtree(first, ignore_errors=True)  # as when a container ends: its memory is given back
        Path(first).mkdir()
        start = time.perf_counter()
        Volume.open(storage, Path(second), name="V1", key=key, anchor=anchor)
        opened = time.perf_counter() - start
    return commit, opened


def volumes(base: Path) -> None:
    print("volume of one file: commit and open, against two baselines over the same bytes:")
    print("  raw:    AES-256-GCM in memory (the issue's baseline)")
    print("  stored: read the plaintext from memory, AES-256-GCM, write and fsync the ciphertext to the")
    print("          same disk (commit); read it back, decrypt, write the plaintext to memory (open):")
    print("          the least any encrypted volume on that disk must do")
    print("  (best of 3 runs; 1 for 1000 MiB, where the VM's cost of fresh memory pages dominates)")
    memory = Path("/dev/shm") if Path("/dev/shm").is_dir() else base
    cipher = AESGCM(generate_key())
    for size in (1, 100, 1000):
        repeats = 1 if size >= 1000 else 3
        raw = _best(functools.partial(_raw, size, cipher), repeats)
        with tempfile.TemporaryDirectory(dir=memory) as directory:
            plaintext = Path(directory) / "plain.bin"
            _write_random(plaintext, size)
            stored = _best(functools.partial(_store, plaintext, cipher, base / "raw.bin"), repeats)
            plaintext.unlink()
            loaded = _best(functools.partial(_load, base / "raw.bin", cipher, plaintext), repeats)
        (base / "raw.bin").unlink()
        runs = [_commit(base / f"storage-{size}", memory, size) for _ in range(repeats)]
        shutil.rmtree(base / f"storage-{size}")
        commit, opened = min(run[0] for run in runs), min(run[1] for run in runs)
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
