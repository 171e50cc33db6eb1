"""The native counter image, built locally (no Docker Hub here) and cached.

Debian bookworm ``minbase`` from Debian's own packages with ``python3`` and ``python3-click`` (the public
demo uses Alpine with python3 and click), plus the counter under ``/code``. Built with debootstrap once
(about a minute), then kept as an OCI layout in ``~/.cache/pulumi-sconify/test-images`` (or
``$SCONIFY_TEST_CACHE``).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from pulumi_sconify.engine.image.layers import read_layer
from pulumi_sconify.engine.image.oci import Platform
from pulumi_sconify.engine.image.reference import parse_reference
from pulumi_sconify.engine.image.rootfs import RootFilesystem
from pulumi_sconify.engine.image.transport import RegistryOptions, open_source
from tests.support.paths import REPOSITORY

RECIPE = "bookworm-minbase-python3-click-v2"
TAG = "counter"
APP = REPOSITORY / "examples" / "counter" / "app.py"
MIRROR = "http://deb.debian.org/debian"
_SKIP = ("dev/", "proc/", "sys/", "run/", "var/cache/apt/archives/", "var/lib/apt/lists/", "var/log/", "tmp/")


def cache_root() -> Path:
    return Path(
        os.environ.get("SCONIFY_TEST_CACHE", Path.home() / ".cache" / "pulumi-sconify" / "test-images")
    )


def _digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _layer(source: Path, target: Path, prefix: str = "") -> tuple[str, str, int]:
    """A gzip layer of the tree ``source``; returns (digest, diff_id, size)."""
    plain = target.with_suffix(".tar")
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as archive:
        for location in sorted(source.rglob("*")):
            name = prefix + location.relative_to(source).as_posix()
            if any((name + "/").startswith(skip) and name + "/" != skip for skip in _SKIP):
                continue
            info = archive.gettarinfo(str(location), arcname=name)
            if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
                continue
            # The files keep their own times, as in any image a Dockerfile builds: Python's cached
            # bytecode records its source's mtime and is ignored (recompiled at every start) otherwise.
            if info.isfile():
                with location.open("rb") as content:
                    archive.addfile(info, content)
            else:
                archive.addfile(info)
    diff_id = _digest_file(plain)
    with plain.open("rb") as source_stream, gzip.GzipFile(target, "wb", mtime=0, compresslevel=1) as sink:
        shutil.copyfileobj(source_stream, sink, 1 << 20)
    plain.unlink()
    return _digest_file(target), diff_id, target.stat().st_size


DEBIAN_PATH = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]


def write_layout(
    layout: Path,
    trees: list[Path],
    history: list[str],
    command: list[str] | None = None,
    environment: list[str] | None = None,
) -> None:
    """An OCI layout at ``layout`` (tag :data:`TAG`) with one layer per tree, ``command`` (by default the
    counter's) and ``environment`` (by default Debian's ``PATH``)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers = []
    for index, tree in enumerate(trees):
        digest, diff_id, size = _layer(tree, layout / f"layer-{index}.tar.gz")
        shutil.move(layout / f"layer-{index}.tar.gz", blobs / digest.removeprefix("sha256:"))
        layers.append((digest, diff_id, size))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": DEBIAN_PATH if environment is None else environment,
                "Cmd": command or ["python3", "/code/app.py"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id, _ in layers]},
            "history": [{"created_by": step} for step in history],
        },
        sort_keys=True,
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    (blobs / config_digest.removeprefix("sha256:")).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": size,
                }
                for digest, _, size in layers
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_digest.removeprefix("sha256:")).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": TAG},
                    }
                ],
            }
        )
    )


def app_tree(work: Path) -> Path:
    """A tree holding the counter at /code/app.py."""
    app = work / "app" / "code"
    app.mkdir(parents=True)
    shutil.copy(APP, app / "app.py")
    return work / "app"


def _build(layout: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="counter-image-"))
    try:
        rootfs = work / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-click",
                "bookworm",
                str(rootfs),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        write_layout(layout, [rootfs, app_tree(work)], [f"debootstrap {RECIPE}", "COPY app.py /code/"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cached_layout(recipe: str, build: Callable[[Path], None]) -> Path:
    """The cached OCI layout ``build`` makes for ``recipe`` with the current counter app (built on first
    use, and again when the app changes: the cache is named after the recipe and the app's digest)."""
    return cached(f"{recipe}-app-{hashlib.sha256(APP.read_bytes()).hexdigest()[:12]}", build)


def cached(name: str, build: Callable[[Path], None]) -> Path:
    """The OCI layout ``build`` makes, cached as ``name`` (which must change with what goes into it); built
    once under a lock, so parallel workers wait for one build."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    layout = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (layout / "index.json").exists():
            partial = root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            build(partial)
            partial.rename(layout)
    return layout


def unpack_layout(layout: Path, root: Path, tag: str = TAG, apply_owners: bool = False) -> Path:
    """The root file system of the image tagged ``tag`` in ``layout``, applied layer by layer into
    ``root`` as the sconifier reads it (``apply_owners``: and with the owners and extended attributes
    the layers declare, as a container runtime unpacks it)."""
    source = open_source(parse_reference(f"oci:{layout}:{tag}"), RegistryOptions())
    try:
        image = source.resolve(Platform())
        filesystem = RootFilesystem(root, apply_owners=apply_owners)
        for index, layer in enumerate(image.manifest.layers):
            filesystem.apply(read_layer(source.blob(layer), layer.media_type, f"layer {index}"))
        filesystem.finish()
    finally:
        source.close()
    return root


def counter_layout() -> Path:
    """The cached OCI layout of the native counter image (Debian bookworm)."""
    return cached_layout(RECIPE, _build)


if __name__ == "__main__":
    print(counter_layout())
