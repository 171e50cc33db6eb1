"""AMD SEV-SNP attestation reports, verified against AMD's pinned roots.

The report layout is AMD's SEV-SNP firmware ABI specification (publication 56860, "ATTESTATION_REPORT
Structure"); the VCEK's extensions are in AMD's VCEK certificate and KDS interface specification (57230).
A report is trusted when its VCEK chains to the pinned ARK of the VCEK's product (through that product's
ASK), the VCEK's ECDSA P-384 signature over the report verifies, and the VCEK was issued for the report's
chip and reported TCB. Everything else (measurement, TCB minimum, VMPL, report data) is then policy.
"""

from __future__ import annotations

import struct
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning

from ..policy.model import SevSnpReference, SnpTcb
from ..vocabulary import SEV_SNP
from .verdict import Checks, Verdict

PLATFORM = SEV_SNP
REPORT_SIZE = 0x4A0
"""1184 bytes: the signed body (0x000-0x29F) and the signature."""
SIGNED_BYTES = 0x2A0
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5})
"""Report versions whose signed layout this parser knows (later versions only fill reserved bytes)."""
ECDSA_P384_SHA384 = 1

# Offsets in the report (ABI 56860).
_VERSION, _GUEST_SVN, _POLICY, _FAMILY_ID, _IMAGE_ID = 0x00, 0x04, 0x08, 0x10, 0x20
_VMPL, _SIGNATURE_ALGO, _CURRENT_TCB, _PLATFORM_INFO, _KEY_INFO = 0x30, 0x34, 0x38, 0x40, 0x48
_REPORT_DATA, _MEASUREMENT, _HOST_DATA, _ID_KEY_DIGEST, _AUTHOR_KEY_DIGEST = 0x50, 0x90, 0xC0, 0xE0, 0x110
_REPORT_ID, _REPORTED_TCB, _CHIP_ID, _COMMITTED_TCB, _LAUNCH_TCB = 0x140, 0x180, 0x1A0, 0x1E0, 0x1F0
_SIGNATURE = 0x2A0

# Guest policy bits (the policy the guest owner launched the VM with).
_POLICY_SMT_ALLOWED = 1 << 16
_POLICY_MIGRATE_MA = 1 << 18
_POLICY_DEBUG = 1 << 19
_POLICY_SINGLE_SOCKET = 1 << 20
# Platform info bits (what the host actually runs).
_PLATFORM_SMT_ENABLED = 1 << 0
_PLATFORM_TSME_ENABLED = 1 << 1

_VCEK_OID = "1.3.6.1.4.1.3704.1."
_VCEK_TCB_OIDS = {
    "bootloader": _VCEK_OID + "3.1",
    "tee": _VCEK_OID + "3.2",
    "snp": _VCEK_OID + "3.3",
    "microcode": _VCEK_OID + "3.8",
    "fmc": _VCEK_OID + "3.9",
}
_VCEK_HWID_OID = _VCEK_OID + "4"

# The certificate table of an extended report (GHCB specification): GUID, offset, length; a zero GUID ends.
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")

PRODUCTS = ("Milan", "Genoa", "Turin")


def load_amd_certificate(data: bytes) -> x509.Certificate:
    """A certificate from AMD's KDS, PEM or DER.

    VCEKs are issued with a serial number that is not positive, which RFC 5280 forbids and newer
    ``cryptography`` releases warn about. The serial plays no part in this verification (nothing is
    looked up by it), so that one warning is silenced here, deliberately and only here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*serial number.*", category=CryptographyDeprecationWarning
        )
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)


@dataclass(frozen=True)
class ProductAnchor:
    """One product's pinned root (ARK) and the signing key (ASK) it certified."""

    product: str
    ark: x509.Certificate
    ask: x509.Certificate


