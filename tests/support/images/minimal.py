"""Images the old runtime could not sconify: no Python, and for one of them no shell and no C library either.

- ``static``: the counter as a static Go binary (``static_counter/main.go``) in an otherwise empty image
  (``scratch``): ``/counter`` and its greeting in ``/conf``;
- ``busybox``: Debian's static BusyBox as ``/bin/sh`` and every other command, the counter as a shell
  one-liner.

Both are built here (the Go toolchain, Debian's ``busybox-static``) into OCI layouts, cached like the other
test images.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from tests.support.images.counter import cached, write_layout
from tests.support.runtime_harness import go, go_environment

STATIC_SOURCE = Path(__file__).resolve().parent / "static_counter" / "main.go"
GREETING = "Hello from a scratch image"
BUSYBOX_COUNTER = (
    "n=$(cat /V1/count 2>/dev/null || echo 0); "
    'echo "The number of executions is $n"; '
    "echo $((n + 1)) > /V1/count"
)


def static_layout() -> Path:
    """The scratch image with the static Go counter (rebuilt when its source changes)."""
    key = hashlib.sha256(STATIC_SOURCE.read_bytes()).hexdigest()[:12]

    def build(layout: Path) -> None:
        tree = layout / "tree"
        (tree / "conf").mkdir(parents=True)
        (tree / "conf" / "greeting").write_text(GREETING + "\n")
        subprocess.run(
            [go(), "build", "-trimpath", "-o", str(tree / "counter"), str(STATIC_SOURCE)],
            cwd=STATIC_SOURCE.parent,
            env={**go_environment(), "GOFLAGS": "", "GO111MODULE": "off"},
            check=True,
            timeout=600,
        )
        write_layout(layout, [tree], ["COPY counter /counter"], command=["/counter"], environment=[])
        shutil.rmtree(tree)

    return cached(f"static-counter-{key}", build)


def busybox_layout() -> Path:
    """BusyBox alone: ``/bin/busybox`` and a link for each of its commands in ``/bin``."""

    def build(layout: Path) -> None:
        tree = layout / "tree"
        (tree / "bin").mkdir(parents=True)
        shutil.copy2("/bin/busybox", tree / "bin" / "busybox")
        listed = subprocess.run(
            ["/bin/busybox", "--list"], capture_output=True, text=True, check=True, timeout=60
        )
        for command in listed.stdout.split():
            if command != "busybox":
                (tree / "bin" / command).symlink_to("busybox")
        (tree / "V1").mkdir()
        write_layout(
            layout,
            [tree],
            ["COPY busybox /bin/"],
            command=["/bin/sh", "-c", BUSYBOX_COUNTER],
            environment=["PATH=/bin"],
        )
        shutil.rmtree(tree)

    version = subprocess.run(["/bin/busybox"], capture_output=True, text=True, check=False).stdout.split(
        "\n"
    )[0]
    return cached(f"busybox-{hashlib.sha256(version.encode()).hexdigest()[:12]}", build)
