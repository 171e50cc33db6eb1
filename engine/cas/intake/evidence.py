"""Evidence kinds, and how a policy's ``security`` section is applied to them.

Each kind has a verifier. A verifier says whether a service's policy configures its kind at all
(:meth:`EvidenceVerifier.configured`), checks evidence against the policy and the attestation's binding,
and reports the *findings*: the weaknesses it saw (names from ``KNOWN_TOLERATIONS``) and the security
advisories that apply. The CAS then grants only if every weakness is tolerated and every advisory ignored
(:func:`evaluate`). So every field of ``security.attestation`` is evaluated here, or refused at upload by
:func:`admission_problems` when this CAS cannot evaluate it.

Kinds, strongest first: ``kubernetes`` (a pod's service-account token); ``insecure-software-evidence``
(the runtime's own word: proves nothing, so only a policy that tolerates it by that name accepts it).
Hardware reports (SEV-SNP, TDX, Azure confidential VMs, :mod:`.hardware`) are further verifiers with
``hardware`` set; a service that also pins a Kubernetes identity must send its token with them (the
hardware proves a confidential VM, the token which workload on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ...errors import EvidenceRefusedError
from ...policy import AttestationMode, Service, Session
from ...vocabulary import INSECURE_SOFTWARE_EVIDENCE, KUBERNETES
from .kubernetes import KubernetesIssuer, TokenRefusedError


@dataclass(frozen=True)
class Findings:
    """What a verifier saw: weaknesses the policy must tolerate, advisories it must ignore."""

    weaknesses: frozenset[str] = frozenset()
    advisories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Attempt:
    """One attestation as a verifier sees it."""

    evidence: Mapping[str, Any]
    session: Session
    service: Service
    binding: bytes
    """:func:`~..runtime.protocol.evidence_binding` of the nonce and the runtime key: what evidence that
    can carry data (a hardware report's report-data) must carry."""


class EvidenceVerifier(Protocol):
    kind: ClassVar[str]
    hardware: ClassVar[bool]

    def configured(self, session: Session, service: Service) -> bool:
        """Whether the policy accepts this kind of evidence for ``service`` at all."""
        ...

    def verify(self, attempt: Attempt) -> Findings:
        """Check the evidence; raises :class:`EvidenceRefusedError`."""
        ...

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        """``(field path, problem)`` for what in the policy this CAS cannot evaluate."""
        ...


def tolerated(session: Session) -> tuple[str, ...]:
    return session.security.attestation.tolerate if session.security else ()


class InsecureSoftwareEvidence:
    """The runtime's own word. Anyone can send it; it is accepted only where the policy says
    ``tolerate: [insecure-software-evidence]``, and then it proves nothing."""

    kind: ClassVar[str] = INSECURE_SOFTWARE_EVIDENCE
    hardware: ClassVar[bool] = False

    def configured(self, session: Session, service: Service) -> bool:
        return INSECURE_SOFTWARE_EVIDENCE in tolerated(session)

    def verify(self, attempt: Attempt) -> Findings:
        return Findings(weaknesses=frozenset({INSECURE_SOFTWARE_EVIDENCE}))

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        return []


class KubernetesEvidence:
    """A pod's projected service-account token for this CAS, proving the identity the service pins in
    ``services[].kubernetes``."""

    kind: ClassVar[str] = KUBERNETES
    hardware: ClassVar[bool] = False

    def __init__(self, issuer: KubernetesIssuer | None) -> None:
        self.issuer = issuer

    def configured(self, session: Session, service: Service) -> bool:
        return service.kubernetes is not None

    def verify(self, attempt: Attempt) -> Findings:
        pinned = attempt.service.kubernetes
        assert pinned is not None, "only called when configured"
        if self.issuer is None:
            raise EvidenceRefusedError("this CAS trusts no Kubernetes issuer (cas serve --kubernetes-issuer)")
        try:
            self.issuer.verify(attempt.evidence.get("token"), pinned)
        except TokenRefusedError as refusal:
            raise EvidenceRefusedError(f"kubernetes evidence: {refusal}") from None
        return Findings()

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        problems = []
        for index, service in enumerate(session.services):
            if service.kubernetes is None:
                continue
            path = f"services[{index}].kubernetes.issuer"
            if self.issuer is None:
                problems.append(
                    (path, "this CAS trusts no Kubernetes issuer (cas serve --kubernetes-issuer)")
                )
            elif service.kubernetes.issuer != self.issuer.issuer:
                problems.append((path, f"this CAS trusts only the issuer {self.issuer.issuer}"))
        return problems


class EvidencePolicy:
    """The verifiers of one CAS, and the policy's ``security`` section applied to them."""

    def __init__(self, verifiers: Sequence[EvidenceVerifier]) -> None:
        self.verifiers = {verifier.kind: verifier for verifier in verifiers}

    def accepted_kinds(self, session: Session, service: Service) -> list[str]:
        """The kinds the policy accepts for ``service``, strongest first."""
        mode = session.security.attestation.mode if session.security else None
        return [
            kind
            for kind, verifier in self.verifiers.items()
            if verifier.configured(session, service) and (mode is None or verifier.hardware)
        ]

    def default_kinds(self) -> list[str]:
        """What a service's policy made for this CAS accepts by default (``sconify image``, the
        components): a pinned Kubernetes workload where this CAS trusts an issuer, else the insecure kind
        a development policy tolerates. The nonce's answer for an id that names no service."""
        kubernetes = self.verifiers.get(KUBERNETES)
        if isinstance(kubernetes, KubernetesEvidence) and kubernetes.issuer is not None:
            return [KUBERNETES]
        return [INSECURE_SOFTWARE_EVIDENCE]

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        """Everything in the policy this CAS could not enforce: the upload is refused with these."""
        problems: list[tuple[str, str]] = []
        attestation = session.security.attestation if session.security else None
        mode = attestation.mode if attestation else None
        hardware = sorted(kind for kind, verifier in self.verifiers.items() if verifier.hardware)
        if mode is AttestationMode.HARDWARE and not hardware:
            problems.append(
                (
                    "security.attestation.mode",
                    "hardware evidence is required, and this CAS verifies none "
                    f"(it verifies: {', '.join(self.verifiers)})",
                )
            )
        elif mode is AttestationMode.MAA:
            problems.append(
                ("security.attestation.mode", "maa (Microsoft Azure Attestation) is not supported")
            )
        elif mode is AttestationMode.NONE:
            problems.append(
                (
                    "security.attestation.mode",
                    "none (no attestation) is not offered: omit mode, pin services[].kubernetes, or "
                    f"tolerate {INSECURE_SOFTWARE_EVIDENCE} for self-reported evidence",
                )
            )
        if mode is AttestationMode.HARDWARE and INSECURE_SOFTWARE_EVIDENCE in tolerated(session):
            problems.append(
                ("security.attestation.tolerate", f"{INSECURE_SOFTWARE_EVIDENCE} contradicts mode hardware")
            )
        for verifier in self.verifiers.values():
            problems.extend(verifier.admission_problems(session))
        return problems

    def evaluate(
        self, kind: str, evidence: Mapping[str, Any], session: Session, service: Service, binding: bytes
    ) -> Findings:
        """Verify ``evidence`` of ``kind`` for ``service`` and apply the policy's tolerations and
        advisories; raises :class:`EvidenceRefusedError`."""
        accepted = self.accepted_kinds(session, service)
        if kind not in accepted:
            if not accepted:
                raise EvidenceRefusedError(
                    "the policy accepts no evidence for this service: pin a Kubernetes workload identity "
                    f"(services[].kubernetes) or tolerate {INSECURE_SOFTWARE_EVIDENCE}"
                )
            raise EvidenceRefusedError(
                f"the policy does not accept {kind or 'untyped'} evidence for this service "
                f"(it accepts: {', '.join(accepted)})"
            )
        attempt = Attempt(evidence, session, service, binding)
        verifier = self.verifiers[kind]
        findings = verifier.verify(attempt)
        kubernetes = self.verifiers.get(KUBERNETES)
        if verifier.hardware and kubernetes is not None and kubernetes.configured(session, service):
            # A confidential VM proves its memory is sealed from the host, not whose pod runs in it:
            # anyone can rent one. The pinned workload identity says that, so both must hold.
            kubernetes.verify(attempt)
        untolerated = sorted(findings.weaknesses - set(tolerated(session)))
        if untolerated:
            raise EvidenceRefusedError(
                f"the evidence shows {', '.join(untolerated)}, which the policy does not tolerate"
            )
        ignored = session.security.attestation.ignore_advisories if session.security else None
        if ignored != "*":
            open_advisories = sorted(findings.advisories - set(ignored or ()))
            if open_advisories:
                raise EvidenceRefusedError(
                    f"the platform is affected by {', '.join(open_advisories)}, which the policy does not "
                    "ignore (security.attestation.ignore_advisories)"
                )
        return findings
