"""Shared fixtures: the ones below, and the real servers of :mod:`tests.support.fixtures`."""

from __future__ import annotations

import pytest

from tests.support.paths import FIXTURES

pytest_plugins = ("tests.support.fixtures",)


@pytest.fixture
def scone_counter_yaml() -> str:
    """SCONE's published counter policy, as published."""
    return (FIXTURES / "scone-counter-session.yaml").read_text()


@pytest.fixture(autouse=True)
def _isolated_result_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own sconify result cache (XDG_CACHE_HOME), so none sees another's runs."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
