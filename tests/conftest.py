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
