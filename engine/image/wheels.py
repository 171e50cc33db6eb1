"""Wheels for an image's own Python: what the CAS image needs (its dependencies, for the base image's Python
version, C library and architecture).

A package's native wheels must match the image they run in: its Python version (``/usr/lib/python3.X``),
its C library (glibc, or musl as on Alpine) and its architecture. They come as binary wheels from PyPI for
exactly that target (``manylinux`` for glibc, ``musllinux`` for musl), downloaded once and cached.
(Confidential images need none of this: their runtime is one static binary, :mod:`..runtime.binary`.)
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SconifyError
from .rootfs import resolve_inside

ARCHITECTURES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
"""An image's architecture (OCI's name, or the machine's) to the machine name its wheels are tagged with."""
_PYTHON_DIRECTORY = re.compile(r"python(3\.\d+)$")


class WheelsError(SconifyError):
    """The image offers no Python to run on, or the wheels it needs cannot be had."""


@dataclass(frozen=True)
class Target:
    """What an image's native wheels must be built for."""

    python: str
    """``3.11``"""
    libc: str
    """``glibc`` or ``musl``"""
    architecture: str
    """``x86_64`` or ``aarch64``"""
    executable: str = "/usr/bin/python3"
    """The interpreter in the image."""

    @property
    def platforms(self) -> tuple[str, ...]:
        if self.libc == "musl":
            return (f"musllinux_1_2_{self.architecture}", f"musllinux_1_1_{self.architecture}")
        return (f"manylinux_2_28_{self.architecture}", f"manylinux2014_{self.architecture}")

    @property
    def tag(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.libc}-{self.architecture}"


def detect_target(root: Path, architecture: str, prefixes: tuple[str, ...] = ("/usr",)) -> Target:
    """The target of the image whose root file system is ``root`` (``architecture`` from its config):
    the first of ``prefixes`` with ``bin/python3`` and its standard library."""
    found = [p for p in prefixes if resolve_inside(root, f"{p}/bin/python3", follow_last=True).is_file()]
    if not found:
        where = " or ".join(f"{p}/bin/python3" for p in prefixes)
        raise WheelsError(f"the image has no {where}: the CAS runs on the image's own Python")
    prefix = found[0]
    versions = sorted(
        (
            match.group(1)
            for directory in resolve_inside(root, f"{prefix}/lib", follow_last=True).glob("python3.*")
            if (match := _PYTHON_DIRECTORY.search(directory.name)) and (directory / "os.py").is_file()
        ),
        key=lambda version: tuple(int(part) for part in version.split(".")),
    )
    if not versions:
        raise WheelsError(f"no Python standard library under {prefix}/lib/python3.X in the image")
    loaders = sorted((root / "lib").glob("ld-musl-*.so.1"))
    musl = bool(loaders)
    if musl:
        _require_musl_with_relr(resolve_inside(root, "/lib/" + loaders[0].name, follow_last=True))
    machine = ARCHITECTURES.get(architecture)
    if machine is None:
        raise WheelsError(f"architecture {architecture!r} is not supported")
    return Target(versions[-1], "musl" if musl else "glibc", machine, f"{prefix}/bin/python3")


MUSL_MINIMUM = (1, 2, 4)
"""cryptography's ``musllinux`` wheels (and the ``libgcc_s`` they carry) have ``DT_RELR`` relocations, which
musl's loader applies from 1.2.4 on (Alpine 3.18): an older one loads them unrelocated and crashes."""
_MUSL_VERSION = re.compile(rb"\x00(1\.\d+\.\d+)\x00")


def _require_musl_with_relr(loader: Path) -> None:
    """Refuse an image whose musl is older than :data:`MUSL_MINIMUM` (its version string is in the loader,
    which is also its C library); an image whose version cannot be read is let through."""
    try:
        found = _MUSL_VERSION.search(loader.read_bytes())
    except OSError:
        return
    if found is None:
        return
    version = found.group(1).decode()
    if tuple(int(part) for part in version.split(".")) < MUSL_MINIMUM:
        minimum = ".".join(map(str, MUSL_MINIMUM))
        raise WheelsError(
            f"the image's musl is {version}: cryptography's wheels need musl {minimum} or newer "
            "(Alpine 3.18 or newer); rebuild the image on a newer base"
        )


def cache_directory() -> Path:
    return Path.home() / ".cache" / "pulumi-sconify" / "wheels"


def fetch_wheels(
    target: Target,
    requirements: tuple[str, ...],
    cache: Path | None = None,
    with_dependencies: bool = False,
    name: str = "cas",
    progress: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """Wheels of ``requirements`` (and, ``with_dependencies``, all they need) for ``target``, from the
    cache or from PyPI (then cached under ``name`` and the requirements, so a changed list is fetched
    anew rather than served stale)."""
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    directory = (cache or cache_directory()) / f"{name}-{wanted}-{target.tag}"
    if (directory / ".complete").exists():
        wheels = sorted(directory.glob("*.whl"))
        progress(f"{len(wheels)} wheels for Python {target.python} ({target.tag}) from the cache")
        return wheels
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        *([] if with_dependencies else ["--no-deps"]),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.python,
        "--abi",
        f"cp{target.python.replace('.', '')}",
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(partial),
    ]
    for platform in target.platforms:
        command += ["--platform", platform]
    progress(f"fetching the {name}'s wheels for Python {target.python} ({target.tag}) from PyPI")
    result = subprocess.run(
        [*command, *requirements], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise WheelsError(
            f"cannot download the {name}'s dependencies for {target.tag}: "
            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'pip failed'}"
        )
    (partial / ".complete").touch()
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    wheels = sorted(directory.glob("*.whl"))
    progress(f"fetched {len(wheels)} wheels ({sum(w.stat().st_size for w in wheels)} bytes)")
    return wheels


def unpack_wheels(wheels: list[Path], destination: Path) -> None:
    """Install ``wheels`` into ``destination`` the way ``pip --target`` lays them out (a wheel is a zip
    of its install tree); a member that would land outside is refused."""
    destination.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in sorted(archive.namelist()):
                if member.startswith("/") or ".." in member.split("/"):
                    raise WheelsError(f"{wheel.name}: unsafe path {member!r}")
            archive.extractall(destination)
