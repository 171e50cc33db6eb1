"""Benchmark of hardware evidence verification: what one attestation's evidence costs the CAS, as ratios
against baselines run in the same process.

- ``sev-snp``: the whole verification of the real Milan report (parse, chain to the pinned ARK, the report's
  signature, VCEK extensions, policy) against its irreducible part, the one ECDSA P-384 verification of the
  report by the VCEK.
- ``tdx``: the whole verification of the real TDX quote with its collateral read from the cache directory
  (as the CAS does for each quote) against ``dcap-qvl`` alone on collateral already in memory.
- ``tpm quote``: parsing a TPM2 quote, its RSA signature and the PCR digest, against the bare RSA
  verification.

Run: ``.venv/bin/python benchmarks/attestation.py [--seconds 2]``. Not a test: it prints figures and asserts
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dcap_qvl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pulumi_sconify.engine.attestation.snp import SIGNED_BYTES, load_amd_certificate, verify_report
from pulumi_sconify.engine.attestation.tdx import Collateral, parse_quote, verify_quote
from pulumi_sconify.engine.attestation.tpm import Quote, pcr_digest, verify_quote_signature
from pulumi_sconify.engine.policy import SevSnpReference, TdxReference

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures" / "attestation"


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``action`` over about ``seconds``."""
    action()  # warm caches (the pinned anchors are loaded once per process, as in the CAS)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        action()
        count += 1
    return count / elapsed


def report(name: str, measured: float, baseline: float, baseline_name: str) -> None:
    print(
        f"{name:10s} {measured:10.0f}/s   {baseline_name}: {baseline:10.0f}/s   "
        f"ratio {baseline / measured:5.2f}x the baseline's cost"
    )


def snp(seconds: float) -> None:
    raw = bytes.fromhex((FIXTURES / "sev-snp" / "report_milan.hex").read_text().strip())
    vcek = (FIXTURES / "sev-snp" / "vcek_milan.der").read_bytes()
    reference = SevSnpReference(measurements=(raw[0x90:0xC0].hex(),))
    now = datetime(2026, 11, 28, tzinfo=UTC)
    key = load_amd_certificate(vcek).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = encode_dss_signature(
        int.from_bytes(raw[0x2A0:0x2E8], "little"), int.from_bytes(raw[0x2E8:0x330], "little")
    )

    def whole() -> None:
        verify_report(raw, now=now, vcek=vcek, reference=reference, report_data=raw[0x50:0x90])

    def bare() -> None:
        key.verify(signature, raw[:SIGNED_BYTES], ec.ECDSA(hashes.SHA384()))

    report("sev-snp", rate(whole, seconds), rate(bare, seconds), "ECDSA P-384 alone")


def tdx(seconds: float) -> None:
    quote = (FIXTURES / "tdx" / "tdx_quote_b0c06f.dat").read_bytes()
    facts = parse_quote(quote)
    directory = FIXTURES / "tdx" / "collateral-2025-06"
    in_memory = Collateral.from_directory(directory, facts.fmspc, facts.ca).for_dcap_qvl()
    now = datetime(2025, 6, 25, tzinfo=UTC)
    reference = TdxReference(mrtd=(facts.mrtd.hex(),))

    def whole() -> None:
        collateral = Collateral.from_directory(directory, facts.fmspc, facts.ca)
        verify_quote(quote, collateral, now=now, reference=reference)

    def bare() -> None:
        dcap_qvl.verify(quote, in_memory, int(now.timestamp()))

    report("tdx", rate(whole, seconds), rate(bare, seconds), "dcap-qvl alone")


def tpm_quote(seconds: float) -> None:
    key = rsa.generate_private_key(65537, 2048)
    pcrs = {index: hashlib.sha256(bytes([index])).digest() for index in range(24)}
    digest = hashlib.sha256(b"".join(pcrs[index] for index in range(24))).digest()
    attest = (
        struct.pack(">IH", 0xFF544347, 0x8018)
        + struct.pack(">H", 0)
        + struct.pack(">H", 32)
        + bytes(32)
        + bytes(17 + 8)
        + struct.pack(">IHB", 1, 0x000B, 3)
        + b"\xff\xff\xff"
        + struct.pack(">H", 32)
        + digest
    )
    raw_signature = key.sign(attest, padding.PKCS1v15(), hashes.SHA256())
    signature = struct.pack(">HHH", 0x0014, 0x000B, len(raw_signature)) + raw_signature
    public = key.public_key()

    def whole() -> None:
        parsed = Quote.parse(attest)
        verify_quote_signature(attest, signature, public)
        assert pcr_digest(parsed, pcrs) == parsed.pcr_digest

    def bare() -> None:
        public.verify(raw_signature, attest, padding.PKCS1v15(), hashes.SHA256())

    report("tpm quote", rate(whole, seconds), rate(bare, seconds), "RSA-2048 alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    seconds = parser.parse_args().seconds
    snp(seconds)
    tdx(seconds)
    tpm_quote(seconds)


if __name__ == "__main__":
    main()
