"""The runtime's harness, built once for the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runtime_harness import build_harness


@pytest.fixture(scope="session")
def harness_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_harness(tmp_path_factory.mktemp("harness"))
