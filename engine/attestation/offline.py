"""Verifying evidence outside the CAS, with the CAS's own code: how an operator pins measurements and
finds out why an attestation was refused (``sconify evidence verify``)."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import EvidenceRefusedError, SconifyError
from ..policy import Session
from ..runtime.protocol import AZURE_CVM, HARDWARE_KINDS, SEV_SNP, TDX
from . import azure, snp, tdx
from .verdict import Verdict
from .wire import blob, parse_azure_evidence


class EvidenceFileError(SconifyError):
    """An evidence file that cannot be read as the kind it is said to be."""


@dataclass(frozen=True)
class OfflineOptions:
    at: datetime
    """The moment to verify at (certificates, collateral): now, or when the evidence was made."""
    vcek: bytes | None = None
    certificates: bytes | None = None
    collateral: Path | None = None
    session: Session | None = None
    """Its ``security.attestation.platforms`` entry for the kind becomes the reference values."""


def _bytes(data: bytes) -> bytes:
    """Raw bytes, or the hex text of them (as the vendors' test vectors and ``xxd -p`` write them)."""
    text = data.strip()
    if text and all(chr(c) in string.hexdigits + "\n\r " for c in text):
        try:
            return bytes.fromhex(text.decode().replace("\n", "").replace("\r", "").replace(" ", ""))
        except ValueError:
            pass
    return data


def _bundle(data: bytes, kind: str) -> dict[str, Any] | None:
    """The evidence as a runtime sends it (JSON with ``kind``), when ``data`` is that."""
    if not data.lstrip().startswith(b"{"):
        return None
    try:
        bundle = json.loads(data)
    except ValueError as error:
        raise EvidenceFileError(f"not an evidence bundle: {error}") from None
    if not isinstance(bundle, dict) or bundle.get("kind") != kind:
        raise EvidenceFileError(f"the evidence bundle is not of kind {kind}")
    return bundle


def verify_file(kind: str, data: bytes, options: OfflineOptions) -> Verdict:
    """Verify ``data`` (a raw report or quote, its hex, or an evidence bundle) as evidence of ``kind``;
    raises :class:`~..errors.EvidenceRefusedError` naming the refusing check."""
    if kind not in HARDWARE_KINDS:
        raise EvidenceFileError(f"unknown evidence kind {kind!r} (known: {', '.join(HARDWARE_KINDS)})")
    platforms = (
        options.session.security.attestation.platforms
        if options.session and options.session.security
        else None
    )
    bundle = _bundle(data, kind)
    if kind == SEV_SNP:
        reference = platforms.sev_snp if platforms else None
        if options.session is not None and reference is None:
            raise EvidenceFileError(
                "the policy does not accept sev-snp evidence (security.attestation.platforms)"
            )
        report = blob(bundle, "report") if bundle else _bytes(data)
        certificates = blob(bundle, "certificates", required=False) if bundle else options.certificates
        assert report is not None
        return snp.verify_report(
            report, now=options.at, vcek=options.vcek, certificates=certificates, reference=reference
        )
    if kind == TDX:
        reference_tdx = platforms.tdx if platforms else None
        if options.session is not None and reference_tdx is None:
            raise EvidenceFileError(
                "the policy does not accept tdx evidence (security.attestation.platforms)"
            )
        quote = blob(bundle, "quote") if bundle else _bytes(data)
        assert quote is not None
        if options.collateral is None:
            raise EvidenceFileError("a TDX quote is verified with Intel's collateral: --collateral DIR")
        facts = tdx.parse_quote(quote)
        try:
            collateral = tdx.Collateral.from_directory(options.collateral, facts.fmspc, facts.ca)
        except FileNotFoundError as missing:
            raise EvidenceFileError(str(missing)) from None
        return tdx.verify_quote(quote, collateral, now=options.at, reference=reference_tdx)
    assert kind == AZURE_CVM
    reference_azure = platforms.azure_cvm if platforms else None
    if options.session is not None and reference_azure is None:
        raise EvidenceFileError(
            "the policy does not accept azure-cvm evidence (security.attestation.platforms)"
        )
    if bundle is None:
        raise EvidenceFileError(
            "azure-cvm evidence is a bundle: the JSON a runtime sends (hcl_report, quote, ...)"
        )
    evidence = parse_azure_evidence(bundle)
    collateral_for_td = None
    if evidence.td_quote is not None and options.collateral is not None:
        facts = tdx.parse_quote(evidence.td_quote)
        collateral_for_td = tdx.Collateral.from_directory(options.collateral, facts.fmspc, facts.ca)
    return azure.verify_evidence(
        azure.AzureEvidence(
            evidence.hcl_report,
            evidence.quote,
            evidence.signature,
            evidence.pcrs,
            options.vcek or evidence.vcek,
            evidence.certificates,
            evidence.td_quote,
        ),
        now=options.at,
        reference=reference_azure,
        tdx_collateral=collateral_for_td,
    )


__all__ = ["EvidenceFileError", "EvidenceRefusedError", "OfflineOptions", "verify_file"]
