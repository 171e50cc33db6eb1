"""The runtime bundle runs on the image's own Python: cryptography for its libc, the engine's code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pulumi_sconify.engine.image.bundle import (
    BundleError,
    Target,
    assemble,
    bytecode_compiler,
    detect_target,
)
from tests.support.images.counter import counter_layout, unpack_layout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def counter_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack_layout(counter_layout(), tmp_path_factory.mktemp("counter-root"))


def test_target_of_the_debian_counter_image(counter_root: Path) -> None:
    assert detect_target(counter_root, "amd64") == Target("3.11", "glibc", "x86_64")
    assert Target("3.12", "musl", "x86_64").platforms[0] == "musllinux_1_2_x86_64"


def test_bundle_imports_on_the_images_python(counter_root: Path, tmp_path: Path) -> None:
    assert shutil.which("chroot")
    lib = counter_root / "sconify" / "lib"
    said: list[str] = []
    assemble(detect_target(counter_root, "amd64"), lib, cache=tmp_path / "wheels", progress=said.append)
    assert any("runtime bytecode compiled" in line for line in said), said
    assert not (lib / "pulumi_sconify" / "engine" / "image").exists()  # only what the runtime needs
    program = (
        "import sys; sys.path.insert(0, '/sconify/lib')\n"
        "import os\n"
        "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
        "from pulumi_sconify.engine.fspf import Volume, verify_tree\n"
        "from pulumi_sconify.engine.runtime.measure import measure_root\n"
        "print(len(AESGCM(os.urandom(32)).encrypt(os.urandom(12), b'counter', None)), sys.version_info[:2])\n"
    )
    result = subprocess.run(
        ["chroot", str(counter_root), "python3", "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "23 (3, 11)"


def test_bundle_bytecode_is_what_the_images_python_loads(counter_root: Path) -> None:
    """The runtime starts from shipped bytecode: unchecked-hash .pyc files (valid whatever the files'
    times in the layer) that the image's own interpreter, run as the entrypoint runs it, loads."""
    lib = counter_root / "sconify" / "lib"
    if not (lib / "pulumi_sconify").exists():
        assemble(detect_target(counter_root, "amd64"), lib)
    cached = lib / "pulumi_sconify" / "engine" / "runtime" / "__pycache__" / "launcher.cpython-311.pyc"
    assert int.from_bytes(cached.read_bytes()[4:8], "little") == 0b01  # hash-based, source not checked
    result = subprocess.run(
        [
            "chroot",
            str(counter_root),
            "python3",
            "-I",
            "-B",
            "-v",
            "-c",
            "import sys; sys.path.insert(0, '/sconify/lib'); import pulumi_sconify.engine.runtime.launcher",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    launcher = "/sconify/lib/pulumi_sconify/engine/runtime/__pycache__/launcher"
    assert f"code object from '{launcher}" in result.stderr
    assert "cryptography/hazmat/bindings/__pycache__/" in result.stderr  # the wheels' modules too


def test_no_bytecode_without_an_interpreter_of_the_images_version() -> None:
    assert bytecode_compiler(Target("3.99", "glibc", "x86_64")) is None
    assert bytecode_compiler(Target(f"{sys.version_info.major}.{sys.version_info.minor}", "glibc", "x86_64"))


def test_a_broken_interpreter_first_on_path_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a pyenv shim for a version that is not selected: found first, fails; the next one is used."""
    broken, working = tmp_path / "shims", tmp_path / "bin"
    broken.mkdir()
    working.mkdir()
    (broken / "python3.99").write_text("#!/bin/sh\necho 'pyenv: python3.99: not installed' >&2\nexit 127\n")
    (working / "python3.99").write_text("#!/bin/sh\necho 3.99\n")  # answers the version probe
    for script in (broken / "python3.99", working / "python3.99"):
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{working}")
    assert bytecode_compiler(Target("3.99", "glibc", "x86_64")) == str(working / "python3.99")
    monkeypatch.setenv("PATH", str(broken))
    assert bytecode_compiler(Target("3.99", "glibc", "x86_64")) is None


def musl_root(root: Path, version: bytes) -> Path:
    """A root with Python 3.12's layout and a musl loader announcing ``version`` as musl's does."""
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3").write_bytes(b"")
    (root / "usr" / "lib" / "python3.12").mkdir(parents=True)
    (root / "usr" / "lib" / "python3.12" / "os.py").write_text("")
    (root / "lib").mkdir()
    (root / "lib" / "ld-musl-x86_64.so.1").write_bytes(b"\x7fELF...\x00" + version + b"\x00...")
    return root


def test_a_musl_image_gets_musllinux_wheels(tmp_path: Path) -> None:
    target = detect_target(musl_root(tmp_path, b"1.2.5"), "amd64")
    assert target == Target("3.12", "musl", "x86_64")
    assert target.platforms == ("musllinux_1_2_x86_64", "musllinux_1_1_x86_64")


def test_a_musl_too_old_for_the_wheels_is_refused(tmp_path: Path) -> None:
    """musl before 1.2.4 cannot load the wheels (DT_RELR): a crash at every start, refused at build time."""
    with pytest.raises(BundleError, match=r"the image's musl is 1\.2\.3: .* need musl 1\.2\.4 or newer"):
        detect_target(musl_root(tmp_path, b"1.2.3"), "amd64")


def test_an_image_without_python_is_refused(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    with pytest.raises(BundleError, match="no /usr/bin/python3"):
        detect_target(tmp_path, "amd64")


def test_the_wheel_cache_is_keyed_by_the_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed list of requirements is fetched anew, never served from the cache of the old list (a CAS
    image built with a stale cache lacked a new dependency and could not start)."""
    from pulumi_sconify.engine.image import bundle

    target = bundle.Target("3.11", "glibc", "amd64", "/usr/bin/python3")
    downloads: list[list[str]] = []

    def download(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        downloads.append(command)
        destination = Path(command[command.index("-d") + 1])
        (destination / f"w{len(downloads)}-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", download)
    first = bundle.fetch_wheels(target, tmp_path, ("one",), name="cas")
    assert bundle.fetch_wheels(target, tmp_path, ("one",), name="cas") == first  # cached
    second = bundle.fetch_wheels(target, tmp_path, ("one", "two"), name="cas")
    assert len(downloads) == 2 and downloads[1][-2:] == ["one", "two"]
    assert second != first
