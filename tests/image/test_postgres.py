"""Debian's PostgreSQL 15, sconified — an image the old runtime refused (no Python in it): it runs
confidentially in podman with its data directory on an encrypted volume (initialised on the first run, made
``postgres``'s at every start), keeps every committed row across a stop (the runtime forwards SIGTERM,
PostgreSQL checkpoints and exits, the runtime commits), and a rolled-back volume is refused. What a crash
between commits loses is the write-through volumes' issue (#28)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import ConfidentialCounter, Serving, fatal_line
from tests.support.images.postgres import postgres_layout, postgres_program
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def sql(port: int, statement: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-Atc", statement],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PGCONNECT_TIMEOUT": "10", "PATH": "/usr/bin:/bin"},
    )


def serving(image: ConfidentialCounter, port: int, name: str) -> Serving:
    return Serving(image, name, lambda: sql(port, "select 1").stdout.strip() == "1")


@pytest.fixture
def confidential_postgres(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> tuple[ConfidentialCounter, int]:
    port = free_port()
    image = ConfidentialCounter(
        cas,
        owner,
        tmp_path,
        namespace="ns-pg",
        native=postgres_layout(),
        program=postgres_program(port),
        dirs=(),
    )
    return image, port


def test_committed_rows_survive_a_stop_and_a_rollback_is_refused(
    confidential_postgres: tuple[ConfidentialCounter, int], tmp_path: Path
) -> None:
    image, port = confidential_postgres
    first = serving(image, port, "sconify-pg-1")
    assert first.ready(), first.process.communicate(timeout=60)
    assert sql(port, "create table kept (n integer primary key, secret text)").returncode == 0
    for n in range(100):  # autocommit: each insert its own transaction
        assert sql(port, f"insert into kept values ({n}, 'row-{n}-plaintext')").returncode == 0
    code, err = first.stop()
    assert code == 0 and "[SCONIFY|FATAL]" not in err, err
    snapshot = tmp_path / "snapshot"
    shutil.copytree(image.storage, snapshot)
    assert b"plaintext" not in b"".join(p.read_bytes() for p in image.storage.rglob("*") if p.is_file())

    second = serving(image, port, "sconify-pg-2")
    assert sql(port, "select count(*), sum(n) from kept").stdout.strip() == f"100|{sum(range(100))}"
    assert sql(port, "insert into kept values (100, 'later')").returncode == 0
    code, err = second.stop()
    assert code == 0, err

    shutil.rmtree(image.storage)
    shutil.copytree(snapshot, image.storage)  # the adversary restores the older volume
    rolled_back = subprocess.run(image.command(), capture_output=True, text=True, timeout=300, check=False)
    assert "is missing" in fatal_line(rolled_back)
