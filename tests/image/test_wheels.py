"""Wheels for an image's own Python (the CAS image's): picked for its version, C library and architecture."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.image.wheels import Target, WheelsError, detect_target
from tests.support.images.counter import counter_layout, unpack_layout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def counter_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack_layout(counter_layout(), tmp_path_factory.mktemp("counter-root"))


def test_target_of_the_debian_counter_image(counter_root: Path) -> None:
    assert detect_target(counter_root, "amd64") == Target("3.11", "glibc", "x86_64")
    assert Target("3.12", "musl", "x86_64").platforms[0] == "musllinux_1_2_x86_64"


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
    with pytest.raises(WheelsError, match=r"the image's musl is 1\.2\.3: .* need musl 1\.2\.4 or newer"):
        detect_target(musl_root(tmp_path, b"1.2.3"), "amd64")


def test_an_image_without_python_is_refused(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    with pytest.raises(WheelsError, match="no /usr/bin/python3"):
        detect_target(tmp_path, "amd64")


def test_the_wheel_cache_is_keyed_by_the_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed list of requirements is fetched anew, never served from the cache of the old list (a CAS
    image built with a stale cache lacked a new dependency and could not start)."""
    from pulumi_sconify.engine.image import wheels

    target = wheels.Target("3.11", "glibc", "amd64", "/usr/bin/python3")
    downloads: list[list[str]] = []

    def download(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        downloads.append(command)
        destination = Path(command[command.index("-d") + 1])
        (destination / f"w{len(downloads)}-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", download)
    first = wheels.fetch_wheels(target, ("one",), tmp_path, name="cas")
    assert wheels.fetch_wheels(target, ("one",), tmp_path, name="cas") == first  # cached
    second = wheels.fetch_wheels(target, ("one", "two"), tmp_path, name="cas")
    assert len(downloads) == 2 and downloads[1][-2:] == ["one", "two"]
    assert second != first
