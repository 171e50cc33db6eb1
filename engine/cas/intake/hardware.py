"""Hardware evidence in the CAS: SEV-SNP reports, TDX quotes and Azure confidential VMs' vTPM evidence.

Each kind is accepted for a service only when the session's ``security.attestation.platforms`` names
it, with the reference values it must match; the verification itself is :mod:`..attestation`. The
report-data (or, on Azure, the TPM quote's qualifying data) must carry the attestation's binding of
nonce and runtime key, so a report is worth one attestation by one runtime.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from cryptography import x509

from ...attestation import azure, snp, tdx
from ...attestation.verdict import Verdict
from ...attestation.wire import blob, parse_azure_evidence
from ...errors import EvidenceRefusedError
from ...policy import AzureCvmReference, Platforms, Service, Session, SevSnpReference, TdxReference
from ...runtime.hardware import REPORT_TYPE_SNP
from ...runtime.protocol import hardware_report_data
from ...vocabulary import AZURE_CVM, SEV_SNP, TDX
from .evidence import Attempt, Findings


@dataclass(frozen=True)
class HardwareTrust:
    """What this CAS trusts hardware evidence with: the vendors' roots (pinned in the package unless a
    test replaces them), an operator-filled VCEK cache, and TDX collateral."""

    vcek_directory: Path | None = None
    """VCEKs (DER or PEM, any file name) for reports whose evidence carries no certificate table."""
    tdx_collateral: Path | None = None
    """Intel collateral laid out as docs/attestation.md says; without it TDX evidence is not accepted."""
    amd_anchors: snp.AmdAnchors | None = None
    intel_root: x509.Certificate | None = None
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def vcek_for(self, report: bytes) -> bytes | None:
        """The cached VCEK issued for this report's chip and reported TCB (a chip has one VCEK per TCB:
        after a firmware update the cache may hold several), if the operator put one there."""
        if self.vcek_directory is None or len(report) != snp.REPORT_SIZE:
            return None
        parsed = snp.SnpReport.parse(report)
        for path in sorted(self.vcek_directory.iterdir()):
            try:
                data = path.read_bytes()
                certificate = snp.load_amd_certificate(data)
                tcb, hwid = snp.vcek_extensions(certificate)
            except (OSError, ValueError):
                continue
            product = certificate.issuer.rfc4514_string().partition("CN=SEV-")[2].partition(",")[0]
            reported = snp.decode_tcb(parsed.reported_tcb, product)
            if (
                hwid
                and parsed.chip_id.startswith(hwid)
                and all(getattr(reported, k) == v for k, v in tcb.items())
            ):
                return data
        return None

    def collateral_for(self, quote: bytes) -> tdx.Collateral:
        if self.tdx_collateral is None:
            raise EvidenceRefusedError(
                "this CAS has no TDX collateral (cas serve --tdx-collateral)", "collateral"
            )
        facts = tdx.parse_quote(quote)
        try:
            return tdx.Collateral.from_directory(self.tdx_collateral, facts.fmspc, facts.ca)
        except FileNotFoundError as missing:
            raise EvidenceRefusedError(f"tdx evidence: {missing}", "collateral") from None


def _findings(verdict: Verdict) -> Findings:
    return Findings(weaknesses=verdict.weaknesses, advisories=verdict.advisories)


def _platforms(session: Session) -> Platforms:
    return session.security.attestation.platforms if session.security else Platforms()


class _HardwareVerifier:
    """What the three hardware kinds share: the CAS's trust, and acceptance where the session's
    ``platforms`` names the kind."""

    hardware: ClassVar[bool] = True

    def __init__(self, trust: HardwareTrust) -> None:
        self.trust = trust

    def reference(self, session: Session) -> object | None:
        raise NotImplementedError

    def configured(self, session: Session, service: Service) -> bool:
        return self.reference(session) is not None

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        return []


class SevSnpEvidence(_HardwareVerifier):
    """An SEV-SNP attestation report with the binding in its report-data, and its certificate table
    (or a VCEK the operator cached)."""

    kind: ClassVar[str] = SEV_SNP

    def reference(self, session: Session) -> SevSnpReference | None:
        return _platforms(session).sev_snp

    def verify(self, attempt: Attempt) -> Findings:
        reference = self.reference(attempt.session)
        assert reference is not None, "only called when configured"
        report = blob(attempt.evidence, "report")
        assert report is not None
        certificates = blob(attempt.evidence, "certificates", required=False)
        return _findings(
            snp.verify_report(
                report,
                now=self.trust.now(),
                vcek=None if certificates else self.trust.vcek_for(report),
                certificates=certificates,
                reference=reference,
                report_data=hardware_report_data(attempt.binding),
                anchors=self.trust.amd_anchors,
            )
        )


class TdxEvidence(_HardwareVerifier):
    """An Intel TDX quote with the binding in its report-data, verified with the cached collateral."""

    kind: ClassVar[str] = TDX

    def reference(self, session: Session) -> TdxReference | None:
        return _platforms(session).tdx

    def verify(self, attempt: Attempt) -> Findings:
        reference = self.reference(attempt.session)
        assert reference is not None, "only called when configured"
        quote = blob(attempt.evidence, "quote")
        assert quote is not None
        return _findings(
            tdx.verify_quote(
                quote,
                self.trust.collateral_for(quote),
                now=self.trust.now(),
                reference=reference,
                report_data=hardware_report_data(attempt.binding),
                root=self.trust.intel_root,
            )
        )

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        if self.reference(session) is not None and self.trust.tdx_collateral is None:
            return [
                (
                    "security.attestation.platforms.tdx",
                    "this CAS has no TDX collateral to verify quotes with (cas serve --tdx-collateral)",
                )
            ]
        return []


class AzureCvmEvidence(_HardwareVerifier):
    """An Azure confidential VM's HCL report and a vTPM quote over its PCRs with the binding."""

    kind: ClassVar[str] = AZURE_CVM

    def reference(self, session: Session) -> AzureCvmReference | None:
        return _platforms(session).azure_cvm

    def verify(self, attempt: Attempt) -> Findings:
        reference = self.reference(attempt.session)
        assert reference is not None, "only called when configured"
        evidence = parse_azure_evidence(attempt.evidence)
        hcl = azure.HclReport.parse(evidence.hcl_report)
        collateral = None if evidence.td_quote is None else self.trust.collateral_for(evidence.td_quote)
        if evidence.vcek is None and evidence.certificates is None and hcl.report_type == REPORT_TYPE_SNP:
            evidence = dataclasses.replace(evidence, vcek=self.trust.vcek_for(hcl.hardware_report))
        return _findings(
            azure.verify_evidence(
                evidence,
                now=self.trust.now(),
                reference=reference,
                qualifying_data=attempt.binding,
                amd_anchors=self.trust.amd_anchors,
                tdx_collateral=collateral,
                intel_root=self.trust.intel_root,
            )
        )


def hardware_verifiers(trust: HardwareTrust) -> list[SevSnpEvidence | TdxEvidence | AzureCvmEvidence]:
    """Every hardware verifier, strongest first (a bare-metal report before a paravisor's)."""
    return [SevSnpEvidence(trust), TdxEvidence(trust), AzureCvmEvidence(trust)]
