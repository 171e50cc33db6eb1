"""The fixtures several rooms of the suite use (registered by the root ``conftest.py``): a real CAS with
client identities, and real OCI registries, each the test's own; and the Go runtime's test harness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas, identity
from tests.support.registry import Registry
from tests.support.runtime_harness import build_harness


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


@pytest.fixture(scope="session")
def harness_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go runtime's test harness (tests/support/runtime_harness.py), built once per worker."""
    return build_harness(tmp_path_factory.mktemp("harness"))
