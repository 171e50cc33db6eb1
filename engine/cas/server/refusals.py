"""Refused attestations in the audit log: the first of each kind at once, the rest counted.

Anyone can ask for an attestation, so an audit entry per refusal would let anyone grow the CAS's disk at
the rate limit's pace, from as many addresses as they have. Refusals are instead keyed by what their
entry says — the configuration id (or that it names no service), the evidence kind, the reason — and
within each window of a minute the first refusal of a key is written at once, so an operator sees an
attack as it starts, while later ones are counted and written as one entry with their count when the
window closes. At most :data:`MAX_KEYS` keys are tracked in a window; refusals beyond them are counted
in one overflow entry. Whatever is sent, refusals write at most ``2 * MAX_KEYS + 1`` entries a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

MAX_KEYS = 128
WINDOW = 60.0

Key = tuple[str | None, str, str]
"""(configuration id, or None if it names no service; evidence kind; reason)."""


class RefusalLog:
    """Counts refusals and hands audit entries to ``write`` (a list of entry details at a time)."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], None],
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._write, self._clock, self._window, self._max_keys = write, clock, window, max_keys
        self._lock = threading.Lock()
        self._counts: dict[Key, int] = {}
        self._overflow = 0
        self._started = clock()

    def refused(self, key: Key, first_details: dict[str, Any]) -> None:
        """Record one refusal; ``first_details`` is its entry, written if it is the first of its key in
        this window."""
        due: list[dict[str, Any]] = []
        with self._lock:
            now = self._clock()
            if now - self._started >= self._window:
                due = self._close_window(now)
            if key in self._counts:
                self._counts[key] += 1
            elif len(self._counts) < self._max_keys:
                self._counts[key] = 0  # written now; only later ones are counted
                due.append(first_details)
            else:
                self._overflow += 1
        if due:
            self._write(due)

    def flush(self, force: bool = False) -> None:
        """Write the counts of a window that has closed (or, with ``force``, of the current one: at
        shutdown)."""
        with self._lock:
            now = self._clock()
            due = self._close_window(now) if force or now - self._started >= self._window else []
        if due:
            self._write(due)

    def _close_window(self, now: float) -> list[dict[str, Any]]:
        seconds = round(now - self._started)
        entries = [
            {**_named(config_id), "evidence": kind, "reason": reason, "count": count, "seconds": seconds}
            for (config_id, kind, reason), count in self._counts.items()
            if count
        ]
        if self._overflow:
            entries.append({"other_refusals": self._overflow, "seconds": seconds})
        self._counts, self._overflow, self._started = {}, 0, now
        return entries


def _named(config_id: str | None) -> dict[str, Any]:
    return {"config_id": config_id} if config_id is not None else {"config_id_known": False}
