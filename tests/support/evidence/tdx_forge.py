"""A TDX quote and its collateral under a certificate hierarchy the tests own.

Real TDX evidence with collateral that rates it exists for one moment (tests/fixtures/attestation); to
show every other verdict — an accepted quote with chosen measurements, a revoked PCK, an outdated TCB,
a chain that is not Intel's — the tests build the whole hierarchy: a root, a PCK platform CA that also
signs the PCK revocation list, a TCB signer, a PCK certificate with Intel's SGX extension, and a
version-4 quote signed through the quoting enclave's attestation key exactly as Intel's quoting library
lays it out (Intel's "TDX DCAP Quoting Library API"; the field shapes as dcap-qvl's own sample generator
writes them). Verified against this root, it is what dcap-qvl accepts; against Intel's pinned root it is
what a forger has.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from pulumi_sconify.engine.attestation.tdx import Collateral

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
TEE_TYPE_TDX = 0x81
SGX_EXTENSION = "1.2.840.113741.1.13.1"
FMSPC = "00806f050000"
PCE_ID = "0000"
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
VALID_UNTIL = datetime(2026, 2, 1, tzinfo=UTC)
DURING = datetime(2026, 1, 15, tzinfo=UTC)
"""A moment inside the collateral's validity."""
SEPT_VE_DISABLE = 1 << 28
"""TD attribute dcap-qvl requires (a TD that cannot be fooled by EPT violations)."""


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, body)


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def _entry(oid: str, value: bytes) -> bytes:
    return _der(0x30, _oid(oid) + value)


def sgx_extension(cpu_svn: bytes, pce_svn: int) -> bytes:
    """Intel's SGX extension of a PCK certificate: PPID, TCB (16 component SVNs, PCESVN, CPUSVN), PCE-ID,
    FMSPC, SGX type."""
    base = SGX_EXTENSION
    tcb = b"".join(_entry(f"{base}.2.{index + 1}", _integer(cpu_svn[index])) for index in range(16))
    tcb += _entry(f"{base}.2.17", _integer(pce_svn)) + _entry(f"{base}.2.18", _der(0x04, cpu_svn))
    return _der(
        0x30,
        _entry(f"{base}.1", _der(0x04, bytes(16)))
        + _entry(f"{base}.2", _der(0x30, tcb))
        + _entry(f"{base}.3", _der(0x04, bytes.fromhex(PCE_ID)))
        + _entry(f"{base}.4", _der(0x04, bytes.fromhex(FMSPC)))
        + _entry(f"{base}.5", _der(0x0A, b"\x00")),
    )


def _raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    extra: x509.UnrecognizedExtension | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if extra is not None:
        builder = builder.add_extension(extra, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, revoked: list[int]) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(ISSUED)
        .next_update(VALID_UNTIL)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(ISSUED).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass
class TdReport:
    """The TD's part of the quote: what the TDX module measured and the TD asked to be signed."""

    mrtd: bytes = bytes([0x03]) * 48
    rtmrs: tuple[bytes, bytes, bytes, bytes] = (b"\x07" * 48, b"\x08" * 48, b"\x09" * 48, b"\x0a" * 48)
    report_data: bytes = bytes(64)
    td_attributes: int = SEPT_VE_DISABLE
    tee_tcb_svn: bytes = bytes([1] * 16)
    mr_signer_seam: bytes = bytes([0x02]) * 48

    def encode(self) -> bytes:
        return (
            self.tee_tcb_svn
            + bytes([0x01]) * 48  # MRSEAM
            + self.mr_signer_seam
            + bytes(8)  # SEAMATTRIBUTES
            + self.td_attributes.to_bytes(8, "little")
            + bytes(8)  # XFAM
            + self.mrtd
            + bytes(48 * 3)  # MRCONFIGID, MROWNER, MROWNERCONFIG
            + b"".join(self.rtmrs)
            + self.report_data
        )


def _sgx_report(report_data: bytes) -> bytes:
    """A quoting enclave's 384-byte report body with ``report_data``, everything else zero."""
    return bytes(16 + 4 + 28 + 16 + 32 + 32 + 32 + 96 + 2 + 2 + 60) + report_data


