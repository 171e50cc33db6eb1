"""Fixtures: a running CAS and a few client identities; each test on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.identity import ClientIdentity
from tests.support.cas import RunningCas, identity
from tests.support.postgres import BACKEND_VARIABLE


@pytest.fixture(autouse=True, params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every CAS test runs on both stores: SQLite (a CAS's default) and a real PostgreSQL server."""
    monkeypatch.setenv(BACKEND_VARIABLE, request.param)
    return str(request.param)


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
