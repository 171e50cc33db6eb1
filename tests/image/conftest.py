"""Fixtures: real registries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.registry_harness import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    running = Registry(tmp_path / "registry").start()
    yield running
    running.stop()


@pytest.fixture
def secure_registry(tmp_path: Path) -> Iterator[Registry]:
    running = Registry(tmp_path / "secure-registry", tls=True, username="alice", password="s3cret-pw").start()
    yield running
    running.stop()
