"""The engine's half of the shared vectors: it still writes every deterministic vector byte for byte, and
opens the volume it committed once. (The runtime's half is ``runtime/internal/*/vectors_test.go``; a volume
the runtime commits is opened by the engine in ``test_cas_absence.py``.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import InMemoryAnchor, RollbackError, Volume
from pulumi_sconify.engine.fspf.anchor import AnchorState
from tests.support import runtime_vectors
from tests.support.runtime_vectors import VECTORS, VOLUME_STATE, deterministic, pattern, render


@pytest.mark.parametrize("name", sorted(deterministic()))
def test_the_engine_writes_the_committed_vectors(name: str) -> None:
    assert (VECTORS / name).read_text() == render(deterministic()[name]), (
        f"{name} changed: a deliberate format change regenerates the vectors "
        "(python -m tests.support.runtime_vectors) and the runtime must follow"
    )


class Fixed(InMemoryAnchor):
    def __init__(self, state: AnchorState) -> None:
        super().__init__()
        self._states["V1"] = state


def test_the_engine_opens_the_volume_it_committed(tmp_path: Path) -> None:
    vector = json.loads(VOLUME_STATE.read_text())
    storage = tmp_path / "storage"
    shutil.copytree(VECTORS / "volume" / "storage", storage)
    plain = tmp_path / "plain"
    plain.mkdir()
    anchor = Fixed(AnchorState(vector["generation"], bytes.fromhex(vector["tag"])))
    Volume.open(storage, plain, name="V1", key=bytes.fromhex(vector["key"]), anchor=anchor)
    for file in vector["files"]:
        location = plain / file["path"].lstrip("/")
        if file["content"] == "dir":
            assert location.is_dir()
        elif file["content"].startswith("->"):
            assert str(location.readlink()) == file["content"][2:]
        else:
            assert location.read_bytes() == pattern(int(file["content"]))
            assert location.stat().st_mode & 0o777 == file["mode"]
    newer = Fixed(AnchorState(vector["generation"] + 1, bytes(16)))
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(RollbackError, match="is missing"):
        Volume.open(storage, again, name="V1", key=bytes.fromhex(vector["key"]), anchor=newer)


def test_every_vector_file_is_checked() -> None:
    files = {p.name for p in VECTORS.iterdir() if p.is_file()}
    assert files == set(deterministic()), files
    assert runtime_vectors.VOLUME_NAME == "V1"
