"""Every CAS test runs on both stores (the CAS and identities are :mod:`tests.support.fixtures`')."""

from __future__ import annotations

import pytest

from tests.support.postgres import BACKEND_VARIABLE


@pytest.fixture(autouse=True, params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every CAS test runs on both stores: SQLite (a CAS's default) and a real PostgreSQL server."""
    monkeypatch.setenv(BACKEND_VARIABLE, request.param)
    return str(request.param)
