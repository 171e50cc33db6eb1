"""Verifying evidence outside the CAS, with the CAS's own code: how an operator pins measurements and
finds out why an attestation was refused (``sconify evidence verify``)."""

from __future__ import annotations

import dataclasses
import json
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import EvidenceRefusedError, SconifyError
from ..policy import AzureCvmReference, Platforms, Session, SevSnpReference, TdxReference
from ..vocabulary import AZURE_CVM, HARDWARE_KINDS, SEV_SNP, TDX
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


Reference = SevSnpReference | TdxReference | AzureCvmReference


def _reference(kind: str, session: Session | None) -> Reference | None:
    """The session's reference values for ``kind``; ``None`` without a session."""
    if session is None:
        return None
    platforms = session.security.attestation.platforms if session.security else Platforms()
    reference: Reference | None = {
        SEV_SNP: platforms.sev_snp,
        TDX: platforms.tdx,
        AZURE_CVM: platforms.azure_cvm,
    }[kind]
    if reference is None:
        raise EvidenceFileError(
            f"the policy does not accept {kind} evidence (security.attestation.platforms)"
        )
    return reference


def _collateral(quote: bytes, directory: Path | None) -> tdx.Collateral:
    if directory is None:
        raise EvidenceFileError("a TDX quote is verified with Intel's collateral: --collateral DIR")
    facts = tdx.parse_quote(quote)
    try:
        return tdx.Collateral.from_directory(directory, facts.fmspc, facts.ca)
    except FileNotFoundError as missing:
        raise EvidenceFileError(str(missing)) from None


def verify_file(kind: str, data: bytes, options: OfflineOptions) -> Verdict:
    """Verify ``data`` (a raw report or quote, its hex, or an evidence bundle) as evidence of ``kind``;
    raises :class:`~..errors.EvidenceRefusedError` naming the refusing check."""
    if kind not in HARDWARE_KINDS:
        raise EvidenceFileError(f"unknown evidence kind {kind!r} (known: {', '.join(HARDWARE_KINDS)})")
    reference = _reference(kind, options.session)
    bundle = _bundle(data, kind)
    if kind == SEV_SNP:
        assert reference is None or isinstance(reference, SevSnpReference)
        report = blob(bundle, "report") if bundle else _bytes(data)
        certificates = blob(bundle, "certificates", required=False) if bundle else options.certificates
        assert report is not None
        return snp.verify_report(
            report, now=options.at, vcek=options.vcek, certificates=certificates, reference=reference
        )
    if kind == TDX:
        assert reference is None or isinstance(reference, TdxReference)
        quote = blob(bundle, "quote") if bundle else _bytes(data)
        assert quote is not None
        return tdx.verify_quote(
            quote, _collateral(quote, options.collateral), now=options.at, reference=reference
        )
    assert reference is None or isinstance(reference, AzureCvmReference)
    if bundle is None:
        raise EvidenceFileError(
            "azure-cvm evidence is a bundle: the JSON a runtime sends (hcl_report, quote, ...)"
        )
    evidence = parse_azure_evidence(bundle)
    if options.vcek is not None:
        evidence = dataclasses.replace(evidence, vcek=options.vcek)
    return azure.verify_evidence(
        evidence,
        now=options.at,
        reference=reference,
        tdx_collateral=None
        if evidence.td_quote is None
        else _collateral(evidence.td_quote, options.collateral),
    )


__all__ = ["EvidenceFileError", "EvidenceRefusedError", "OfflineOptions", "verify_file"]
