"""Build small native images for tests, with tarfile directly (independent of the code under test)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET = b"def main():  # the secret algorithm 5e1f9c0d\n    print('counting')\n"
HELPER = b"SECRET_HELPER = 'b7d41a02'\n"


@dataclass
class Entry:
    path: str
    content: bytes | None = None
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    linkname: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def tar_bytes(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            member = tarfile.TarInfo(entry.path)
            member.type = entry.kind
            member.mode = entry.mode
            member.linkname = entry.linkname
            member.mtime = 1_700_000_000
            for key, value in entry.extra.items():
                setattr(member, key, value)
            content = None
            if entry.kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                data = entry.content or b""
                member.size = len(data)
                content = io.BytesIO(data)
            archive.addfile(member, content)
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BASE_LAYER = [
    Entry("usr/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("usr/bin/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("usr/bin/python3.11", b"#!/bin/sh\necho interpreter\n", mode=0o755),
    Entry("usr/bin/python3", kind=tarfile.SYMTYPE, linkname="python3.11", mode=0o777),
    Entry("usr/lib/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("usr/lib/python3.11/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("usr/lib/python3.11/click.py", b"# click\n"),
    Entry("usr/lib/python3.11/os.py", b"# the standard library, abridged\n"),
    Entry("usr/lib/libc.so.6", b"\x7fELF fake libc", mode=0o755),
    Entry("etc/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("etc/hostname", b"native\n"),
    Entry("tmp/", kind=tarfile.DIRTYPE, mode=0o1777),
]
APP_LAYER = [
    Entry("code/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("code/app.py", SECRET),
    Entry("code/lib/", kind=tarfile.DIRTYPE, mode=0o755),
    Entry("code/lib/helper.py", HELPER),
]


def write_layout(
    directory: Path,
    tag: str,
    layers: list[list[Entry]],
    *,
    env: list[str] | None = None,
    architecture: str = "amd64",
    raw_layers: list[bytes] | None = None,
    compressed_layers: list[bytes] | None = None,
    declared_sizes: list[int] | None = None,
) -> str:
    """An OCI layout with one image; returns the manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    tars = raw_layers if raw_layers is not None else [tar_bytes(layer) for layer in layers]
    descriptors = []
    for index, tar in enumerate(tars):
        compressed = compressed_layers[index] if compressed_layers else gz(tar)
        (blobs / digest(compressed).removeprefix("sha256:")).write_bytes(compressed)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest(compressed),
                "size": declared_sizes[index] if declared_sizes else len(compressed),
            }
        )
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {
                "Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "Cmd": ["python3", "/code/app.py"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in tars]},
            "history": [{"created_by": "test"}],
        }
    ).encode()
    (blobs / digest(config).removeprefix("sha256:")).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    (blobs / digest(manifest).removeprefix("sha256:")).write_bytes(manifest)
    index_path = directory / "index.json"
    layout_index: dict[str, Any] = (
        json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    )
    layout_index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest),
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
            "platform": {"os": "linux", "architecture": architecture},
        }
    )
    index_path.write_text(json.dumps(layout_index))
    return digest(manifest)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("skopeo")
    assert executable, "skopeo is installed by .ci/setup"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300, check=True)


def push_layout(layout: Path, tag: str, registry_host: str, repository: str) -> None:
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{layout}:{tag}",
        f"docker://{registry_host}/{repository}:{tag}",
    )


def layer_files(registry_host: str, image: str, target: Path) -> dict[str, bytes]:
    """Every blob of an image (via skopeo), layers decompressed: what anyone pulling it gets."""
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry_host}/{image}", f"dir:{target}")
    blobs = {}
    for path in target.iterdir():
        data = path.read_bytes()
        blobs[path.name] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return blobs


def append_layer(layout: Path, tag: str, entries: list[Entry], out: Path) -> None:
    """A copy of the OCI layout ``layout`` at ``out`` whose image ``tag`` has one more layer on top (what
    anyone who can push to a registry can do to an image)."""
    shutil.copytree(layout, out)
    blobs = out / "blobs" / "sha256"
    index = json.loads((out / "index.json").read_text())
    descriptor = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )
    manifest = json.loads((blobs / descriptor["digest"].removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    tar = tar_bytes(entries)
    compressed = gz(tar)
    (blobs / digest(compressed).removeprefix("sha256:")).write_bytes(compressed)
    manifest["layers"].append(
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest(compressed),
            "size": len(compressed),
        }
    )
    config["rootfs"]["diff_ids"].append(digest(tar))
    config_bytes = json.dumps(config).encode()
    (blobs / digest(config_bytes).removeprefix("sha256:")).write_bytes(config_bytes)
    manifest["config"] = {**manifest["config"], "digest": digest(config_bytes), "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest).encode()
    (blobs / digest(manifest_bytes).removeprefix("sha256:")).write_bytes(manifest_bytes)
    descriptor.update(digest=digest(manifest_bytes), size=len(manifest_bytes))
    (out / "index.json").write_text(json.dumps(index))
