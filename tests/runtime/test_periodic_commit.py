"""Periodic commits of a long-running program's volumes (``SCONIFY_COMMIT_INTERVAL`` in the policy), with a
real child program and a real volume; the anchor is in memory (the container tests use the CAS's)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import InMemoryAnchor, Volume, generate_key
from pulumi_sconify.engine.runtime.launcher import (
    COMMIT_INTERVAL,
    PeriodicCommitError,
    RefusedError,
    commit_interval,
    run,
)

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


def configuration(workdir: Path, stop: Path, interval: str | None) -> dict[str, object]:
    environment = {COMMIT_INTERVAL: interval} if interval is not None else {}
    return {
        "command": [sys.executable, "-c", PROGRAM, str(workdir / "count"), str(stop)],
        "environment": environment,
    }


def stop_when(condition: Callable[[], bool], stop: Path) -> threading.Thread:
    """Create ``stop`` once ``condition`` holds; in a thread, since ``run`` installs signal handlers, which
    only the main thread may."""

    def watch() -> None:
        while not condition():
            time.sleep(0.01)
        stop.touch()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    (tmp_path / "plain").mkdir()
    return Volume.open(
        tmp_path / "storage", tmp_path / "plain", name="V1", key=generate_key(), anchor=InMemoryAnchor()
    )


def test_a_running_program_is_committed_periodically(volume: Volume, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    stop_when(lambda: volume.generation >= 3, stop)
    # The program runs until three commits happened while it ran, so they were periodic ones.
    assert run(configuration(tmp_path / "plain", stop, "0.05"), [volume]) == 0
    assert volume.generation >= 3
    assert (tmp_path / "plain" / "count").read_text().isdigit()


def test_without_an_interval_nothing_is_committed_while_running(volume: Volume, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    stop.touch()  # one pass of the program's loop
    assert run(configuration(tmp_path / "plain", stop, None), [volume]) == 0
    assert volume.generation == 0


def test_a_conflicting_commit_stops_the_program(tmp_path: Path) -> None:
    key, anchor = generate_key(), InMemoryAnchor()
    for name in ("plain", "other"):
        (tmp_path / name).mkdir()
    ours = Volume.open(tmp_path / "storage", tmp_path / "plain", name="V1", key=key, anchor=anchor)
    # Another pod opens the same volume and commits first: ours may no longer commit.
    theirs = Volume.open(tmp_path / "storage", tmp_path / "other", name="V1", key=key, anchor=anchor)
    (tmp_path / "other" / "theirs").write_text("1")
    theirs.commit()
    # No stop file ever: the program would run forever, so only the failed commit can end the run.
    with pytest.raises(PeriodicCommitError, match="volume V1: commit failed"):
        run(configuration(tmp_path / "plain", tmp_path / "never", "0.05"), [ours])


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_interval_is_refused(value: str) -> None:
    with pytest.raises(RefusedError, match=COMMIT_INTERVAL):
        commit_interval({"environment": {COMMIT_INTERVAL: value}})
