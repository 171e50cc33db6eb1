"""Debian's Redis, sconified — an image the old runtime refused (no Python in it): it runs confidentially in
podman with its data on an encrypted volume, keeps every write it acknowledged across a stop (the runtime
forwards SIGTERM, Redis writes its files and exits, the runtime commits), and a rolled-back volume is
refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import ConfidentialCounter, Serving, fatal_line
from tests.support.images.redis import redis, redis_layout
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def serving(image: ConfidentialCounter, port: int, name: str) -> Serving:
    def answers() -> bool:
        try:
            return redis(port, "PING") == "+PONG"
        except OSError:
            return False

    return Serving(image, name, answers)


@pytest.fixture
def confidential_redis(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> tuple[ConfidentialCounter, int]:
    port = free_port()
    program = (
        f"redis-server --port {port} --bind 127.0.0.1 --dir /V1"
        " --appendonly yes --appendfsync always --save ''"
    )
    image = ConfidentialCounter(
        cas, owner, tmp_path, namespace="ns-redis", native=redis_layout(), program=program, dirs=()
    )
    return image, port


def test_acknowledged_writes_survive_a_stop_and_a_rollback_is_refused(
    confidential_redis: tuple[ConfidentialCounter, int], tmp_path: Path
) -> None:
    image, port = confidential_redis
    first = serving(image, port, "sconify-redis-1")
    assert first.ready(), first.process.communicate(timeout=60)
    for index in range(50):
        assert redis(port, "SET", f"key{index}", f"value{index}") == "+OK"
    code, err = first.stop()
    assert code == 0 and "[SCONIFY|FATAL]" not in err, err
    snapshot = tmp_path / "snapshot"
    shutil.copytree(image.storage, snapshot)

    second = serving(image, port, "sconify-redis-2")
    assert [redis(port, "GET", f"key{index}") for index in range(50)] == [
        f"value{index}" for index in range(50)
    ]
    assert redis(port, "SET", "later", "1") == "+OK"
    code, err = second.stop()
    assert code == 0, err
    assert b"value7" not in b"".join(p.read_bytes() for p in image.storage.rglob("*") if p.is_file())

    shutil.rmtree(image.storage)
    shutil.copytree(snapshot, image.storage)  # the adversary restores the older volume
    rolled_back = subprocess.run(image.command(), capture_output=True, text=True, timeout=300, check=False)
    assert "is missing" in fatal_line(rolled_back)