@dataclass
class Hierarchy:
    """A root and everything under it that TDX evidence needs."""

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    platform_ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    tcb_signer_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    pck_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cpu_svn: bytes = bytes([2] * 16)
    pce_svn: int = 11

    def __post_init__(self) -> None:
        self.root = _certificate("Test SGX Root CA", self.root_key, None, self.root_key, ca=True)
        self.platform_ca = _certificate(
            "Test SGX PCK Platform CA", self.platform_ca_key, self.root, self.root_key, ca=True
        )
        self.tcb_signer = _certificate(
            "Test SGX TCB Signing", self.tcb_signer_key, self.root, self.root_key, ca=False
        )
        self.pck = _certificate(
            "Test SGX PCK Certificate",
            self.pck_key,
            self.platform_ca,
            self.platform_ca_key,
            ca=False,
            extra=x509.UnrecognizedExtension(
                x509.ObjectIdentifier(SGX_EXTENSION), sgx_extension(self.cpu_svn, self.pce_svn)
            ),
        )

    def quote(self, report: TdReport) -> bytes:
        """A version-4 TDX quote of ``report``, signed by a fresh attestation key that this hierarchy's
        quoting enclave vouches for."""
        header = struct.pack("<HHIHH", 4, 2, TEE_TYPE_TDX, 1, self.pce_svn) + INTEL_QE_VENDOR_ID + bytes(20)
        body = report.encode()
        attestation_key = ec.generate_private_key(ec.SECP256R1())
        public = attestation_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        auth_data = bytes(32)
        qe_report = _sgx_report(hashlib.sha256(public + auth_data).digest() + bytes(32))
        chain = _pem(self.pck, self.platform_ca, self.root).encode()
        qe_certification = (
            qe_report
            + _raw_signature(self.pck_key, qe_report)
            + struct.pack("<H", len(auth_data))
            + auth_data
            + struct.pack("<HI", 5, len(chain))
            + chain
        )
        signature_data = (
            _raw_signature(attestation_key, header + body)
            + public
            + struct.pack("<HI", 6, len(qe_certification))
            + qe_certification
        )
        return header + body + struct.pack("<I", len(signature_data)) + signature_data

    def collateral(
        self, *, status: str = "UpToDate", advisories: tuple[str, ...] = (), revoked: bool = False
    ) -> Collateral:
        """Collateral that rates this hierarchy's platform ``status`` (valid in January 2026)."""
        dates = {"issueDate": "2026-01-01T00:00:00Z", "nextUpdate": "2026-02-01T00:00:00Z"}
        level = {"tcbDate": "2025-12-01T00:00:00Z", "tcbStatus": status, "advisoryIDs": list(advisories)}
        tcb_info = {
            "id": "TDX",
            "version": 3,
            **dates,
            "fmspc": FMSPC,
            "pceId": PCE_ID,
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tdxModule": {
                "mrsigner": (b"\x02" * 48).hex(),
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            },
            "tdxModuleIdentities": [
                {
                    "id": "TDX_01",
                    "mrsigner": (b"\x02" * 48).hex(),
                    "attributes": "0000000000000000",
                    "attributesMask": "FFFFFFFFFFFFFFFF",
                    "tcbLevels": [
                        {"tcb": {"isvsvn": 1}, "tcbDate": "2025-12-01T00:00:00Z", "tcbStatus": "UpToDate"}
                    ],
                }
            ],
            "tcbLevels": [
                {
                    "tcb": {
                        "sgxtcbcomponents": [{"svn": svn} for svn in self.cpu_svn],
                        "pcesvn": self.pce_svn,
                        "tdxtcbcomponents": [{"svn": 1} for _ in range(16)],
                    },
                    **level,
                }
            ],
        }
        qe_identity = {
            "id": "TD_QE",
            "version": 2,
            **dates,
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "00000000000000000000000000000000",
            "attributesMask": "00000000000000000000000000000000",
            "mrsigner": (bytes(32)).hex(),
            "isvprodid": 0,
            "tcbLevels": [{"tcb": {"isvsvn": 0}, "tcbDate": "2025-12-01T00:00:00Z", "tcbStatus": "UpToDate"}],
        }
        return Collateral(
            tcb_info_response=self._signed_response("tcbInfo", tcb_info),
            tcb_info_issuer_chain=_pem(self.tcb_signer, self.root),
            qe_identity_response=self._signed_response("enclaveIdentity", qe_identity),
            qe_identity_issuer_chain=_pem(self.tcb_signer, self.root),
            pck_crl=_crl(self.platform_ca, self.platform_ca_key, [self.pck.serial_number] if revoked else []),
            pck_crl_issuer_chain=_pem(self.platform_ca, self.root),
            root_ca_crl=_crl(self.root, self.root_key, []),
        )

    def _signed_response(self, key: str, body: dict[str, object]) -> str:
        text = json.dumps(body, separators=(",", ":"))
        signature = _raw_signature(self.tcb_signer_key, text.encode()).hex()
        return f'{{"{key}":{text},"signature":"{signature}"}}'


def write_collateral(collateral: Collateral, directory: Path) -> Path:
    """``collateral`` laid out as the cache ``cas serve --tdx-collateral`` and the CLI read."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"tcbinfo-{FMSPC}.json").write_text(collateral.tcb_info_response)
    (directory / "tcbinfo-issuer-chain.pem").write_text(collateral.tcb_info_issuer_chain)
    (directory / "qeidentity.json").write_text(collateral.qe_identity_response)
    (directory / "qeidentity-issuer-chain.pem").write_text(collateral.qe_identity_issuer_chain)
    (directory / "pckcrl-platform.der").write_bytes(collateral.pck_crl)
    (directory / "pckcrl-issuer-chain.pem").write_text(collateral.pck_crl_issuer_chain)
    (directory / "rootcrl.der").write_bytes(collateral.root_ca_crl)
    return directory
