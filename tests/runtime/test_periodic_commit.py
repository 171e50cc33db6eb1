"""Periodic commits of a long-running program's volumes (``SCONIFY_COMMIT_INTERVAL`` in the policy): the Go
runtime's supervision (through its harness) with a real child program, a real volume and a real CAS. The
interval's own rules are the Go suite's (``launcher_test.go``)."""

from __future__ import annotations

import subprocess
import sys
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

# Writes a new count every 10 ms by rename (so every committed state holds a whole number) until the test
# creates the stop file: the test waits for commits to happen, never for a number of seconds.
PROGRAM = """
import os, sys, time
count, stop = sys.argv[1], sys.argv[2]
n = 0
while not os.path.exists(stop):
    with open(count + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(count + ".tmp", count)
    n += 1
    time.sleep(0.01)
"""
CONFIG_ID = "ns-1/python-session/python-service"


@pytest.fixture
def harness(harness_binary: Path, cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> Harness:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    return Harness(harness_binary, cas, CONFIG_ID, tmp_path / "storage", tmp_path / "plain")


def program(harness: Harness, stop: Path) -> list[str]:
    return [sys.executable, "-c", PROGRAM, str(harness.workdir / "count"), str(stop)]


def test_a_running_program_is_committed_periodically(harness: Harness, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        harness.command(program(harness, stop), interval="0.05"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # The program runs until three commits happened while it ran, so they were periodic ones.
    wait_for(lambda: harness.generation() >= 3, "three commits while the program runs")
    stop.touch()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert int(out.split()[-1]) >= 3
    assert (harness.workdir / "count").read_text().isdigit()


def test_without_an_interval_nothing_is_committed_while_running(harness: Harness, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    stop.touch()  # one pass of the program's loop
    done = subprocess.run(
        harness.command(program(harness, stop)), check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["generation", "1"]  # the final commit only


def test_a_conflicting_commit_stops_the_program(harness: Harness, cas: RunningCas, tmp_path: Path) -> None:
    """Another pod opens the same volume and commits while ours runs: ours may no longer commit, and its
    program, which would run forever, is stopped."""
    process = subprocess.Popen(
        harness.command(program(harness, tmp_path / "never"), interval="0.05"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "volume V1 opened" in line:
            break
    theirs = cas.runtime()
    (config,) = theirs.attest()["configuration"]["volumes"]
    other = tmp_path / "other"
    other.mkdir()
    volume = Volume.open(
        harness.storage, other, name="V1", key=bytes.fromhex(config["key"]), anchor=VolumeAnchor(theirs)
    )
    (other / "theirs").write_text("1")
    volume.commit()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 70
    fatal = [line for line in err.splitlines() if line.startswith("[SCONIFY|FATAL]")]
    assert len(fatal) == 1 and "volume V1: commit failed" in fatal[0], err
