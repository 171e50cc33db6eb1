"""Every field of a policy's ``security`` section is evaluated by the CAS, or the upload is refused naming
it: mode, each toleration, ignore_advisories, and the Kubernetes identity a service pins."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from pulumi_sconify.engine.cas.intake.evidence import (
    Attempt,
    EvidencePolicy,
    Findings,
    InsecureSoftwareEvidence,
    KubernetesEvidence,
)
from pulumi_sconify.engine.cas.intake.kubernetes import JwksSource, KubernetesIssuer
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError, EvidenceRefusedError
from pulumi_sconify.engine.policy import (
    Attestation,
    AttestationMode,
    KubernetesIdentity,
    PolicyError,
    Security,
    Service,
    Session,
    parse_session,
)
from tests.support.issuer import ISSUER, WORKLOAD
from tests.support.policies import counter, namespace, text
from tests.support.postgres import store_location

OWNER = "0a" * 32


@pytest.fixture
def cas(tmp_path: Path) -> CasService:
    issuer = KubernetesIssuer(ISSUER, JwksSource(str(tmp_path / "absent.json")), "sconify-cas:test")
    service = CasService(Store(store_location(tmp_path), b"\x07" * 32), kubernetes=issuer)
    service.post_session(namespace().encode(), OWNER)
    return service


def with_attestation(session: Session, **changes: object) -> Session:
    assert session.security is not None
    attestation = dataclasses.replace(session.security.attestation, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(session, security=Security(attestation))


def refused(cas: CasService, session: Session) -> list[str]:
    with pytest.raises(CasError) as caught:
        cas.post_session(text(session).encode(), OWNER)
    assert caught.value.status == 400
    return list(caught.value.extra["problems"])


def test_mode_hardware_without_a_platform_is_refused(cas: CasService) -> None:
    problems = refused(cas, with_attestation(counter(insecure=False), mode=AttestationMode.HARDWARE))
    assert problems == [
        "security.attestation.platforms: mode hardware needs the hardware it accepts and what that must "
        "measure: one or more of sev-snp, tdx, azure-cvm"
    ]


def test_a_cas_without_a_hardware_verifier_refuses_mode_hardware() -> None:
    policy = EvidencePolicy([InsecureSoftwareEvidence()])
    session = with_attestation(counter(insecure=False), mode=AttestationMode.HARDWARE)
    assert policy.admission_problems(session) == [
        (
            "security.attestation.mode",
            "hardware evidence is required, and this CAS verifies none (it verifies: "
            "insecure-software-evidence)",
        )
    ]


@pytest.mark.parametrize(("mode", "reason"), [("maa", "not supported"), ("none", "is not offered")])
def test_other_modes_are_refused_by_name(cas: CasService, mode: str, reason: str) -> None:
    (problem,) = refused(cas, with_attestation(counter(insecure=False), mode=AttestationMode(mode)))
    assert problem.startswith("security.attestation.mode: ") and reason in problem


def test_an_unknown_toleration_is_refused_at_upload_by_its_path(cas: CasService) -> None:
    body = text(counter()).replace("- debug-mode", "- debug-mod")
    with pytest.raises(CasError) as caught:
        cas.post_session(body.encode(), OWNER)
    assert caught.value.status == 400
    (problem,) = caught.value.extra["problems"]
    assert problem.startswith("security.attestation.tolerate[0]: unknown toleration")


def test_the_old_software_toleration_names_its_successor() -> None:
    body = text(counter()).replace("insecure-software-evidence", "software-evidence")
    with pytest.raises(PolicyError) as caught:
        parse_session(body)
    assert "renamed insecure-software-evidence" in str(caught.value)


def test_a_kubernetes_identity_of_an_untrusted_issuer_is_refused(cas: CasService) -> None:
    other = KubernetesIdentity("https://oidc.example.com/cluster", "default", "counter")
    (problem,) = refused(cas, counter(insecure=False, kubernetes=other))
    assert problem == f"services[0].kubernetes.issuer: this CAS trusts only the issuer {ISSUER}"


def test_a_kubernetes_identity_without_any_trusted_issuer_is_refused(tmp_path: Path) -> None:
    plain = CasService(Store(store_location(tmp_path / "plain"), b"\x07" * 32))
    plain.post_session(namespace().encode(), OWNER)
    (problem,) = refused(plain, counter(insecure=False, kubernetes=WORKLOAD))
    assert "trusts no Kubernetes issuer" in problem


def test_insecure_evidence_contradicts_mode_hardware() -> None:
    class Hardware:
        kind: ClassVar[str] = "test-hardware"
        hardware: ClassVar[bool] = True

        def configured(self, session: Session, service: Service) -> bool:
            return True

        def verify(self, attempt: Attempt) -> Findings:
            return Findings()

        def admission_problems(self, session: Session) -> list[tuple[str, str]]:
            return []

    policy = EvidencePolicy([Hardware(), InsecureSoftwareEvidence()])
    session = with_attestation(counter(insecure=True), mode=AttestationMode.HARDWARE)
    assert policy.admission_problems(session) == [
        ("security.attestation.tolerate", "insecure-software-evidence contradicts mode hardware")
    ]
    # And mode hardware admits only hardware kinds, whatever else the policy tolerates.
    assert policy.accepted_kinds(session, session.services[0]) == ["test-hardware"]


class Reporting:
    """A verifier that reports what it is told to: how tolerations and advisories are applied to any kind."""

    kind: ClassVar[str] = "reporting"
    hardware: ClassVar[bool] = False

    def __init__(self, findings: Findings) -> None:
        self.findings = findings

    def configured(self, session: Session, service: Service) -> bool:
        return True

    def verify(self, attempt: Attempt) -> Findings:
        return self.findings

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        return []


def evaluate(findings: Findings, tolerate: tuple[str, ...], ignore: str | tuple[str, ...] | None) -> None:
    session = counter(insecure=False)
    session = dataclasses.replace(
        session, security=Security(Attestation(tolerate=tolerate, ignore_advisories=ignore))
    )
    EvidencePolicy([Reporting(findings)]).evaluate("reporting", {}, session, session.services[0], b"")


def test_each_weakness_must_be_tolerated() -> None:
    findings = Findings(weaknesses=frozenset({"debug-mode", "outdated-tcb"}))
    evaluate(findings, ("debug-mode", "outdated-tcb"), None)
    with pytest.raises(EvidenceRefusedError, match="shows outdated-tcb, which the policy does not tolerate"):
        evaluate(findings, ("debug-mode",), None)


def test_each_advisory_must_be_ignored() -> None:
    findings = Findings(advisories=frozenset({"INTEL-SA-00334", "INTEL-SA-00615"}))
    evaluate(findings, (), "*")
    evaluate(findings, (), ("INTEL-SA-00334", "INTEL-SA-00615"))
    with pytest.raises(EvidenceRefusedError, match="affected by INTEL-SA-00615"):
        evaluate(findings, (), ("INTEL-SA-00334",))
    with pytest.raises(EvidenceRefusedError, match="INTEL-SA-00334, INTEL-SA-00615"):
        evaluate(findings, (), None)


def test_kubernetes_evidence_is_offered_only_where_pinned(cas: CasService) -> None:
    cas.post_session(text(counter(insecure=True, kubernetes=WORKLOAD)).encode(), OWNER)
    offer = cas.nonce("ns-1/python-session/python-service")
    assert offer["accepts"] == ["kubernetes", "insecure-software-evidence"]
    verifier = KubernetesEvidence(None)
    assert not verifier.configured(counter(), counter().services[0])


@pytest.mark.parametrize(
    "config_id",
    ["", "no-slash", "a/", "/b", "ns/../svc", "ns/bad name/svc", "x" * 5000 + "/svc", "/".join(["n"] * 18)],
)
def test_a_config_id_that_cannot_name_a_service_is_refused_before_anything(
    cas: CasService, config_id: str
) -> None:
    audited = len(cas._store.audit_entries())
    asks: list[Callable[[], object]] = [
        lambda: cas.nonce(config_id),
        lambda: cas.attest(config_id, "ab" * 32, "00", b"k" * 32, {}),
    ]
    for ask in asks:
        with pytest.raises(CasError) as refused:
            ask()
        assert refused.value.status == 400
        assert "config_id: expected <session>/<service>" in refused.value.message
    assert len(cas._store.audit_entries()) == audited


def test_refusals_audit_a_digest_of_what_names_nothing_and_no_unknown_kind(cas: CasService) -> None:
    stranger = "ns-1/" + "x" * 128 + "/" + "y" * 128
    with pytest.raises(CasError):
        cas.attest(stranger, "ab" * 32, "00" * 16, b"k" * 32, {"kind": "z" * 10_000})
    entry = cas._store.audit_entries()[-1]
    assert entry["event"] == "attestation.refused"
    assert "config_id" not in entry and len(entry["config_id_sha256"]) == 64
    assert entry["evidence"] == "unknown"
    assert "zzz" not in json.dumps(entry) and "xxx" not in json.dumps(entry)
