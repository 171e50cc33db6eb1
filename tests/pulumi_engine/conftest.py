"""The engine tests' fixtures: the built engine (each test with its own PULUMI_HOME and state backend) and
a CAS of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cas import RunningCas
from tests.support.pulumi.engine import Engine, start_engine


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return start_engine(tmp_path / "engine")


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[RunningCas]:
    running = RunningCas(tmp_path / "cas").start()
    yield running
    running.stop()
