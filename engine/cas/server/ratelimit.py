"""Rate limits: a token bucket per client (an identity on the client API, an address on the attestation
API), and the refusals counted per client and minute so that the audit log records them in aggregate —
one entry per client and minute, not one per request an attacker chooses to send."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_CLIENTS = 100_000
"""Buckets kept at once; beyond it the full (idle) ones are forgotten first, so many addresses cannot
grow the table without bound."""
REPORT_EVERY = 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float
    refused: int = 0
    window_start: float = 0.0


class RateLimiter:
    """``rate`` requests per second per client, with bursts of ``burst``; ``rate`` 0 turns it off.
    ``report(client, refused, seconds)`` is called with each client's refusals of a past minute."""

    def __init__(
        self,
        rate: float,
        burst: float,
        report: Callable[[str, int, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.report, self.clock = rate, burst, report, clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(self.burst, now, window_start=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if now - bucket.window_start >= REPORT_EVERY:
            self._report(client, bucket, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        bucket.refused += 1
        return False

    def _report(self, client: str, bucket: _Bucket, now: float) -> None:
        if bucket.refused:
            self.report(client, bucket.refused, now - bucket.window_start)
        bucket.refused, bucket.window_start = 0, now

    def _forget_idle(self, now: float) -> None:
        for client, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                self._report(client, bucket, now)
                del self._buckets[client]
        if len(self._buckets) >= MAX_CLIENTS:  # all busy: the oldest half goes
            for client in sorted(self._buckets, key=lambda c: self._buckets[c].updated)[: MAX_CLIENTS // 2]:
                self._report(client, self._buckets[client], now)
                del self._buckets[client]

    def flush(self) -> None:
        """Report every refusal not reported yet (at shutdown)."""
        now = self.clock()
        for client, bucket in self._buckets.items():
            self._report(client, bucket, now)
