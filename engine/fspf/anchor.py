"""Freshness anchors: where a volume's latest committed state is remembered, outside the volume.

The adversary controls the volume's storage, so the volume cannot vouch for its own freshness. An
anchor holds, per volume, the last committed ``(generation, tag)`` and changes it only by
compare-and-swap. The CAS is the production anchor; this module defines the interface and two local
implementations: :class:`InMemoryAnchor` for tests, and :class:`FileAnchor`, a file on a trusted
disk for single-host development and for crash tests that need the anchor to outlive a process.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import AnchorConflictError
from .paths import fsync_directory


@dataclass(frozen=True)
class AnchorState:
    """A committed state of a volume: its generation (counts commits) and the tag of its metadata."""

    generation: int
    tag: bytes


class FreshnessAnchor(Protocol):
    """The latest committed state per volume, changed only by compare-and-swap."""

    def current(self, volume: str) -> AnchorState | None:
        """The committed state of ``volume``; ``None`` if it was never initialised."""
        ...

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        """Replace ``expected`` by ``new``; raise :class:`AnchorConflictError` if the current state differs.

        ``new.generation`` must be ``expected.generation + 1`` (or 1 when initialising), so even a
        buggy or malicious caller cannot move a volume backwards.
        """
        ...


def _check_successor(volume: str, expected: AnchorState | None, new: AnchorState) -> None:
    wanted = 1 if expected is None else expected.generation + 1
    if new.generation != wanted:
        raise AnchorConflictError(
            f"volume {volume}: generation {new.generation} does not follow the current one"
        )


class InMemoryAnchor:
    """A thread-safe anchor in memory (tests)."""

    def __init__(self) -> None:
        self._states: dict[str, AnchorState] = {}
        self._lock = threading.Lock()

    def current(self, volume: str) -> AnchorState | None:
        with self._lock:
            return self._states.get(volume)

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        with self._lock:
            if self._states.get(volume) != expected:
                raise AnchorConflictError(f"volume {volume}: its committed state changed meanwhile")
            _check_successor(volume, expected, new)
            self._states[volume] = new


class FileAnchor:
    """An anchor kept in one JSON file, replaced atomically and durably on every swap.

    Only as trustworthy as the disk it is on: keep it off the volume's storage. Not safe for
    concurrent writers in different processes (the CAS is).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, AnchorState]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {name: AnchorState(int(s["generation"]), bytes.fromhex(s["tag"])) for name, s in data.items()}

    def current(self, volume: str) -> AnchorState | None:
        return self._load().get(volume)

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        states = self._load()
        if states.get(volume) != expected:
            raise AnchorConflictError(f"volume {volume}: its committed state changed meanwhile")
        _check_successor(volume, expected, new)
        states[volume] = new
        text = json.dumps(
            {n: {"generation": s.generation, "tag": s.tag.hex()} for n, s in sorted(states.items())}
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(self.path)
        fsync_directory(self.path.parent)
