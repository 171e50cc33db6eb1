"""The runtime's own suite (Go), its hygiene, and the promise that its binaries are the sources': the same
sources give the same bytes (so the same measurement), and the package carries exactly those."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.runtime.binary import BINARIES
from tests.support.paths import REPOSITORY
from tests.support.runtime_harness import RUNTIME_SOURCES, go, go_environment

pytestmark = pytest.mark.slow


def run_go(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [go(), *arguments],
        cwd=RUNTIME_SOURCES,
        env=go_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_go_suite_passes_with_the_shared_vectors() -> None:
    result = run_go("test", "-count=1", "./...")
    assert result.returncode == 0, result.stdout + result.stderr
    for package in ("fspf", "measure", "protocol", "layout", "launcher", "hardware", "cas"):
        assert f"runtime/internal/{package}\t" in result.stdout, result.stdout


def test_go_vet_and_gofmt_are_clean() -> None:
    vet = run_go("vet", "./...")
    assert vet.returncode == 0, vet.stderr
    gofmt = subprocess.run(
        [str(Path(go()).parent / "gofmt"), "-l", "."],
        cwd=RUNTIME_SOURCES,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert gofmt.stdout == "", f"not gofmt-formatted: {gofmt.stdout}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_packaged_runtime_is_what_its_sources_build(tmp_path: Path) -> None:
    """A fresh build, past the cache, gives the packaged binaries byte for byte: static, no build id, no
    path of this machine in them."""
    built = subprocess.run(
        ["bash", str(REPOSITORY / ".ci" / "build-runtime"), "--fresh", str(tmp_path)],
        env=go_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    assert built.stdout.strip() == str(tmp_path)
    for architecture in ("amd64", "arm64"):
        fresh, packaged = tmp_path / f"sconify-run-{architecture}", BINARIES / f"sconify-run-{architecture}"
        assert digest(fresh) == digest(packaged), architecture
        content = fresh.read_bytes()
        assert f"{REPOSITORY}/".encode() not in content and f"{Path.home()}/".encode() not in content
        elf_header = content[:20]
        assert elf_header[:4] == b"\x7fELF"
        machine = int.from_bytes(elf_header[18:20], "little")
        assert machine == {"amd64": 62, "arm64": 183}[architecture]
    interpreter = subprocess.run(
        ["readelf", "--program-headers", str(tmp_path / "sconify-run-amd64")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "INTERP" not in interpreter.stdout and "DYNAMIC" not in interpreter.stdout  # static
