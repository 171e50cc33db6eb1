"""The TDX verifier: real quotes with Intel's real collateral, and a test hierarchy for the verdicts
real collateral cannot give."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulumi_sconify.engine.attestation.tdx import Collateral, parse_quote, signed_body, verify_quote
from pulumi_sconify.engine.errors import EvidenceRefusedError
from pulumi_sconify.engine.policy.model import TdxReference
from tests.support.evidence.tdx_forge import DURING, SEPT_VE_DISABLE, Hierarchy, TdReport

FIXTURES = Path(__file__).parent.parent / "fixtures" / "attestation" / "tdx"
ACCEPTED = (FIXTURES / "tdx_quote_b0c06f.dat").read_bytes()
ACCEPTED_MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
)
WHILE_VALID = datetime(2025, 6, 25, tzinfo=UTC)
SPR_E4 = (FIXTURES / "tdx_prod_quote_SPR_E4.dat").read_bytes()
TODAY = datetime(2026, 11, 28, tzinfo=UTC)


def collateral_for(quote: bytes, directory: str) -> Collateral:
    facts = parse_quote(quote)
    return Collateral.from_directory(FIXTURES / directory, facts.fmspc, facts.ca)


def refused(quote: bytes, collateral: Collateral, **kwargs: object) -> EvidenceRefusedError:
    with pytest.raises(EvidenceRefusedError) as refusal:
        verify_quote(quote, collateral, **({"now": DURING} | kwargs))  # type: ignore[arg-type]
    return refusal.value


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    return Hierarchy()


def test_a_real_quote_with_its_collateral_is_accepted_against_intels_root() -> None:
    reference = TdxReference(mrtd=(ACCEPTED_MRTD,))
    verdict = verify_quote(
        ACCEPTED, collateral_for(ACCEPTED, "collateral-2025-06"), now=WHILE_VALID, reference=reference
    )
    assert verdict.checks == (
        "format",
        "measurement",
        "signature",
        "chain",
        "collateral",
        "revocation",
        "tcb",
    )
    assert verdict.claims["tcb_status"] == "UpToDate"
    assert verdict.claims["mrtd"] == ACCEPTED_MRTD
    assert verdict.weaknesses == frozenset()
    assert verdict.not_checked == ("report-data",)


def test_the_same_quote_is_refused_once_its_collateral_is_stale() -> None:
    refusal = refused(ACCEPTED, collateral_for(ACCEPTED, "collateral-2025-06"), now=TODAY)
    assert refusal.check == "freshness"


def test_every_flipped_byte_of_a_real_quotes_header_and_td_report_is_refused() -> None:
    collateral = collateral_for(ACCEPTED, "collateral-2025-06")
    for offset in range(48 + 584):  # the signed header and TD report
        forged = bytearray(ACCEPTED)
        forged[offset] ^= 0x01
        with pytest.raises(EvidenceRefusedError) as refusal:
            verify_quote(bytes(forged), collateral, now=WHILE_VALID)
        # Version, key type, TEE type and QE vendor bytes are refused as malformed before any signature.
        assert refusal.value.check in {"signature", "format"}, offset


def test_a_real_quote_whose_collateral_does_not_rate_its_tcb_is_refused() -> None:
    collateral = collateral_for(SPR_E4, "collateral")
    refusal = refused(SPR_E4, collateral, now=datetime(2023, 6, 20, tzinfo=UTC))
    assert refusal.check == "tcb"
    assert "No matching TCB level" in str(refusal)
    assert refused(SPR_E4, collateral, now=TODAY).check == "freshness"


def test_a_version_5_quote_is_parsed() -> None:
    facts = parse_quote((FIXTURES / "quote_v5_sample.dat").read_bytes())
    assert (facts.version, facts.fmspc) == (5, "90C06F000000")


@pytest.mark.parametrize("garbage", [b"", b"\x04\x00" * 10, ACCEPTED[:600]])
def test_what_is_not_a_quote_is_refused_as_malformed(garbage: bytes) -> None:
    with pytest.raises(EvidenceRefusedError) as refusal:
        parse_quote(garbage)
    assert refusal.value.check == "format"


def test_a_quote_under_the_tests_own_root_is_accepted_with_that_root(hierarchy: Hierarchy) -> None:
    binding = bytes(range(64))
    quote = hierarchy.quote(TdReport(report_data=binding))
    verdict = verify_quote(
        quote,
        hierarchy.collateral(),
        now=DURING,
        reference=TdxReference(mrtd=("03" * 48,), rtmrs=((0, "07" * 48), (3, "0a" * 48))),
        report_data=binding,
        root=hierarchy.root,
    )
    assert verdict.not_checked == ()
    assert verdict.claims["rtmrs"][3] == "0a" * 48


def test_a_chain_to_a_self_made_root_is_refused(hierarchy: Hierarchy) -> None:
    assert refused(hierarchy.quote(TdReport()), hierarchy.collateral()).check == "chain"


def test_a_revoked_pck_is_refused(hierarchy: Hierarchy) -> None:
    refusal = refused(hierarchy.quote(TdReport()), hierarchy.collateral(revoked=True), root=hierarchy.root)
    assert refusal.check == "revocation"
    assert "CertRevoked" in str(refusal)


def test_an_outdated_tcb_and_its_advisories_are_reported(hierarchy: Hierarchy) -> None:
    verdict = verify_quote(
        hierarchy.quote(TdReport()),
        hierarchy.collateral(status="OutOfDate", advisories=("INTEL-SA-00837",)),
        now=DURING,
        root=hierarchy.root,
    )
    assert verdict.weaknesses == {"outdated-tcb"}
    assert verdict.advisories == {"INTEL-SA-00837"}


def test_a_revoked_tcb_is_refused(hierarchy: Hierarchy) -> None:
    refusal = refused(
        hierarchy.quote(TdReport()), hierarchy.collateral(status="Revoked"), root=hierarchy.root
    )
    assert refusal.check == "revocation"
    assert "Revoked" in str(refusal)


def test_a_wrong_mrtd_is_refused(hierarchy: Hierarchy) -> None:
    refusal = refused(
        hierarchy.quote(TdReport()),
        hierarchy.collateral(),
        root=hierarchy.root,
        reference=TdxReference(mrtd=("04" * 48,)),
    )
    assert refusal.check == "measurement"
    assert "MRTD " + "03" * 48 in str(refusal)


def test_a_wrong_rtmr_is_refused(hierarchy: Hierarchy) -> None:
    refusal = refused(
        hierarchy.quote(TdReport()),
        hierarchy.collateral(),
        root=hierarchy.root,
        reference=TdxReference(mrtd=("03" * 48,), rtmrs=((2, "00" * 48),)),
    )
    assert refusal.check == "measurement"
    assert "RTMR2" in str(refusal)


def test_wrong_report_data_is_refused(hierarchy: Hierarchy) -> None:
    refusal = refused(
        hierarchy.quote(TdReport(report_data=bytes(64))),
        hierarchy.collateral(),
        root=hierarchy.root,
        report_data=b"\x01" * 64,
    )
    assert refusal.check == "report-data"


def test_a_debuggable_td_is_refused(hierarchy: Hierarchy) -> None:
    # dcap-qvl refuses debug TDs outright, so no policy can tolerate debug-mode for TDX evidence.
    quote = hierarchy.quote(TdReport(td_attributes=SEPT_VE_DISABLE | 1))
    assert refused(quote, hierarchy.collateral(), root=hierarchy.root).check == "debug"


def test_the_signed_body_is_cut_out_byte_for_byte() -> None:
    response = '{"tcbInfo": {"b":1,  "a":[2]} ,"signature":"00"}'
    assert signed_body(response, "tcbInfo") == '{"b":1,  "a":[2]}'
    with pytest.raises(ValueError, match="not a PCS response"):
        signed_body('{"tcbInfo": {}}', "tcbInfo")


def test_a_missing_collateral_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no tcbinfo-b0c06f000000\.json"):
        Collateral.from_directory(tmp_path, "B0C06F000000", "platform")


def test_a_panic_in_the_verifier_refuses_that_quote(monkeypatch: pytest.MonkeyPatch) -> None:
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic
        pass

    class Panicking:
        @staticmethod
        def parse_quote(raw: bytes) -> None:
            raise PanicException("index out of bounds")

    monkeypatch.setattr("pulumi_sconify.engine.attestation.tdx._dcap_qvl", lambda: Panicking)
    with pytest.raises(EvidenceRefusedError) as refusal:
        parse_quote(ACCEPTED)
    assert refusal.value.check == "quote"
    assert "index out of bounds" not in str(refusal.value)
