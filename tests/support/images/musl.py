"""The counter on a musl image, as Alpine's are, built here from Debian's own sources, and cached.

The public demo's native image is Alpine (musl libc, with its own ``python3``). No Alpine mirror is reachable
from the machines this is developed on, so the same kind of image is assembled from parts that are:

- musl 1.2.5 (Alpine 3.21's), from Debian trixie's ``musl`` and ``musl-dev`` packages, unpacked into the
  build's own directory: its loader and C library become ``/lib/ld-musl-x86_64.so.1``, as on Alpine. (Not
  bookworm's musl 1.2.3: its loader cannot relocate ``DT_RELR`` sections, which cryptography's current
  ``musllinux`` wheels carry; the runtime would crash on it, and so would it on Alpine before 3.18.)
- OpenSSL and CPython 3.11 compiled against it from the upstream tarballs Debian ships;
- BusyBox (statically linked) as ``/bin/sh``, click's wheel from PyPI, and the counter under ``/code``.

Everything fetched from Debian is checked the way apt checks it: the suite's signed ``InRelease`` (``gpgv``
with Debian's archive keyring), the index it names by SHA-256, and the file's SHA-256 in that index.

Built once (a few minutes: OpenSSL's libraries and CPython on two cores), then kept as an OCI layout next to
the Debian counter image (:mod:`tests.support.images.counter`).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.images.counter import app_tree, cached_layout, write_layout

RECIPE = "musl1.2.5-python3.11-xattrs-click-v3"
ARCHIVE = "http://deb.debian.org/debian"
SUITE = "bookworm"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MUSL_SUITE = "trixie"
BUSYBOX = Path("/bin/busybox")
CLICK = "click==8.1.8"
UNNEEDED = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3")
"""Parts of the standard library Alpine's ``python3`` package leaves out too."""


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:
        data: bytes = response.read()
    return data


