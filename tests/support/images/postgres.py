"""Debian's PostgreSQL 15 as an image, built locally as the counter is (debootstrap ``minbase`` with
``postgresql``, no Docker Hub here) and cached; and the command that runs it on a volume, as an official
image's entrypoint would: make the data directory its user's, initialise it on the first run, then become
that user and start the server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.images.counter import MIRROR, cached, write_layout

RECIPE = "bookworm-minbase-postgresql-v1"
BIN = "/usr/lib/postgresql/15/bin"
AS_POSTGRES = "setpriv --reuid=postgres --regid=postgres --init-groups"


def postgres_layout() -> Path:
    """The cached OCI layout of Debian bookworm's PostgreSQL 15."""

    def build(layout: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix="postgres-image-"))
        try:
            rootfs = work / "rootfs"
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=postgresql", "bookworm", str(rootfs), MIRROR],
                check=True,
                capture_output=True,
                timeout=1800,
            )
            write_layout(layout, [rootfs], [f"debootstrap {RECIPE}"], command=[f"{BIN}/postgres"])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return cached(RECIPE, build)


def postgres_program(port: int, data: str = "/V1/data") -> str:
    """The policy's command: the volume's files come back as the runtime's (root's), so the data directory
    is given to ``postgres`` (mode 700, as PostgreSQL requires) at every start, initialised once, and the
    server started as ``postgres`` on ``127.0.0.1:port`` (its socket in ``/tmp``)."""
    script = (
        f"set -e; mkdir -p {data}; chown -R postgres:postgres {data}; chmod 700 {data}; "
        f"[ -f {data}/PG_VERSION ] || {AS_POSTGRES} {BIN}/initdb -D {data} -A trust -U postgres >/dev/null; "
        f"exec {AS_POSTGRES} {BIN}/postgres -D {data} -k /tmp -c listen_addresses=127.0.0.1 -p {port}"
    )
    return f"/bin/sh -c '{script}'"
