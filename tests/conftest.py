"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


@pytest.fixture
def scone_counter_yaml() -> str:
    """SCONE's published counter policy, as published."""
    return (FIXTURES / "scone-counter-session.yaml").read_text()


@pytest.fixture(autouse=True)
def _isolated_result_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own sconify result cache (XDG_CACHE_HOME), so none sees another's runs."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


# Real servers that several test packages use: a CAS, client identities, registries.
from tests.cas.conftest import cas, owner, stranger  # noqa: E402
from tests.image.conftest import registry, secure_registry  # noqa: E402

__all__ = ["cas", "owner", "registry", "secure_registry", "stranger"]
