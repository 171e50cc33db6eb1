"""SEV-SNP reports signed under an AMD-like hierarchy the tests own.

The real Milan report (tests/fixtures/attestation) shows what AMD's chain accepts; a forger can copy
every name in it, and these helpers do exactly that — an ARK and ASK called ``ARK-Milan`` and
``SEV-Milan`` with RSA-PSS like AMD's, a VCEK with the same TCB extensions and hwID — so that a test
shows the pinned roots, not the names, are what refuse it. The same hierarchy, trusted on purpose,
gives the reports real hardware would not hand a test: a debug policy, another VMPL.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from pulumi_sconify.engine.attestation.snp import AmdAnchors, ProductAnchor
from pulumi_sconify.engine.policy.model import SnpTcb

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
DEBUG = 1 << 19
SMT_ALLOWED = 1 << 16


def _amd_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def _tcb_bytes(tcb: SnpTcb) -> int:
    octets = bytes([tcb.bootloader, tcb.tee, 0, 0, 0, 0, tcb.snp, tcb.microcode])
    return int.from_bytes(octets, "little")


@dataclass
class ForgedMilan:
    """An ARK, ASK and VCEK named like AMD's Milan chain, and reports signed by that VCEK."""

    chip_id: bytes = bytes(range(64))
    tcb: SnpTcb = field(default_factory=lambda: SnpTcb(bootloader=3, tee=0, snp=8, microcode=115))
    """The TCB the reports say they were signed under."""
    vcek_tcb: SnpTcb | None = None
    """The TCB the VCEK is issued for (default: ``tcb``, as AMD's KDS does)."""
    vcek_chip_id: bytes | None = None

    def __post_init__(self) -> None:
        self.ark_key = rsa.generate_private_key(65537, 2048)
        self.ask_key = rsa.generate_private_key(65537, 2048)
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        self.ark = self._certificate("ARK-Milan", "ARK-Milan", self.ark_key.public_key(), self.ark_key)
        self.ask = self._certificate("SEV-Milan", "ARK-Milan", self.ask_key.public_key(), self.ark_key)
        issued_for = self.vcek_tcb or self.tcb
        extensions = [
            ("1.3.6.1.4.1.3704.1.3.1", _der_integer(issued_for.bootloader)),
            ("1.3.6.1.4.1.3704.1.3.2", _der_integer(issued_for.tee)),
            ("1.3.6.1.4.1.3704.1.3.3", _der_integer(issued_for.snp)),
            ("1.3.6.1.4.1.3704.1.3.8", _der_integer(issued_for.microcode)),
            ("1.3.6.1.4.1.3704.1.4", self.vcek_chip_id or self.chip_id),
        ]
        self.vcek = self._certificate(
            "SEV-VCEK", "SEV-Milan", self.vcek_key.public_key(), self.ask_key, extensions
        )

    def _certificate(
        self,
        subject: str,
        issuer: str,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        signer: rsa.RSAPrivateKey,
        extensions: Sequence[tuple[str, bytes]] = (),
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_amd_name(subject))
            .issuer_name(_amd_name(issuer))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2023, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        )
        for oid, value in extensions:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
            )
        return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)

    @property
    def vcek_der(self) -> bytes:
        return self.vcek.public_bytes(serialization.Encoding.DER)

    @property
    def anchors(self) -> AmdAnchors:
        """This hierarchy, trusted on purpose (what a verifier must never do with a forger's roots)."""
        return AmdAnchors({"Milan": ProductAnchor("Milan", self.ark, self.ask)})

    def report(
        self,
        *,
        measurement: bytes = b"\x11" * 48,
        report_data: bytes = bytes(64),
        policy: int = SMT_ALLOWED | (1 << 17),
        vmpl: int = 0,
        platform_info: int = 0,
    ) -> bytes:
        """A version-3 report, signed by this VCEK."""
        body = bytearray(0x2A0)
        struct.pack_into("<IIQ", body, 0x00, 3, 0, policy)
        struct.pack_into("<II", body, 0x30, vmpl, 1)
        struct.pack_into("<QQ", body, 0x38, _tcb_bytes(self.tcb), platform_info)
        body[0x50:0x90] = report_data
        body[0x90:0xC0] = measurement
        for offset in (0x180, 0x1E0, 0x1F0):
            struct.pack_into("<Q", body, offset, _tcb_bytes(self.tcb))
        body[0x1A0:0x1E0] = self.chip_id
        r, s = decode_dss_signature(self.vcek_key.sign(bytes(body), ec.ECDSA(hashes.SHA384())))
        signature = r.to_bytes(72, "little") + s.to_bytes(72, "little") + bytes(512 - 144)
        return bytes(body) + signature


def certificate_table(*entries: tuple[uuid.UUID, bytes]) -> bytes:
    """An extended report's certificate table (the GHCB specification's layout): GUID, offset, length
    entries, a zero entry, then the certificates."""
    header_size = 24 * (len(entries) + 1)
    headers, data = b"", b""
    for guid, blob in entries:
        headers += guid.bytes_le + struct.pack("<II", header_size + len(data), len(blob))
        data += blob
    return headers + bytes(24) + data