class AmdAnchors:
    """The AMD roots a verifier trusts, by the name the VCEK's issuer carries (``SEV-Milan``, ...).

    :meth:`pinned` is AMD's real ARKs and ASKs for Milan, Genoa and Turin, shipped in this package; tests
    build other anchors to show that a chain to them is what makes a report trusted."""

    def __init__(self, anchors: Mapping[str, ProductAnchor]) -> None:
        for anchor in anchors.values():
            # Checked once, here: every ASK is certified by its ARK, and every ARK by itself.
            anchor.ark.verify_directly_issued_by(anchor.ark)
            anchor.ask.verify_directly_issued_by(anchor.ark)
        self.by_ask_subject = {anchor.ask.subject: anchor for anchor in anchors.values()}

    @classmethod
    @cache
    def pinned(cls) -> AmdAnchors:
        folder = resources.files(__package__).joinpath("anchors")
        anchors = {}
        for product in PRODUCTS:
            ark = load_amd_certificate(folder.joinpath(f"{product.lower()}-ark.pem").read_bytes())
            ask = load_amd_certificate(folder.joinpath(f"{product.lower()}-ask.pem").read_bytes())
            anchors[product] = ProductAnchor(product, ark, ask)
        return cls(anchors)


@dataclass(frozen=True)
class SnpReport:
    """An attestation report, parsed; nothing in it is trusted until :func:`verify_report` says so."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signature_algorithm: int
    platform_info: int
    signing_key: int
    """0: the VCEK; 1: a VLEK; 7: none."""
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    family_id: bytes
    image_id: bytes
    report_id: bytes
    chip_id: bytes
    current_tcb: int
    reported_tcb: int
    committed_tcb: int
    launch_tcb: int
    signature_r: int
    signature_s: int

    @classmethod
    def parse(cls, raw: bytes) -> SnpReport:
        checks = Checks(PLATFORM)
        if len(raw) != REPORT_SIZE:
            raise checks.refuse("format", f"a report is {REPORT_SIZE} bytes, this is {len(raw)}")

        def u32(offset: int) -> int:
            return int(struct.unpack_from("<I", raw, offset)[0])

        def u64(offset: int) -> int:
            return int(struct.unpack_from("<Q", raw, offset)[0])

        version = u32(_VERSION)
        if version not in SUPPORTED_VERSIONS:
            raise checks.refuse(
                "format",
                f"report version {version} (supported: {', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})",
            )
        return cls(
            raw=raw,
            version=version,
            guest_svn=u32(_GUEST_SVN),
            policy=u64(_POLICY),
            vmpl=u32(_VMPL),
            signature_algorithm=u32(_SIGNATURE_ALGO),
            platform_info=u64(_PLATFORM_INFO),
            signing_key=(u32(_KEY_INFO) >> 2) & 0b111,
            report_data=raw[_REPORT_DATA : _REPORT_DATA + 64],
            measurement=raw[_MEASUREMENT : _MEASUREMENT + 48],
            host_data=raw[_HOST_DATA : _HOST_DATA + 32],
            id_key_digest=raw[_ID_KEY_DIGEST : _ID_KEY_DIGEST + 48],
            author_key_digest=raw[_AUTHOR_KEY_DIGEST : _AUTHOR_KEY_DIGEST + 48],
            family_id=raw[_FAMILY_ID : _FAMILY_ID + 16],
            image_id=raw[_IMAGE_ID : _IMAGE_ID + 16],
            report_id=raw[_REPORT_ID : _REPORT_ID + 32],
            chip_id=raw[_CHIP_ID : _CHIP_ID + 64],
            current_tcb=u64(_CURRENT_TCB),
            reported_tcb=u64(_REPORTED_TCB),
            committed_tcb=u64(_COMMITTED_TCB),
            launch_tcb=u64(_LAUNCH_TCB),
            signature_r=int.from_bytes(raw[_SIGNATURE : _SIGNATURE + 72], "little"),
            signature_s=int.from_bytes(raw[_SIGNATURE + 72 : _SIGNATURE + 144], "little"),
        )


def decode_tcb(value: int, product: str) -> SnpTcb:
    """A 64-bit TCB_VERSION in the product's layout (Turin added the FMC level and moved the rest)."""
    octets = value.to_bytes(8, "little")
    if product == "Turin":
        return SnpTcb(fmc=octets[0], bootloader=octets[1], tee=octets[2], snp=octets[3], microcode=octets[7])
    return SnpTcb(bootloader=octets[0], tee=octets[1], snp=octets[6], microcode=octets[7])


def certificate_table(table: bytes) -> dict[uuid.UUID, bytes]:
    """The certificates of an extended report's table (``auxblob`` in configfs-tsm), by GUID."""
    found: dict[uuid.UUID, bytes] = {}
    checks = Checks(PLATFORM)
    for start in range(0, len(table) - 23, 24):
        guid = uuid.UUID(bytes_le=table[start : start + 16])
        offset, length = struct.unpack_from("<II", table, start + 16)
        if guid.int == 0:
            return found
        if offset + length > len(table):
            raise checks.refuse("format", f"certificate table entry {guid} lies outside the table")
        found[guid] = table[offset : offset + length]
    raise checks.refuse("format", "the certificate table has no terminating entry")


