"""How much policy text the CAS stores, and for whom — bounds that cannot be turned against the owner.

**The threat.** Client identities are self-signed certificates: anyone who reaches the client API makes as
many as they like, for free. With only a bound per identity, sixteen identities fill a CAS-wide bound of
4 GiB in minutes; with only a CAS-wide bound, they fill it and the owner's next update — the one that
revokes a compromised measurement — is refused while the revoked measurement still attests.

**The bounds.**

- Each identity owns at most :data:`SESSIONS_PER_IDENTITY` sessions and :data:`BYTES_PER_IDENTITY` of
  stored versions.
- Identities the operator has not granted (``cas serve --grant-identity``) share one pool of
  :attr:`Quotas.self_made_bytes` (512 MiB by default): whatever they store, the rest of
  :attr:`Quotas.stored_bytes` (4 GiB) stays for the granted ones. New identities pay with the pool's room,
  not the owner's.
- An update that does not grow its session (its text no longer than the active version's) is never refused
  for room: where a bound would be passed, the session's earlier versions are dropped instead, so stored
  bytes do not grow. A revocation is such an update; so is any change of a measurement or a toleration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

SESSIONS_PER_IDENTITY = 1024
"""Sessions one identity may own (create, and keep by updating): its namespace, and those in it."""
BYTES_PER_IDENTITY = 256 * 1024 * 1024
"""Stored policy versions of the sessions one identity owns (every version is kept: updates count)."""
STORED_BYTES = 4 * 1024**3
"""Stored policy versions of all identities together (``cas serve --max-stored-mib``)."""
SELF_MADE_BYTES = 512 * 1024 * 1024
"""Stored policy versions of all identities the operator has not granted, together (``cas serve
--self-made-mib``)."""


class Usage(Protocol):
    """What the store says about stored policies."""

    def usage(self, creator: str) -> tuple[int, int]:
        """Active sessions owned by ``creator``, and the bytes of all their stored versions."""
        ...

    def stored_bytes(self) -> int:
        """The bytes of every stored version."""
        ...


@dataclass(frozen=True)
class Quotas:
    """One CAS's bounds on stored policies."""

    stored_bytes: int = STORED_BYTES
    """All identities together."""
    self_made_bytes: int = SELF_MADE_BYTES
    """All identities not in ``granted``, together."""
    granted: frozenset[str] = field(default_factory=frozenset)
    """Identities (key hashes) the operator grants room beyond the self-made pool: the owners who deploy."""

    def new_session_problem(self, usage: Usage, creator: str) -> str | None:
        """Why ``creator`` may not own one more session, or None."""
        if usage.usage(creator)[0] >= SESSIONS_PER_IDENTITY:
            return f"quota: an identity may own {SESSIONS_PER_IDENTITY} sessions"
        return None

    def room_problem(self, usage: Usage, creator: str, size: int) -> str | None:
        """Why ``size`` more bytes of policy owned by ``creator`` may not be stored, or None."""
        _, owned = usage.usage(creator)
        if owned + size > BYTES_PER_IDENTITY:
            return f"quota: the sessions of one identity may hold {BYTES_PER_IDENTITY // 2**20} MiB"
        total = usage.stored_bytes()
        if total + size > self.stored_bytes:
            return (
                f"quota: this CAS holds at most {self.stored_bytes // 2**20} MiB of policies, and it is "
                "full; its operator can raise the limit"
            )
        if creator not in self.granted:
            self_made = total - sum(usage.usage(granted)[1] for granted in self.granted)
            if self_made + size > self.self_made_bytes:
                return (
                    f"quota: identities the operator has not granted hold at most "
                    f"{self.self_made_bytes // 2**20} MiB of policies together, and that is full; the "
                    "operator can grant this identity (cas serve --grant-identity)"
                )
        return None


def granted_identities(hashes: Iterable[str]) -> frozenset[str]:
    """Key hashes as ``--grant-identity`` takes them (64 hex); raises :class:`ValueError` naming a bad one."""
    result = set()
    for text in hashes:
        value = text.strip().lower()
        if len(value) != 64 or any(character not in "0123456789abcdef" for character in value):
            raise ValueError(f"{text!r}: expected an identity's key hash (64 hex, sconify identity create)")
        result.add(value)
    return frozenset(result)
