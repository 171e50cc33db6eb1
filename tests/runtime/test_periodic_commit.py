"""Periodic commits of a long-running program's volumes (``SCONIFY_COMMIT_INTERVAL`` in the policy), with a
real child program and a real volume; the anchor is in memory (the container tests use the CAS's)."""

from __future__ import annotations

import sys
import time
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

# Writes a new count every 50 ms by rename (so every committed state holds a whole number), for 1.5 s.
PROGRAM = """
import os, sys, time
for n in range(30):
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(0.05)
"""


def configuration(workdir: Path, interval: str | None) -> dict[str, object]:
    environment = {COMMIT_INTERVAL: interval} if interval is not None else {}
    return {"command": [sys.executable, "-c", PROGRAM, str(workdir / "count")], "environment": environment}


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    (tmp_path / "plain").mkdir()
    return Volume.open(
        tmp_path / "storage", tmp_path / "plain", name="V1", key=generate_key(), anchor=InMemoryAnchor()
    )


def test_a_running_program_is_committed_periodically(volume: Volume, tmp_path: Path) -> None:
    start = time.monotonic()
    assert run(configuration(tmp_path / "plain", "0.3"), [volume]) == 0
    assert time.monotonic() - start >= 1.4
    # Commits happened while it ran (about five); none is left for the exit except the last writes.
    assert volume.generation >= 3


def test_without_an_interval_nothing_is_committed_while_running(volume: Volume, tmp_path: Path) -> None:
    assert run(configuration(tmp_path / "plain", None), [volume]) == 0
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
    start = time.monotonic()
    with pytest.raises(PeriodicCommitError, match="volume V1: commit failed"):
        run(configuration(tmp_path / "plain", "0.2"), [ours])
    assert time.monotonic() - start < 1.4  # stopped at the first periodic commit, not run to its end


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_interval_is_refused(value: str) -> None:
    with pytest.raises(RefusedError, match=COMMIT_INTERVAL):
        commit_interval({"environment": {COMMIT_INTERVAL: value}})
