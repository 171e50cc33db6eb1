"""Hardware evidence in the CAS: SEV-SNP reports, TDX quotes and Azure confidential VMs' vTPM evidence.

Each kind is accepted for a service only when the session's ``security.attestation.platforms`` names
it, with the reference values it must match; the verification itself is :mod:`..attestation`. The
report-data (or, on Azure, the TPM quote's qualifying data) must carry the attestation's binding of
nonce and runtime key, so a report is worth one attestation by one runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from cryptography import x509

from ..attestation import azure, snp, tdx
from ..attestation.verdict import Verdict
from ..attestation.wire import blob, parse_azure_evidence
from ..errors import EvidenceRefusedError
from ..policy import Service, Session
from ..runtime.protocol import AZURE_CVM, SEV_SNP, TDX, hardware_report_data
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
        """The cached VCEK issued for this report's chip, if the operator put one there."""
        if self.vcek_directory is None or len(report) != snp.REPORT_SIZE:
            return None
        chip_id = snp.SnpReport.parse(report).chip_id
        for path in sorted(self.vcek_directory.iterdir()):
            try:
                certificate = snp.load_amd_certificate(path.read_bytes())
            except (OSError, ValueError):
                continue
            _, hwid = snp.vcek_extensions(certificate)
            if hwid and chip_id.startswith(hwid):
                return path.read_bytes()
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


class SevSnpEvidence:
    """An SEV-SNP attestation report with the binding in its report-data, and its certificate table
    (or a VCEK the operator cached)."""

    kind: ClassVar[str] = SEV_SNP
    hardware: ClassVar[bool] = True

    def __init__(self, trust: HardwareTrust) -> None:
        self.trust = trust

    def configured(self, session: Session, service: Service) -> bool:
        return bool(session.security and session.security.attestation.platforms.sev_snp)

    def verify(self, attempt: Attempt) -> Findings:
        platforms = attempt.session.security.attestation.platforms if attempt.session.security else None
        assert platforms is not None and platforms.sev_snp is not None, "only called when configured"
        report = blob(attempt.evidence, "report")
        assert report is not None
        certificates = blob(attempt.evidence, "certificates", required=False)
        return _findings(
            snp.verify_report(
                report,
                now=self.trust.now(),
                vcek=None if certificates else self.trust.vcek_for(report),
                certificates=certificates,
                reference=platforms.sev_snp,
                report_data=hardware_report_data(attempt.binding),
                anchors=self.trust.amd_anchors,
            )
        )

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        return []


class TdxEvidence:
    """An Intel TDX quote with the binding in its report-data, verified with the cached collateral."""

    kind: ClassVar[str] = TDX
    hardware: ClassVar[bool] = True

    def __init__(self, trust: HardwareTrust) -> None:
        self.trust = trust

    def configured(self, session: Session, service: Service) -> bool:
        return bool(session.security and session.security.attestation.platforms.tdx)

    def verify(self, attempt: Attempt) -> Findings:
        platforms = attempt.session.security.attestation.platforms if attempt.session.security else None
        assert platforms is not None and platforms.tdx is not None, "only called when configured"
        quote = blob(attempt.evidence, "quote")
        assert quote is not None
        return _findings(
            tdx.verify_quote(
                quote,
                self.trust.collateral_for(quote),
                now=self.trust.now(),
                reference=platforms.tdx,
                report_data=hardware_report_data(attempt.binding),
                root=self.trust.intel_root,
            )
        )

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        platforms = session.security.attestation.platforms if session.security else None
        if platforms and platforms.tdx and self.trust.tdx_collateral is None:
            return [
                (
                    "security.attestation.platforms.tdx",
                    "this CAS has no TDX collateral to verify quotes with (cas serve --tdx-collateral)",
                )
            ]
        return []


class AzureCvmEvidence:
    """An Azure confidential VM's HCL report and a vTPM quote over its PCRs with the binding."""

    kind: ClassVar[str] = AZURE_CVM
    hardware: ClassVar[bool] = True

    def __init__(self, trust: HardwareTrust) -> None:
        self.trust = trust

    def configured(self, session: Session, service: Service) -> bool:
        return bool(session.security and session.security.attestation.platforms.azure_cvm)

    def verify(self, attempt: Attempt) -> Findings:
        platforms = attempt.session.security.attestation.platforms if attempt.session.security else None
        assert platforms is not None and platforms.azure_cvm is not None, "only called when configured"
        evidence = parse_azure_evidence(attempt.evidence)
        hcl = azure.HclReport.parse(evidence.hcl_report)
        collateral = None
        if evidence.td_quote is not None:
            collateral = self.trust.collateral_for(evidence.td_quote)
        vcek = evidence.vcek
        if vcek is None and evidence.certificates is None and hcl.report_type == azure.REPORT_TYPE_SNP:
            vcek = self.trust.vcek_for(hcl.hardware_report)
        return _findings(
            azure.verify_evidence(
                azure.AzureEvidence(
                    evidence.hcl_report,
                    evidence.quote,
                    evidence.signature,
                    evidence.pcrs,
                    vcek,
                    evidence.certificates,
                    evidence.td_quote,
                ),
                now=self.trust.now(),
                reference=platforms.azure_cvm,
                qualifying_data=attempt.binding,
                amd_anchors=self.trust.amd_anchors,
                tdx_collateral=collateral,
                intel_root=self.trust.intel_root,
            )
        )

    def admission_problems(self, session: Session) -> list[tuple[str, str]]:
        return []


def hardware_verifiers(trust: HardwareTrust) -> list[SevSnpEvidence | TdxEvidence | AzureCvmEvidence]:
    """Every hardware verifier, strongest first (a bare-metal report before a paravisor's)."""
    return [SevSnpEvidence(trust), TdxEvidence(trust), AzureCvmEvidence(trust)]
