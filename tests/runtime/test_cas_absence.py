"""A running service loses nothing to its CAS: a kill -9 and restart, an outage of seconds, and credentials
that expire while it runs. The runtime's own classes against a real CAS process, a real volume and a real
child program that counts until the test tells it to stop; the test waits for states, never for time."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.fspf import Volume
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from pulumi_sconify.engine.runtime.launcher import COMMIT_INTERVAL, commit_all, run
from tests.support.cas import RunningCas
from tests.support.policies import counter, namespace, text
from tests.support.processes import wait_for

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
    short_lived: RunningCas, tmp_path: Path
) -> None:
    cas = short_lived
    runtime = cas.runtime(patience=120)
    (volume_config,) = runtime.attest()["configuration"]["volumes"]
    workdir, stop = tmp_path / "plain", tmp_path / "stop"
    workdir.mkdir()
    volume = Volume.open(
        tmp_path / "storage",
        workdir,
        name="V1",
        key=bytes.fromhex(volume_config["key"]),
        anchor=VolumeAnchor(runtime),
    )
    configuration = {
        "command": [sys.executable, "-c", PROGRAM, str(workdir / "count"), str(stop)],
        "environment": {COMMIT_INTERVAL: "0.1"},
    }
    failures: list[BaseException] = []

    def meanwhile() -> None:
        """What happens to the CAS while the service runs (the service runs on the main thread, where
        the runtime forwards signals)."""
        try:
            wait_for(lambda: volume.generation >= 3, "commits while running")

            cas.stop(signal.SIGKILL)  # a crash ...
            cas.start()  # ... and a restart: the credential (stateless) still works
            restarted_at = volume.generation
            wait_for(lambda: volume.generation >= restarted_at + 3, "commits after a kill -9 and restart")

            cas.stop()  # an outage longer than a credential's life
            written = int((workdir / "count").read_text())
            wait_for(lambda: int((workdir / "count").read_text()) > written + 150, "the program counts on")
            cas.start()
            back_at = volume.generation
            wait_for(lambda: volume.generation >= back_at + 3, "commits after the outage")

            renewed = grants(cas)
            wait_for(lambda: grants(cas) >= renewed + 2, "credentials renewed while running")
        except BaseException as failure:
            failures.append(failure)
        finally:
            stop.touch()

    events = threading.Thread(target=meanwhile)
    events.start()
    code = run(configuration, [volume])
    events.join()
    if failures:
        raise failures[0]
    assert code == 0
    commit_all([volume])  # as the launcher does when the program has ended
    last = int((workdir / "count").read_text())

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