def _verified_release(suite: str) -> str:
    """The archive's ``InRelease`` for ``suite``, after ``gpgv`` has checked its signature."""
    with tempfile.TemporaryDirectory() as directory:
        signed = Path(directory) / "InRelease"
        signed.write_bytes(_fetch(f"{ARCHIVE}/dists/{suite}/InRelease"))
        result = subprocess.run(
            ["gpgv", "--keyring", str(KEYRING), "--output", "-", str(signed)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{suite} InRelease: bad signature: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


def _sha256_section(text: str) -> dict[str, str]:
    """``name -> sha256`` from a ``Checksums-Sha256``/``SHA256`` section of a Debian control text."""
    sums: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line in ("SHA256:", "Checksums-Sha256:"):
            inside = True
        elif inside and line.startswith(" "):
            digest, _, name = line.split()
            sums[name] = digest
        else:
            inside = False
    return sums


def _checked(data: bytes, digest: str, what: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"{what}: SHA-256 differs from the signed index")
    return data


def _index(suite: str, name: str) -> Iterator[tuple[dict[str, str], str]]:
    """The paragraphs of the index ``name`` (e.g. ``main/source/Sources.xz``) of ``suite``, verified:
    (fields, text)."""
    digest = _sha256_section(_verified_release(suite))[name]
    data = lzma.decompress(_checked(_fetch(f"{ARCHIVE}/dists/{suite}/{name}"), digest, f"{suite} {name}"))
    for paragraph in data.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in paragraph.splitlines()
            if ": " in line and not line.startswith(" ")
        )
        yield fields, paragraph


def _missing(wanted: tuple[str, ...], found: dict[str, Path], where: str) -> None:
    missing = set(wanted) - set(found)
    if missing:
        raise RuntimeError(f"not in {where}: {', '.join(sorted(missing))}")


def debian_orig_tarballs(packages: tuple[str, ...], directory: Path) -> dict[str, Path]:
    """The upstream tarball of each source package of :data:`SUITE`, verified and saved in ``directory``."""
    found: dict[str, Path] = {}
    for fields, paragraph in _index(SUITE, "main/source/Sources.xz"):
        package = fields.get("Package")
        if package not in packages or package in found:
            continue
        for name, digest in _sha256_section(paragraph).items():
            if ".orig.tar." in name and not name.endswith(".asc"):
                target = directory / name
                target.write_bytes(_checked(_fetch(f"{ARCHIVE}/{fields['Directory']}/{name}"), digest, name))
                found[package] = target
    _missing(packages, found, f"{SUITE}'s sources")
    return found


def debian_packages(packages: tuple[str, ...], suite: str, directory: Path) -> dict[str, Path]:
    """The amd64 ``.deb`` of each binary package of ``suite``, verified and saved in ``directory``."""
    found: dict[str, Path] = {}
    for fields, _ in _index(suite, "main/binary-amd64/Packages.xz"):
        package = fields.get("Package")
        if package in packages and package not in found:
            target = directory / Path(fields["Filename"]).name
            data = _fetch(f"{ARCHIVE}/{fields['Filename']}")
            target.write_bytes(_checked(data, fields["SHA256"], target.name))
            found[package] = target
    _missing(packages, found, f"{suite}'s packages")
    return found


def _toolchain(work: Path) -> tuple[Path, Path]:
    """A C compiler for musl 1.2.5 in ``work`` (gcc with musl's own specs, pointed at the unpacked
    packages, plus the kernel's headers, which OpenSSL and CPython include) and musl's loader. Programs
    it links run on this machine through that loader; the image's are pointed at ``/lib`` afterwards."""
    musl = work / "musl"
    for deb in debian_packages(("musl", "musl-dev"), MUSL_SUITE, work).values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(musl)], check=True, timeout=120)
    include, library = musl / "usr/include/x86_64-linux-musl", musl / "usr/lib/x86_64-linux-musl"
    loader = library / "libc.so"
    specs = (library / "musl-gcc.specs").read_text()
    specs = specs.replace("/usr/include/x86_64-linux-musl", str(include))
    specs = specs.replace("/usr/lib/x86_64-linux-musl", str(library))
    specs = specs.replace("-dynamic-linker /lib/ld-musl-x86_64.so.1", f"-dynamic-linker {loader}")
    (work / "musl.specs").write_text(specs)
    headers = work / "kernel-headers"
    headers.mkdir()
    for name, target in (
        ("linux", "/usr/include/linux"),
        ("asm-generic", "/usr/include/asm-generic"),
        ("asm", "/usr/include/x86_64-linux-gnu/asm"),
    ):
        (headers / name).symlink_to(target)
    wrapper = work / "musl-cc"
    wrapper.write_text(  # CPython's configure and setup.py compare the multiarch name with musl's
        "#!/bin/sh\n"
        'case "$1" in -print-multiarch|--print-multiarch) echo x86_64-linux-musl; exit 0;; esac\n'
        f'exec gcc -specs {work / "musl.specs"} -isystem {headers} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, loader


def _run(command: list[str], directory: Path, log: Path, environment: dict[str, str] | None = None) -> None:
    with log.open("ab") as sink:
        result = subprocess.run(
            command, cwd=directory, stdout=sink, stderr=subprocess.STDOUT, env=environment, check=False
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed in {directory}:\n{tail}")


def _unpack(tarball: Path, work: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        shutil.unpack_archive(tarball, scratch, filter="data")  # nothing outside, no special files
        (top,) = Path(scratch).iterdir()
        return Path(shutil.move(top, work / top.name))


def _build_openssl(tarball: Path, work: Path, compiler: Path) -> Path:
    source, prefix, log = _unpack(tarball, work), work / "openssl", work / "openssl.log"
    environment = {**os.environ, "CC": str(compiler)}
    configure = [
        "./Configure",
        "linux-x86_64",
        "no-shared",  # linked into CPython's _ssl and _hashlib: nothing more to carry into the image
        "no-tests",
        "no-afalgeng",
        "no-engine",
        "no-dso",
        f"--prefix={prefix}",
        "--libdir=lib",
    ]
    _run(configure, source, log, environment)
    _run(["make", f"-j{os.cpu_count() or 1}", "build_libs"], source, log, environment)
    _run(["make", "install_dev"], source, log, environment)
    return prefix


_NOT_HURD = " && !defined(__FreeBSD_kernel__) && !defined(__GNU__)\n"
XATTR_CONDITION = "#if defined(HAVE_SYS_XATTR_H) && defined(__GLIBC__)" + _NOT_HURD
XATTR_CONDITION_MUSL = (
    "#if defined(HAVE_SYS_XATTR_H) && defined(__linux__)" + _NOT_HURD + "#  include <linux/limits.h>\n"
)


def _enable_xattrs(source: Path) -> None:
    """CPython before 3.11.3 offers ``os.listxattr`` and its kin only with glibc; Alpine's Pythons have them
    (CPython's own fix, gh-101858, applied here to Debian's 3.11.2 as it was upstream)."""
    module = source / "Modules" / "posixmodule.c"
    text = module.read_text()
    if XATTR_CONDITION not in text:
        raise RuntimeError(f"{module}: the xattr condition of CPython 3.11.2 is not there")
    module.write_text(text.replace(XATTR_CONDITION, XATTR_CONDITION_MUSL, 1))


def _build_python(tarball: Path, work: Path, compiler: Path, openssl: Path, rootfs: Path) -> None:
    source, log = _unpack(tarball, work), work / "python.log"
    _enable_xattrs(source)
    # No pkg-config: it would offer the build machine's (glibc) zlib, libffi and others, which musl
    # cannot link; modules without their library are left out, as the ones Alpine splits off.
    environment = {**os.environ, "CC": str(compiler), "PKG_CONFIG_LIBDIR": str(work / "no-pkg-config")}
    configure = [
        "./configure",
        "--prefix=/usr",
        f"--with-openssl={openssl}",
        "--with-openssl-rpath=no",
        "--without-ensurepip",
        "--disable-test-modules",
    ]
    _run(configure, source, log, environment)
    _run(["make", f"-j{os.cpu_count() or 1}"], source, log, environment)
    _run(["make", "install", f"DESTDIR={rootfs}"], source, log, environment)


def _complete(rootfs: Path, work: Path, loader: Path) -> None:
    """What makes the interpreter an Alpine-like image: musl's loader, a shell, click; no build leftovers."""
    library = rootfs / "usr" / "lib" / "python3.11"
    for name in UNNEEDED:
        shutil.rmtree(library / name, ignore_errors=True)
    for optimised in library.rglob("*.opt-[12].pyc"):  # bytecode for -O and -OO, which nothing here uses
        optimised.unlink()
    for leftover in (*library.glob("config-3.11-*"), rootfs / "usr" / "include", rootfs / "usr" / "share"):
        shutil.rmtree(leftover, ignore_errors=True)
    binaries = [rootfs / "usr" / "bin" / "python3.11", *(library / "lib-dynload").glob("*.so")]
    subprocess.run(["strip", "--strip-unneeded", *map(str, binaries)], check=True, timeout=300)  # as Alpine's
    (rootfs / "lib").mkdir()
    shutil.copy2(loader, rootfs / "lib" / "ld-musl-x86_64.so.1")
    (rootfs / "lib" / "libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    (rootfs / "bin").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "ls"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "usr" / "bin" / "python3").unlink(missing_ok=True)
    (rootfs / "usr" / "bin" / "python3").symlink_to("python3.11")
    for directory in ("tmp", "etc", "proc", "sys", "dev"):
        (rootfs / directory).mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    wheels = work / "wheels"
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run(
        [*download, "-d", str(wheels), CLICK],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("click-*.whl")
    site_packages = library / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)
    interpreter = rootfs / "usr" / "bin" / "python3.11"
    in_image = "/usr/lib/python3.11/site-packages"  # the file names tracebacks show
    subprocess.run(  # the image's interpreter (ours, just built), as Alpine's package manager does
        [
            str(interpreter),
            "-m",
            "compileall",
            "-q",
            "-d",
            in_image,
            str(site_packages),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        env={"PYTHONHOME": str(rootfs / "usr")},
    )
    # Built to run here through the unpacked loader; in the image, the loader is where Alpine has it.
    subprocess.run(
        ["patchelf", "--set-interpreter", "/lib/ld-musl-x86_64.so.1", str(interpreter)],
        check=True,
        timeout=60,
    )


def _build(layout: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="musl-image-"))
    try:
        tarballs = debian_orig_tarballs(("openssl", "python3.11"), work)
        compiler, loader = _toolchain(work)
        openssl = _build_openssl(tarballs["openssl"], work, compiler)
        rootfs = work / "rootfs"
        _build_python(tarballs["python3.11"], work, compiler, openssl, rootfs)
        _complete(rootfs, work, loader)
        write_layout(
            layout,
            [rootfs, app_tree(work)],
            [f"{RECIPE}: musl, OpenSSL and CPython from {SUITE}'s sources", "COPY app.py /code/"],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def musl_counter_layout() -> Path:
    """The cached OCI layout of the counter on musl (built on first use)."""
    return cached_layout(RECIPE, _build)


if __name__ == "__main__":
    print(musl_counter_layout())
