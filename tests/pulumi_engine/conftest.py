"""One built engine for the module's tests; each test has its own PULUMI_HOME and state backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pulumi_engine.harness import Engine, start_engine


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return start_engine(tmp_path / "engine")
