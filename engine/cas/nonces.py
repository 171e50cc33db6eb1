"""Single-use attestation nonces of short life.

A nonce is issued without keeping anything: it is the time it expires, 16 random bytes and a MAC over
both under a key this CAS process made at start. Only a nonce that was *used* is remembered, until it
expires — so requests for nonces cost no memory, and the memory of used nonces is bounded by the rate of
attestations times the nonce lifetime. A restart makes every outstanding nonce invalid (the runtime asks
for a new one), which is what keeps a nonce single-use across restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..errors import SconifyError

NONCE_LIFETIME = 60.0
"""Seconds a nonce may be used after it was issued."""
MAX_USED_NONCES = 1_000_000
"""Used nonces remembered at most (about 100 MB): beyond, attestations wait for older ones to expire."""
_MAC_BYTES = 16


class NonceError(SconifyError):
    """A nonce that is malformed, forged, expired, already used — or too many in flight."""


class NonceIssuer:
    """Issues and redeems nonces (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time, lifetime: float = NONCE_LIFETIME) -> None:
        self._key = os.urandom(32)
        self._clock = clock
        self.lifetime = lifetime
        self._used: OrderedDict[bytes, float] = OrderedDict()  # issue order is expiry order
        self._lock = threading.Lock()

    def issue(self) -> str:
        body = struct.pack(">d", self._clock() + self.lifetime) + os.urandom(16)
        return (body + self._mac(body)).hex()

    def redeem(self, nonce: str) -> None:
        """Accept ``nonce`` once; raises :class:`NonceError` with the reason otherwise."""
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            raw = b""
        if len(raw) != 24 + _MAC_BYTES or not hmac.compare_digest(raw[24:], self._mac(raw[:24])):
            raise NonceError("not a nonce of this CAS (or it was issued before the CAS restarted)")
        (expires,) = struct.unpack(">d", raw[:8])
        now = self._clock()
        if expires < now:
            raise NonceError("the nonce expired")
        with self._lock:
            while self._used and next(iter(self._used.values())) < now:
                self._used.popitem(last=False)
            if raw in self._used:
                raise NonceError("the nonce was used already")
            if len(self._used) >= MAX_USED_NONCES:
                raise NonceError("too many attestations in flight; retry")
            self._used[raw] = expires

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
