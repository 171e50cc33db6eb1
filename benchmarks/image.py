"""Benchmark of image sconification: time against ``skopeo copy`` of the same image between the same two
registries, peak memory, an identical re-run, and memory with a much larger image.

Two Debian ``docker-registry`` processes on loopback (no cross-registry blob mounting for either tool);
the native image is the test suite's counter image (Debian minbase, python3, click: about 200 MB
unpacked), and a second one with an extra 256 MiB layer of incompressible data. Both tools run as child
processes; their peak resident memory comes from ``wait4``. Run: ``.venv/bin/python benchmarks/image.py``.
Not a test: it prints figures.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test harness and fixtures
from tests.support.images.counter import TAG, counter_layout
from tests.support.processes import sconify_executable
from tests.support.registry import Registry


def run(command: list[str]) -> tuple[float, float]:
    """Run a child to completion; returns (seconds, peak resident MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed: {process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def sconify_command(source: str, destination: str, key_file: Path) -> list[str]:
    return [
        sconify_executable(),
        "image",
        "--from",
        source,
        "--to",
        destination,
        "--push-image",
        "--dir",
        "/code",
        "--volume=V1:/V1",
        "--command",
        "python3 /code/app.py",
        "--fspf-key-file",
        str(key_file),
        "--json",
    ]


def big_layout(base: Path, target: Path) -> Path:
    """The counter image plus a 256 MiB layer of random data (run in a child process: the parent's
    peak memory would otherwise be inherited by every child it measures)."""
    shutil.copytree(base, target)
    payload = os.urandom(256 * 1024 * 1024)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        member = tarfile.TarInfo("opt/data.bin")
        member.size = len(payload)
        archive.addfile(member, io.BytesIO(payload))
    plain = tar.getvalue()
    layer = gzip.compress(plain, compresslevel=1, mtime=0)
    blobs = target / "blobs" / "sha256"
    layer_digest = hashlib.sha256(layer).hexdigest()
    (blobs / layer_digest).write_bytes(layer)
    index = json.loads((target / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    config["rootfs"]["diff_ids"].insert(1, "sha256:" + hashlib.sha256(plain).hexdigest())
    config_bytes = json.dumps(config, sort_keys=True).encode()
    (blobs / hashlib.sha256(config_bytes).hexdigest()).write_bytes(config_bytes)
    manifest["config"] = {
        **manifest["config"],
        "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        "size": len(config_bytes),
    }
    manifest["layers"].insert(
        1,
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + layer_digest,
            "size": len(layer),
        },
    )
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    (blobs / hashlib.sha256(manifest_bytes).hexdigest()).write_bytes(manifest_bytes)
    index["manifests"][0].update(
        digest="sha256:" + hashlib.sha256(manifest_bytes).hexdigest(), size=len(manifest_bytes)
    )
    (target / "index.json").write_text(json.dumps(index))
    return target


def main() -> None:
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is needed (apt-get install skopeo)")
    layout = counter_layout()
    with tempfile.TemporaryDirectory(prefix="image-bench-") as directory:
        base = Path(directory)
        source, target = Registry(base / "source").start(), Registry(base / "target").start()
        try:
            big = base / "big"
            subprocess.run([sys.executable, __file__, "--make-big", str(layout), str(big)], check=True)
            for name, image_layout in (("counter", layout), ("big", big)):
                subprocess.run(
                    [
                        "skopeo",
                        "copy",
                        "--dest-tls-verify=false",
                        f"oci:{image_layout}:{TAG}",
                        f"docker://{source.host}/native/{name}:1",
                    ],
                    check=True,
                    capture_output=True,
                )
            print("image     tool                      seconds   peak MiB   vs skopeo")
            for name in ("counter", "big"):
                native = f"docker://{source.host}/native/{name}:1"
                skopeo_time, skopeo_memory = run(
                    [
                        "skopeo",
                        "copy",
                        "--src-tls-verify=false",
                        "--dest-tls-verify=false",
                        native,
                        f"docker://{target.host}/copy/{name}:1",
                    ]
                )
                destination = f"docker://{target.host}/confidential/{name}:1"
                first_time, first_memory = run(sconify_command(native, destination, base / f"{name}.key"))
                again_time, again_memory = run(sconify_command(native, destination, base / f"{name}.key"))
                label = "skopeo copy"
                print(f"{name:9} {label:25} {skopeo_time:7.2f}   {skopeo_memory:8.0f}        1.00")
                print(
                    f"{name:9} sconify image             {first_time:7.2f}   {first_memory:8.0f}   "
                    f"{first_time / skopeo_time:9.2f}"
                )
                print(
                    f"{name:9} sconify image, again      {again_time:7.2f}   {again_memory:8.0f}   "
                    f"{again_time / skopeo_time:9.2f}"
                )
        finally:
            source.stop()
            target.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-big"]:
        big_layout(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
