"""Azure confidential VMs: the vTPM's HCL report tied to a hardware report, and a TPM quote by its key.

On an Azure confidential VM the guest sees no SEV-SNP or TDX device: a paravisor (the HCL) asks the
hardware for a report and stores it, with its own "runtime data", in the vTPM's NV index ``0x01400001``.
The hardware report's report-data is the SHA-256 of that runtime data (a JSON document), and the runtime
data carries the public half of the vTPM's attestation key (``HCLAkPub``). So a chain of trust runs:
AMD or Intel → hardware report → runtime data → attestation key → a TPM2 quote over the PCRs, whose
qualifying data is this attestation's binding. Layout: Microsoft's "Guest attestation for confidential
VMs" design page ("attestation report format"): a 32-byte header (``HCLA``), the hardware report in a
1184-byte field, then the HCL data: size, version, report type (2: SNP, 4: TDX), hash type, the runtime
data's size and the runtime data.

For TDX-based VMs the hardware field holds a TDREPORT, which only a quoting enclave can turn into a
verifiable quote: the evidence then carries that quote (Azure's IMDS makes it), whose report-data must
be the same hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from ..policy.model import AzureCvmReference, SevSnpReference, TdxReference
from ..runtime.hardware import (
    HARDWARE_REPORT_SIZE,
    HCL_DATA_HEADER_SIZE,
    HCL_HEADER_SIZE,
    REPORT_TYPE_SNP,
    REPORT_TYPE_TDX,
)
from ..vocabulary import AZURE_CVM
from . import snp, tdx
from .tpm import Quote, TpmFormatError, pcr_digest, verify_quote_signature
from .verdict import Checks, Verdict

PLATFORM = AZURE_CVM
HCL_MAGIC = b"HCLA"
HASH_TYPE_SHA256 = 1
MAX_RUNTIME_DATA = 64 * 1024


@dataclass(frozen=True)
class HclReport:
    """An HCL report, parsed; nothing in it is trusted until its hardware report is verified."""

    report_type: int
    hardware_report: bytes
    runtime_data: bytes

    @classmethod
    def parse(cls, raw: bytes) -> HclReport:
        checks = Checks(PLATFORM)
        if len(raw) < HCL_HEADER_SIZE + HARDWARE_REPORT_SIZE + HCL_DATA_HEADER_SIZE or raw[:4] != HCL_MAGIC:
            raise checks.refuse("format", "not an HCL report (no HCLA header, or too short)")
        offset = HCL_HEADER_SIZE + HARDWARE_REPORT_SIZE
        _, _, report_type, hash_type, size = struct.unpack_from("<IIIII", raw, offset)
        start = offset + HCL_DATA_HEADER_SIZE
        if size > MAX_RUNTIME_DATA or start + size > len(raw):
            raise checks.refuse("format", f"the HCL report's runtime data ({size} bytes) does not fit in it")
        if hash_type != HASH_TYPE_SHA256:
            raise checks.refuse("format", f"runtime data hash type {hash_type} (expected 1, SHA-256)")
        if report_type not in (REPORT_TYPE_SNP, REPORT_TYPE_TDX):
            raise checks.refuse("format", f"hardware report type {report_type} (expected 2 SNP or 4 TDX)")
        return cls(report_type, raw[HCL_HEADER_SIZE:offset], raw[start : start + size])

    @property
    def expected_report_data(self) -> bytes:
        """What the hardware report's report-data must be: the runtime data's SHA-256, zero-padded."""
        return hashlib.sha256(self.runtime_data).digest() + bytes(32)


def _b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def attestation_key(runtime_data: bytes) -> rsa.RSAPublicKey:
    """The vTPM attestation key the runtime data names (JWK ``kid: HCLAkPub``)."""
    checks = Checks(PLATFORM)
    try:
        document = json.loads(runtime_data)
        for key in document["keys"]:
            if key.get("kid") == "HCLAkPub" and key.get("kty") == "RSA":
                return rsa.RSAPublicNumbers(_b64url_int(key["e"]), _b64url_int(key["n"])).public_key()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise checks.refuse("format", "the runtime data is not the HCL's JSON with its keys") from None
    raise checks.refuse("format", "the runtime data names no attestation key (HCLAkPub)")


@dataclass(frozen=True)
class AzureEvidence:
    """What a runtime on an Azure confidential VM sends."""

    hcl_report: bytes
    quote: bytes
    """``TPMS_ATTEST`` of a TPM2_Quote by the attestation key."""
    signature: bytes
    """Its ``TPMT_SIGNATURE``."""
    pcrs: Mapping[int, bytes]
    """SHA-256 PCR values the quote covers."""
    vcek: bytes | None = None
    certificates: bytes | None = None
    td_quote: bytes | None = None


def verify_evidence(
    evidence: AzureEvidence,
    *,
    now: datetime,
    reference: AzureCvmReference | None = None,
    qualifying_data: bytes | None = None,
    amd_anchors: snp.AmdAnchors | None = None,
    tdx_collateral: tdx.Collateral | None = None,
    intel_root: Any = None,
) -> Verdict:
    """Verify an Azure confidential VM's evidence; raises :class:`~..errors.EvidenceRefusedError`
    naming the check that refused it. ``qualifying_data`` is the 32 bytes the TPM quote must carry
    (the attestation's binding)."""
    checks = Checks(PLATFORM)
    report = HclReport.parse(evidence.hcl_report)
    checks.passed_check("format")

    measurements = reference.measurements if reference else ()
    if report.report_type == REPORT_TYPE_SNP:
        hardware = snp.verify_report(
            report.hardware_report,
            now=now,
            vcek=evidence.vcek,
            certificates=evidence.certificates,
            reference=None
            if reference is None
            else SevSnpReference(measurements=measurements, minimum_tcb=reference.minimum_tcb),
            report_data=report.expected_report_data,
            anchors=amd_anchors,
        )
    else:
        if evidence.td_quote is None:
            raise checks.refuse("format", "a TDX-based VM's evidence needs its TD quote (td_quote)")
        if tdx_collateral is None:
            raise checks.refuse("collateral", "no TDX collateral to verify the TD quote with")
        hardware = tdx.verify_quote(
            evidence.td_quote,
            tdx_collateral,
            now=now,
            reference=None if reference is None or not measurements else TdxReference(mrtd=measurements),
            report_data=report.expected_report_data,
            root=intel_root,
        )
    for check in hardware.checks:
        checks.passed_check(f"{hardware.platform}:{check}")
    for check in hardware.not_checked:
        checks.skip(f"{hardware.platform}:{check}")

    key = attestation_key(report.runtime_data)
    try:
        quote = Quote.parse(evidence.quote)
        verify_quote_signature(evidence.quote, evidence.signature, key)
    except TpmFormatError as error:
        raise checks.refuse("tpm-quote", str(error)) from None
    except InvalidSignature:
        raise checks.refuse("tpm-quote", "the quote is not signed by the VM's attestation key") from None
    checks.passed_check("tpm-quote")
    if qualifying_data is None:
        checks.skip("qualifying-data")
    elif quote.extra_data != qualifying_data:
        raise checks.refuse("qualifying-data", "the TPM quote does not carry this attestation's binding")
    else:
        checks.passed_check("qualifying-data")
    try:
        digest = pcr_digest(quote, evidence.pcrs)
    except TpmFormatError as error:
        raise checks.refuse("pcrs", str(error)) from None
    if digest != quote.pcr_digest:
        raise checks.refuse("pcrs", "the PCR values sent are not the ones the TPM quoted")
    quoted = {index for _, indexes in quote.selection for index in indexes}
    if reference is None:
        checks.skip("pcrs")
    else:
        for index, expected in reference.pcrs:
            if index not in quoted:
                raise checks.refuse("pcrs", f"the quote does not cover PCR {index}, which the policy pins")
            if evidence.pcrs[index].hex() != expected:
                raise checks.refuse("pcrs", f"PCR {index} is {evidence.pcrs[index].hex()}, not {expected}")
        checks.passed_check("pcrs")

    weaknesses = set(hardware.weaknesses)
    configuration = _vm_configuration(report.runtime_data)
    if configuration.get("secure-boot") is False or configuration.get("console-enabled") is True:
        weaknesses.add("insecure-configuration")
    claims = {
        "hardware": hardware.claims | {"platform": hardware.platform},
        "vm_configuration": configuration,
        "pcrs": {str(index): evidence.pcrs[index].hex() for index in sorted(quoted)},
        "attestation_key_sha256": hashlib.sha256(
            key.public_numbers().n.to_bytes((key.key_size + 7) // 8, "big")
        ).hexdigest(),
    }
    return checks.verdict(claims, frozenset(weaknesses), hardware.advisories)


def _vm_configuration(runtime_data: bytes) -> dict[str, Any]:
    configuration = json.loads(runtime_data).get("vm-configuration")
    return configuration if isinstance(configuration, dict) else {}
