"""A running service loses nothing to its CAS: a kill -9 and restart, an outage of seconds, and credentials
that expire while it runs. The Go runtime (through its harness) against a real CAS process, a real volume
and a real child program that counts until the test tells it to stop; the test waits for states, never for
time."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.fspf import Volume
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas
from tests.support.policies import counter, namespace, text
from tests.support.processes import wait_for
from tests.support.runtime_harness import Harness

pytestmark = pytest.mark.slow

# Counts in a file (replaced by rename, so every committed state holds a whole number) until told to stop.
PROGRAM = """
import os, sys, time
count, stop = sys.argv[1], sys.argv[2]
n = 0
while not os.path.exists(stop):
    n += 1
    with open(count + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(count + ".tmp", count)
    time.sleep(0.02)
print(n)
"""
LIFETIME = 2.0
"""Seconds a credential lives here: the run outlasts many."""


@pytest.fixture
def short_lived(tmp_path: Path, owner: ClientIdentity) -> Iterator[RunningCas]:
    running = RunningCas(tmp_path / "cas", options=["--credential-lifetime", str(LIFETIME)]).start()
    with running.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()


def grants(cas: RunningCas) -> int:
    return sum(
        1 for line in cas.log_lines() if line.get("path") == "/v1/attest" and line.get("status") == 200
    )


def test_a_service_loses_nothing_to_restarts_outages_and_expiry(
    short_lived: RunningCas, harness_binary: Path, tmp_path: Path
) -> None:
    cas = short_lived
    harness = Harness(
        harness_binary, cas, "ns-1/python-session/python-service", tmp_path / "storage", tmp_path / "plain"
    )
    stop = tmp_path / "stop"
    count = harness.workdir / "count"
    service = subprocess.Popen(
        harness.command([sys.executable, "-c", PROGRAM, str(count), str(stop)], interval="0.1", patience=120),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: harness.generation() >= 3, "commits while running")

        cas.stop(signal.SIGKILL)  # a crash ...
        cas.start()  # ... and a restart: the credential (stateless) still works
        restarted_at = harness.generation()
        wait_for(lambda: harness.generation() >= restarted_at + 3, "commits after a kill -9 and restart")

        cas.stop()  # an outage longer than a credential's life
        written = int(count.read_text())
        wait_for(lambda: int(count.read_text()) > written + 150, "the program counts on")
        cas.start()
        back_at = harness.generation()
        wait_for(lambda: harness.generation() >= back_at + 3, "commits after the outage")

        renewed = grants(cas)
        wait_for(lambda: grants(cas) >= renewed + 2, "credentials renewed while running")
    finally:
        stop.touch()
        out, err = service.communicate(timeout=300)
    assert service.returncode == 0, err
    assert "[SCONIFY|FATAL]" not in err
    last = int(count.read_text())

    # A new run of the service opens exactly what the program last wrote.
    again = cas.runtime()
    (config,) = again.attest()["configuration"]["volumes"]
    reopened = tmp_path / "reopened"
    reopened.mkdir()
    Volume.open(
        tmp_path / "storage",
        reopened,
        name="V1",
        key=bytes.fromhex(config["key"]),
        anchor=VolumeAnchor(again),
    )
    assert int((reopened / "count").read_text()) == last
    assert out.split()[-2:] == ["generation", str(harness.generation())]
