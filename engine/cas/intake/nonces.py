"""Single-use attestation nonces of short life, good on every replica of a CAS.

A nonce is issued without keeping anything: it is the store's current *epoch*, the time it expires, 16
random bytes, a digest of the configuration id it was asked for (it is good for that one only) and a MAC
over them under a key derived from the master key — so any replica can check a
nonce another issued. A nonce that is *used* is recorded in the store (until it expires), so it is used
once across all replicas. Every CAS start moves the epoch on, which makes every outstanding nonce invalid
(the runtime asks for a new one): a used nonce whose record a crash lost cannot be used again after it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from typing import Protocol

from ...errors import SconifyError

NONCE_LIFETIME = 60.0
"""Seconds a nonce may be used after it was issued."""
_BODY = struct.Struct(">Qd16s16s")
_MAC_BYTES = 16


class NonceError(SconifyError):
    """A nonce that is malformed, forged, expired or already used."""


class NonceLedger(Protocol):
    """Where used nonces are recorded: the store, shared by the replicas."""

    def nonce_epoch(self) -> int: ...

    def use_nonce(self, nonce: str, expires: float, now: float) -> bool:
        """Record ``nonce`` as used; ``False`` if it was already."""
        ...


class NonceIssuer:
    """Issues and redeems nonces (thread-safe: the ledger serialises)."""

    def __init__(
        self,
        key: bytes,
        ledger: NonceLedger,
        clock: Callable[[], float] = time.time,
        lifetime: float = NONCE_LIFETIME,
    ) -> None:
        self._key, self._ledger, self._clock, self.lifetime = key, ledger, clock, lifetime

    def issue(self, config_id: str) -> str:
        """A nonce for one attestation of ``config_id``."""
        body = _BODY.pack(
            self._ledger.nonce_epoch(), self._clock() + self.lifetime, os.urandom(16), _digest(config_id)
        )
        return (body + self._mac(body)).hex()

    def redeem(self, nonce: str, config_id: str) -> None:
        """Accept ``nonce`` once, for the ``config_id`` it was issued for; raises :class:`NonceError` with
        the reason otherwise."""
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            raw = b""
        body = raw[: _BODY.size]
        if len(raw) != _BODY.size + _MAC_BYTES or not hmac.compare_digest(raw[_BODY.size :], self._mac(body)):
            raise NonceError("not a nonce of this CAS")
        epoch, expires, _, bound = _BODY.unpack(body)
        if not hmac.compare_digest(bound, _digest(config_id)):
            raise NonceError("the nonce was issued for another configuration id")
        if epoch != self._ledger.nonce_epoch():
            raise NonceError("the nonce was issued before the CAS restarted")
        now = self._clock()
        if expires < now:
            raise NonceError("the nonce expired")
        if not self._ledger.use_nonce(raw.hex(), expires, now):
            raise NonceError("the nonce was used already")

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _digest(config_id: str) -> bytes:
    return hashlib.sha256(b"sconify-nonce-config-v1\x00" + config_id.encode()).digest()[:16]
