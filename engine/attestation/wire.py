"""Hardware evidence on the wire: the JSON fields a runtime sends, decoded with bounds."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..errors import EvidenceRefusedError
from . import azure

MAX_EVIDENCE_FIELD = 40 * 1024
"""The largest field of hardware evidence that is decoded (an extended report's certificates are a few
KiB; nothing legitimate is near this)."""


def blob(evidence: Mapping[str, Any], name: str, *, required: bool = True) -> bytes | None:
    """A base64 field of the evidence, decoded; refused when malformed, too large, or missing."""
    value = evidence.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > MAX_EVIDENCE_FIELD * 4 // 3 + 4:
        raise EvidenceRefusedError(
            f"evidence field {name}: expected base64 of at most {MAX_EVIDENCE_FIELD} bytes", "format"
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceRefusedError(f"evidence field {name}: not base64", "format") from None


def parse_azure_evidence(evidence: Mapping[str, Any]) -> azure.AzureEvidence:
    """The wire form of azure-cvm evidence: base64 fields and the PCRs as ``{"index": hex}``."""
    pcrs_field = evidence.get("pcrs")
    if not isinstance(pcrs_field, dict) or len(pcrs_field) > 24:
        raise EvidenceRefusedError("evidence field pcrs: expected a mapping of PCR numbers to hex", "format")
    pcrs: dict[int, bytes] = {}
    for key, value in pcrs_field.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < 24) or not isinstance(value, str):
            raise EvidenceRefusedError(
                "evidence field pcrs: expected PCR numbers 0-23 and hex values", "format"
            )
        try:
            pcrs[int(key)] = bytes.fromhex(value)
        except ValueError:
            raise EvidenceRefusedError(f"evidence field pcrs.{key}: not hex", "format") from None
    hcl, quote, signature = (blob(evidence, name) for name in ("hcl_report", "quote", "signature"))
    assert hcl is not None and quote is not None and signature is not None
    return azure.AzureEvidence(
        hcl,
        quote,
        signature,
        pcrs,
        blob(evidence, "vcek", required=False),
        blob(evidence, "certificates", required=False),
        blob(evidence, "td_quote", required=False),
    )