def _der_integer(value: bytes) -> int:
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2:
        raise ValueError("not a short DER INTEGER")
    return int.from_bytes(value[2:], "big", signed=True)


def vcek_extensions(vcek: x509.Certificate) -> tuple[dict[str, int], bytes]:
    """The TCB levels a VCEK was issued for, and the chip it was issued to (hwID)."""
    values: dict[str, bytes] = {}
    for extension in vcek.extensions:
        if isinstance(extension.value, x509.UnrecognizedExtension):
            values[extension.oid.dotted_string] = extension.value.value
    tcb = {name: _der_integer(values[oid]) for name, oid in _VCEK_TCB_OIDS.items() if oid in values}
    hwid = values.get(_VCEK_HWID_OID, b"")
    if len(hwid) >= 2 and hwid[0] == 0x04 and hwid[1] == len(hwid) - 2:
        hwid = hwid[2:]  # some KDS versions wrap hwID in an OCTET STRING
    return tcb, hwid


def _tcb_json(tcb: SnpTcb) -> dict[str, int]:
    return {
        "bootloader": tcb.bootloader,
        "tee": tcb.tee,
        "snp": tcb.snp,
        "microcode": tcb.microcode,
        "fmc": tcb.fmc,
    }


def verify_report(
    raw: bytes,
    *,
    now: datetime,
    vcek: bytes | None = None,
    certificates: bytes | None = None,
    reference: SevSnpReference | None = None,
    report_data: bytes | None = None,
    anchors: AmdAnchors | None = None,
) -> Verdict:
    """Verify an SEV-SNP attestation report; raises :class:`~..errors.EvidenceRefusedError` naming the
    check that refused it.

    ``vcek`` is the VCEK (PEM or DER) the operator supplies; otherwise it is taken from ``certificates``,
    the extended report's certificate table. ``reference`` is the policy (measurements, minimum TCB, VMPL);
    ``report_data`` the exact 64 bytes the report must carry. Either may be omitted to see what a report
    claims (``sconify evidence verify``): the verdict then lists them under ``not_checked``."""
    checks = Checks(PLATFORM)
    report = SnpReport.parse(raw)
    checks.passed_check("format")
    if report.signature_algorithm != ECDSA_P384_SHA384:
        raise checks.refuse(
            "format", f"signature algorithm {report.signature_algorithm} (expected 1, ECDSA P-384)"
        )
    if report.signing_key != 0:
        raise checks.refuse(
            "chain",
            f"the report is signed by key type {report.signing_key}; only the VCEK (0) is accepted",
        )

    ask_from_table = None
    if vcek is None and certificates is not None:
        table = certificate_table(certificates)
        vcek = table.get(VCEK_GUID)
        ask_from_table = table.get(ASK_GUID)
    if vcek is None:
        raise checks.refuse(
            "chain", "no VCEK: the evidence carries no certificate table and none was supplied"
        )
    try:
        vcek_certificate = load_amd_certificate(vcek)
    except ValueError as error:
        raise checks.refuse("chain", f"the VCEK is not a certificate ({error})") from None

    # The chain: the pinned ASK that issued this VCEK (never one the evidence supplies; an ASK from the
    # table is only compared), valid now, and its pinned ARK behind it.
    trusted = anchors or AmdAnchors.pinned()
    anchor = trusted.by_ask_subject.get(vcek_certificate.issuer)
    if anchor is None:
        raise checks.refuse(
            "chain", f"the VCEK's issuer {vcek_certificate.issuer.rfc4514_string()} is not a trusted AMD ASK"
        )
    if ask_from_table is not None and load_amd_certificate(ask_from_table) != anchor.ask:
        raise checks.refuse("chain", f"the evidence's ASK is not AMD's {anchor.product} ASK")
    try:
        vcek_certificate.verify_directly_issued_by(anchor.ask)
    except (InvalidSignature, ValueError, TypeError):
        raise checks.refuse("chain", f"the VCEK is not signed by AMD's {anchor.product} ASK") from None
    for certificate in (vcek_certificate, anchor.ask, anchor.ark):
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise checks.refuse(
                "chain", f"{certificate.subject.rfc4514_string()} is not valid at {now.isoformat()}"
            )
    checks.passed_check("chain")

    public_key = vcek_certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp384r1":
        raise checks.refuse("chain", "the VCEK's key is not ECDSA P-384")
    try:
        public_key.verify(
            encode_dss_signature(report.signature_r, report.signature_s),
            raw[:SIGNED_BYTES],
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        raise checks.refuse("signature", "the report's signature does not verify with its VCEK") from None
    checks.passed_check("signature")

    # The VCEK is derived from the chip's secret and the TCB it was issued for: it must be this chip's,
    # for the TCB the report says it was signed under.
    product = anchor.product
    vcek_tcb, hwid = vcek_extensions(vcek_certificate)
    reported = decode_tcb(report.reported_tcb, product)
    mismatched = [name for name, level in vcek_tcb.items() if getattr(reported, name) != level]
    if mismatched or not vcek_tcb:
        raise checks.refuse(
            "vcek-tcb",
            f"the VCEK was issued for another TCB ({', '.join(mismatched) or 'no TCB extensions'})",
        )
    if not hwid or report.chip_id[: len(hwid)] != hwid or any(report.chip_id[len(hwid) :]):
        raise checks.refuse("vcek-tcb", "the VCEK was issued for another chip")
    checks.passed_check("vcek-tcb")

    measurement = report.measurement.hex()
    if reference is None:
        checks.skip("measurement")
        checks.skip("minimum-tcb")
        checks.skip("vmpl")
    else:
        if not reference.measurements:
            checks.skip("measurement")  # an Azure VM's firmware, when its policy pins PCRs instead
        elif measurement not in reference.measurements:
            raise checks.refuse(
                "measurement", f"launch measurement {measurement} is not one the policy allows"
            )
        else:
            checks.passed_check("measurement")
        if not reported.at_least(reference.minimum_tcb):
            raise checks.refuse(
                "minimum-tcb",
                f"reported TCB {_tcb_json(reported)} is below the minimum {_tcb_json(reference.minimum_tcb)}",
            )
        checks.passed_check("minimum-tcb")
        if report.vmpl > reference.maximum_vmpl:
            raise checks.refuse(
                "vmpl",
                f"the report is from VMPL {report.vmpl}; the policy accepts up to {reference.maximum_vmpl}",
            )
        checks.passed_check("vmpl")
    if report_data is None:
        checks.skip("report-data")
    elif report.report_data != report_data:
        raise checks.refuse("report-data", "the report data is not this attestation's binding")
    else:
        checks.passed_check("report-data")

    weaknesses = set()
    if report.policy & _POLICY_DEBUG:
        weaknesses.add("debug-mode")
    if report.platform_info & _PLATFORM_SMT_ENABLED:
        weaknesses.add("hyperthreading")
    return checks.verdict(_claims(report, product, reported), frozenset(weaknesses))


def _claims(report: SnpReport, product: str, reported: SnpTcb) -> dict[str, Any]:
    return {
        "product": product,
        "version": report.version,
        "measurement": report.measurement.hex(),
        "report_data": report.report_data.hex(),
        "host_data": report.host_data.hex(),
        "vmpl": report.vmpl,
        "guest_svn": report.guest_svn,
        "policy": {
            "abi": f"{(report.policy >> 8) & 0xFF}.{report.policy & 0xFF}",
            "debug": bool(report.policy & _POLICY_DEBUG),
            "smt_allowed": bool(report.policy & _POLICY_SMT_ALLOWED),
            "migrate_ma": bool(report.policy & _POLICY_MIGRATE_MA),
            "single_socket": bool(report.policy & _POLICY_SINGLE_SOCKET),
        },
        "platform": {
            "smt_enabled": bool(report.platform_info & _PLATFORM_SMT_ENABLED),
            "tsme_enabled": bool(report.platform_info & _PLATFORM_TSME_ENABLED),
        },
        "reported_tcb": _tcb_json(reported),
        "current_tcb": _tcb_json(decode_tcb(report.current_tcb, product)),
        "committed_tcb": _tcb_json(decode_tcb(report.committed_tcb, product)),
        "launch_tcb": _tcb_json(decode_tcb(report.launch_tcb, product)),
        "chip_id": report.chip_id.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "author_key_digest": report.author_key_digest.hex(),
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
    }
