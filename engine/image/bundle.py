"""The runtime's code and dependencies, assembled for one image.

The runtime runs on the image's own ``python3`` — nothing of the build machine — so what it needs must
match that image: its Python version (``/usr/lib/python3.X``), its C library (glibc, or musl as on
Alpine) and its architecture. The runtime needs the standard library and ``cryptography`` (AES-GCM,
with ``cffi``); those come as binary wheels from PyPI for exactly that target (``manylinux`` for glibc,
``musllinux`` for musl), downloaded once and cached, and unpacked with the engine's own pure-Python
modules into one directory of the image (``/sconify/lib``).

The bundle also carries its bytecode: the runtime starts with every container and must not compile
its modules each time (an image's root is read-only, and the runtime runs with ``-B`` anyway: a
``__pycache__`` written at run time would change the measurement). Bytecode is specific to a Python
minor version, so it is compiled by an interpreter of the image's version on the build machine when
there is one (the one running the sconifier, or ``python3.X`` on ``PATH``); never by the image's own
interpreter, which would run the image's code on the build machine. The ``.pyc`` files are
*unchecked-hash* ones (PEP 552): valid whatever the files' times, and never compared with their source
— sound here because both lie in the authenticated ``/sconify`` region and so are measured and
verified. Without such an interpreter the image still works; its runtime compiles at each start.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SconifyError
from ..layout import RUNTIME_LIBRARY
from ..version import __version__
from .rootfs import resolve_inside

DEPENDENCIES = ("cryptography", "cffi", "pycparser")
ENGINE_PACKAGES = ("fspf", "runtime")
ENGINE_MODULES = ("errors.py", "layout.py", "vocabulary.py")
"""Engine subpackages the runtime imports (pure Python); nothing else of the engine goes into images."""
ARCHITECTURES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
"""The images' architectures the runtime bundle is made for (OCI's name, or the machine's), each with the
machine name its wheels are tagged with."""
_PYTHON_DIRECTORY = re.compile(r"python(3\.\d+)$")


class BundleError(SconifyError):
    """The image offers no Python the runtime can run on, or its dependencies cannot be had."""


@dataclass(frozen=True)
class Target:
    """What the runtime's native dependencies must be built for."""

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
        raise BundleError(f"the image has no {where}: the open engine runs on the image's own Python")
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
        raise BundleError(f"no Python standard library under {prefix}/lib/python3.X in the image")
    loaders = sorted((root / "lib").glob("ld-musl-*.so.1"))
    musl = bool(loaders)
    if musl:
        _require_musl_with_relr(resolve_inside(root, "/lib/" + loaders[0].name, follow_last=True))
    machine = ARCHITECTURES.get(architecture)
    if machine is None:
        raise BundleError(f"architecture {architecture!r} is not supported by the runtime bundle")
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
        raise BundleError(
            f"the image's musl is {version}: the runtime's cryptography wheels need musl {minimum} or newer "
            "(Alpine 3.18 or newer); rebuild the image on a newer base"
        )


def cache_directory() -> Path:
    return Path.home() / ".cache" / "pulumi-sconify" / "wheels"


def fetch_wheels(
    target: Target,
    cache: Path | None = None,
    requirements: tuple[str, ...] = DEPENDENCIES,
    with_dependencies: bool = False,
    name: str = "runtime",
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
        raise BundleError(
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
                    raise BundleError(f"{wheel.name}: unsafe path {member!r}")
            archive.extractall(destination)


def bytecode_compiler(target: Target) -> str | None:
    """An interpreter on this machine that writes bytecode for ``target`` (same minor version), or None."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == target.python:
        return sys.executable
    seen: set[str] = set()
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = shutil.which(f"python{target.python}", path=directory)
        if candidate is None or candidate in seen:
            continue
        seen.add(candidate)
        probe = subprocess.run(
            [candidate, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # a pyenv shim for a version that is not selected is on PATH, but fails: try the next one
        if probe.returncode == 0 and probe.stdout.strip() == target.python:
            return candidate
    return None


def compile_bytecode(compiler: str, directory: Path, image_path: str) -> None:
    """Compile every module under ``directory`` (the image's ``image_path``) to unchecked-hash bytecode."""
    result = subprocess.run(
        [
            compiler,
            "-I",
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            image_path,  # the file names tracebacks show are the image's
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise BundleError(f"compiling the runtime's bytecode with {compiler} failed: {result.stdout.strip()}")


def assemble(
    target: Target,
    destination: Path,
    cache: Path | None = None,
    image_path: str = RUNTIME_LIBRARY,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Fill ``destination`` (the image's ``image_path``) with the dependencies, the engine's runtime code
    and, when an interpreter of the image's Python version is at hand, their bytecode."""
    unpack_wheels(fetch_wheels(target, cache, progress=progress), destination)
    engine = Path(__file__).resolve().parents[1]
    package = destination / "pulumi_sconify"
    bundled = package / "engine"
    bundled.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""The parts of pulumi-sconify a confidential image carries."""\n')
    (bundled / "__init__.py").write_text("")
    # A constant, not importlib.metadata: that import alone costs the runtime ~20 ms at every start.
    (bundled / "version.py").write_text(f'"""The engine\'s version."""\n\n__version__ = {__version__!r}\n')
    for name in ENGINE_MODULES:
        shutil.copy2(engine / name, bundled / name)
    for name in ENGINE_PACKAGES:
        # Whole: runtime/ and fspf/ are what runs in the image (fspf with its writer, which the runtime
        # does not call: small, and measured with the rest).
        shutil.copytree(
            engine / name,
            bundled / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    compiler = bytecode_compiler(target)
    if compiler is None:
        progress(
            f"no Python {target.python} on this machine: the runtime will compile its modules at every "
            "start (slower); install python" + target.python + " to ship its bytecode"
        )
        return
    compile_bytecode(compiler, destination, image_path)
    progress(f"runtime bytecode compiled with {compiler} (Python {target.python})")
