"""Fixtures: a running CAS and a few client identities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.identity import ClientIdentity
from tests.cas.harness import RunningCas, identity


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[RunningCas]:
    running = RunningCas(tmp_path / "cas").start()
    yield running
    running.stop()


@pytest.fixture
def owner(tmp_path: Path) -> ClientIdentity:
    return identity(tmp_path, "owner")


@pytest.fixture
def stranger(tmp_path: Path) -> ClientIdentity:
    return identity(tmp_path, "stranger")
