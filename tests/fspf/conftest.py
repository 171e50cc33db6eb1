"""Fixtures for the FSPF tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fspf_trees import ProtectedTree, protected_tree


@pytest.fixture
def tree(tmp_path: Path) -> ProtectedTree:
    return protected_tree(tmp_path)
