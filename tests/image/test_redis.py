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
from tests.support.images.confidential_counter import ConfidentialCounter, fatal_line
from tests.support.images.redis import redis, redis_layout
from tests.support.processes import free_port, wait_for

pytestmark = pytest.mark.slow


class RunningRedis:
    """One run of the confidential Redis, in the background until :meth:`stop`."""

    def __init__(self, image: ConfidentialCounter, port: int, name: str) -> None:
        self.port, self.name = port, name
        self.process = subprocess.Popen(
            image.command("--name", name), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: self.answers() or self.process.poll() is not None, "Redis answers, or the run ends")

    def answers(self) -> bool:
        try:
            return redis(self.port, "PING") == "+PONG"
        except OSError:
            return False

    def stop(self) -> tuple[int, str]:
        subprocess.run(
            ["podman", "stop", "--time", "120", self.name], capture_output=True, check=False, timeout=300
        )
        _, err = self.process.communicate(timeout=300)
        return self.process.returncode, err


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
    first = RunningRedis(image, port, "sconify-redis-1")
    assert first.answers(), first.process.communicate(timeout=60)
    for index in range(50):
        assert redis(port, "SET", f"key{index}", f"value{index}") == "+OK"
    code, err = first.stop()
    assert code == 0 and "[SCONIFY|FATAL]" not in err, err
    snapshot = tmp_path / "snapshot"
    shutil.copytree(image.storage, snapshot)

    second = RunningRedis(image, port, "sconify-redis-2")
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
