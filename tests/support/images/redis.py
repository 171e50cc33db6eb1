"""Debian's Redis as an image, built locally as the counter is (debootstrap ``minbase`` with ``redis-server``,
no Docker Hub here) and cached; and a minimal client of Redis's inline protocol, so the tests need no
``redis-cli`` of their own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.images.counter import MIRROR, cached, write_layout

RECIPE = "bookworm-minbase-redis-server-v1"


def redis_layout() -> Path:
    """The cached OCI layout of Debian bookworm's redis-server (its command: ``redis-server``)."""

    def build(layout: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix="redis-image-"))
        try:
            rootfs = work / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=redis-server",
                    "bookworm",
                    str(rootfs),
                    MIRROR,
                ],
                check=True,
                capture_output=True,
                timeout=1800,
            )
            write_layout(layout, [rootfs], [f"debootstrap {RECIPE}"], command=["redis-server"])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return cached(RECIPE, build)


def redis(port: int, *command: str) -> str:
    """One inline command to the Redis at ``127.0.0.1:port``: a bulk string's value, else the answer's line
    as Redis gives it (``+OK``, ``:1``, ``$-1`` for none, ``-ERR ...``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall((" ".join(command) + "\r\n").encode())
        with connection.makefile("rb") as reply:
            line = reply.readline().decode().rstrip("\r\n")
            if line.startswith("$") and line != "$-1":
                return reply.readline().decode().rstrip("\r\n")
            return line
