"""The SEV-SNP verifier against a real Milan report, and every way to forge or misuse one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pulumi_sconify.engine.attestation.snp import (
    ARK_GUID,
    ASK_GUID,
    SIGNED_BYTES,
    VCEK_GUID,
    AmdAnchors,
    load_amd_certificate,
    verify_report,
)
from pulumi_sconify.engine.errors import EvidenceRefusedError
from pulumi_sconify.engine.policy.model import SevSnpReference, SnpTcb
from tests.support.evidence.snp_forge import DEBUG, ForgedMilan, certificate_table

FIXTURES = Path(__file__).parent.parent / "fixtures" / "attestation" / "sev-snp"
REPORT = bytes.fromhex((FIXTURES / "report_milan.hex").read_text().strip())
VCEK = (FIXTURES / "vcek_milan.der").read_bytes()
MEASUREMENT = (
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
)
NOW = datetime(2026, 11, 28, tzinfo=UTC)
PINNED = SevSnpReference(measurements=(MEASUREMENT,), minimum_tcb=SnpTcb(bootloader=3, snp=8, microcode=115))


def refusal(**kwargs: object) -> EvidenceRefusedError:
    arguments: dict[str, object] = {"now": NOW, "vcek": VCEK, "reference": PINNED} | kwargs
    raw = arguments.pop("raw", REPORT)
    with pytest.raises(EvidenceRefusedError) as refused:
        verify_report(raw, **arguments)  # type: ignore[arg-type]
    return refused.value


def test_the_real_report_is_accepted_with_its_claims() -> None:
    verdict = verify_report(REPORT, now=NOW, vcek=VCEK, reference=PINNED, report_data=REPORT[0x50:0x90])
    assert verdict.checks == (
        "format",
        "chain",
        "signature",
        "vcek-tcb",
        "measurement",
        "minimum-tcb",
        "vmpl",
        "report-data",
    )
    assert verdict.not_checked == ()
    assert verdict.claims["product"] == "Milan"
    assert verdict.claims["measurement"] == MEASUREMENT
    assert verdict.claims["reported_tcb"] == {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "fmc": 0}
    # The machine runs with SMT on: a weakness the session must tolerate, reported, not judged, here.
    assert verdict.weaknesses == {"hyperthreading"}


def test_without_a_policy_the_claims_are_shown_and_the_policy_checks_listed_as_not_run() -> None:
    verdict = verify_report(REPORT, now=NOW, vcek=VCEK)
    assert verdict.checks == ("format", "chain", "signature", "vcek-tcb")
    assert verdict.not_checked == ("measurement", "minimum-tcb", "vmpl", "report-data")


def test_every_flipped_signed_byte_is_refused() -> None:
    for offset in range(SIGNED_BYTES):
        forged = bytearray(REPORT)
        forged[offset] ^= 0x01
        with pytest.raises(EvidenceRefusedError) as refused:
            verify_report(bytes(forged), now=NOW, vcek=VCEK)
        # Version and signature-algorithm bytes are refused as malformed before the signature is read.
        assert refused.value.check in {"signature", "format", "chain"}, offset


def test_a_flipped_signature_byte_is_refused() -> None:
    forged = bytearray(REPORT)
    forged[SIGNED_BYTES + 5] ^= 0x80
    assert refusal(raw=bytes(forged)).check == "signature"


def test_another_products_vcek_is_refused() -> None:
    turin_vcek = (FIXTURES / "vcek_turin.der").read_bytes()
    assert refusal(vcek=turin_vcek).check == "signature"


def test_a_chain_to_another_products_root_is_refused() -> None:
    genoa_only = AmdAnchors(
        {
            "Genoa": AmdAnchors.pinned().by_ask_subject[
                next(s for s in AmdAnchors.pinned().by_ask_subject if "Genoa" in s.rfc4514_string())
            ]
        }
    )
    refused = refusal(anchors=genoa_only)
    assert refused.check == "chain"
    assert "not a trusted AMD ASK" in str(refused)


def test_a_self_made_root_with_amds_names_is_refused() -> None:
    forger = ForgedMilan()
    report = forger.report(measurement=bytes.fromhex(MEASUREMENT))
    vcek = forger.vcek_der
    refused = refusal(raw=report, vcek=vcek)
    assert refused.check == "chain"
    assert "not signed by AMD's Milan ASK" in str(refused)
    # The same report under the forger's own roots passes: the roots are what refused it.
    assert (
        verify_report(report, now=NOW, vcek=vcek, reference=PINNED, anchors=forger.anchors).checks[-1]
        == "vmpl"
    )


def test_a_forged_ask_in_the_certificate_table_is_refused() -> None:
    forger = ForgedMilan()
    forged_table = certificate_table(
        (VCEK_GUID, VCEK), (ASK_GUID, forger.ask.public_bytes(serialization.Encoding.DER))
    )
    assert refusal(vcek=None, certificates=forged_table).check == "chain"


def test_the_vcek_and_ask_from_the_certificate_table_are_used() -> None:
    ask_pem, ark_pem = (FIXTURES / "cert_chain_milan").read_bytes().split(b"-----END CERTIFICATE-----")[:2]
    ask = load_amd_certificate(ask_pem + b"-----END CERTIFICATE-----\n")
    ark = load_amd_certificate(ark_pem.strip() + b"\n-----END CERTIFICATE-----\n")
    certificates = certificate_table(
        (VCEK_GUID, VCEK),
        (ASK_GUID, ask.public_bytes(serialization.Encoding.DER)),
        (ARK_GUID, ark.public_bytes(serialization.Encoding.DER)),
    )
    assert verify_report(REPORT, now=NOW, certificates=certificates).checks[:3] == (
        "format",
        "chain",
        "signature",
    )


def test_a_report_without_any_vcek_is_refused() -> None:
    assert "no VCEK" in str(refusal(vcek=None))


def test_a_wrong_measurement_is_refused() -> None:
    other = SevSnpReference(measurements=("00" * 48,))
    refused = refusal(reference=other)
    assert refused.check == "measurement"
    assert MEASUREMENT in str(refused)


def test_a_tcb_below_the_minimum_is_refused() -> None:
    newer = SevSnpReference(
        measurements=(MEASUREMENT,), minimum_tcb=SnpTcb(bootloader=3, snp=9, microcode=115)
    )
    assert refusal(reference=newer).check == "minimum-tcb"


def test_a_vcek_for_another_tcb_is_refused() -> None:
    # Trusted on purpose: a VCEK for microcode 200 must not vouch for reports signed under 115.
    forger = ForgedMilan(vcek_tcb=SnpTcb(bootloader=3, snp=8, microcode=200))
    refused = refusal(raw=forger.report(), vcek=forger.vcek_der, anchors=forger.anchors, reference=None)
    assert refused.check == "vcek-tcb"
    assert "microcode" in str(refused)


def test_a_vcek_for_another_chip_is_refused() -> None:
    forger = ForgedMilan(vcek_chip_id=bytes(64 * [7]))
    refused = refusal(raw=forger.report(), vcek=forger.vcek_der, anchors=forger.anchors, reference=None)
    assert refused.check == "vcek-tcb"
    assert "another chip" in str(refused)


def test_a_debug_policy_is_reported_as_a_weakness() -> None:
    forger = ForgedMilan()
    verdict = verify_report(
        forger.report(policy=DEBUG | (1 << 17)),
        now=NOW,
        vcek=forger.vcek_der,
        anchors=forger.anchors,
    )
    assert verdict.weaknesses == {"debug-mode"}
    assert verdict.claims["policy"]["debug"] is True


def test_a_less_privileged_vmpl_is_refused() -> None:
    forger = ForgedMilan()
    refused = refusal(
        raw=forger.report(measurement=bytes.fromhex(MEASUREMENT), vmpl=2),
        vcek=forger.vcek_der,
        anchors=forger.anchors,
    )
    assert refused.check == "vmpl"


def test_wrong_report_data_is_refused() -> None:
    assert refusal(report_data=bytes(64)).check == "report-data"


def test_a_vcek_outside_its_validity_is_refused() -> None:
    refused = refusal(now=datetime(2031, 1, 1, tzinfo=UTC))
    assert refused.check == "chain"
    assert "not valid at 2031" in str(refused)


@pytest.mark.parametrize("size", [0, 1183, 1185, 4000])
def test_a_report_of_the_wrong_size_is_refused(size: int) -> None:
    assert refusal(raw=(REPORT * 4)[:size]).check == "format"


def test_a_certificate_table_without_its_end_is_refused() -> None:
    assert refusal(vcek=None, certificates=certificate_table((VCEK_GUID, VCEK))[:24]).check == "format"
