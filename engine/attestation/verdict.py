"""What a hardware verifier concludes: the verified claims and the checks that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import EvidenceRefusedError


@dataclass(frozen=True)
class Verdict:
    """Evidence that passed every check that ran.

    ``weaknesses`` are names from :data:`~..policy.model.KNOWN_TOLERATIONS` the evidence shows (a debug
    policy, SMT, an outdated TCB): the verifier does not judge them, the session's ``tolerate`` does.
    ``advisories`` are the vendor's security advisories that apply to the platform."""

    platform: str
    claims: dict[str, Any]
    """What the evidence says, verified: measurements, TCB, report data (hex strings and numbers)."""
    checks: tuple[str, ...]
    """The checks that ran and passed, in order (``signature``, ``chain``, ``measurement``, ...)."""
    weaknesses: frozenset[str] = frozenset()
    advisories: frozenset[str] = frozenset()
    not_checked: tuple[str, ...] = field(default=())
    """Checks that did not run because nothing was given to check against (no policy, no binding)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "claims": self.claims,
            "checks": list(self.checks),
            "not_checked": list(self.not_checked),
            "weaknesses": sorted(self.weaknesses),
            "advisories": sorted(self.advisories),
        }


class Checks:
    """The checks of one verification, recorded as they pass; :meth:`refuse` raises for the one that
    fails."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.passed: list[str] = []
        self.skipped: list[str] = []

    def passed_check(self, name: str) -> None:
        self.passed.append(name)

    def skip(self, name: str) -> None:
        self.skipped.append(name)

    def refuse(self, check: str, message: str) -> EvidenceRefusedError:
        return EvidenceRefusedError(
            f"{self.platform} evidence refused by the {check} check: {message}", check
        )

    def verdict(
        self,
        claims: dict[str, Any],
        weaknesses: frozenset[str] = frozenset(),
        advisories: frozenset[str] = frozenset(),
    ) -> Verdict:
        return Verdict(self.platform, claims, tuple(self.passed), weaknesses, advisories, tuple(self.skipped))
