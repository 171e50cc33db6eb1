"""The CAS grants keys on hardware evidence only when it is genuine, fresh, bound to this attestation's
runtime key, and shows what the session pins; an outsider holding every public thing gets nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulumi_sconify.engine.attestation.snp import VCEK_GUID
from pulumi_sconify.engine.cas.intake.hardware import HardwareTrust
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import (
    Platforms,
    SevSnpReference,
    TdxReference,
)
from pulumi_sconify.engine.runtime.protocol import evidence_binding, hardware_report_data
from tests.support.evidence.snp_forge import DEBUG, ForgedMilan, certificate_table
from tests.support.evidence.tdx_forge import DURING, Hierarchy, TdReport, write_collateral
from tests.support.hardware import CONFIG_ID, Runtime, hardware_session, make_cas
from tests.support.issuer import WORKLOAD

LAUNCH = "5e" * 48
NOW = datetime(2026, 1, 15, tzinfo=UTC)
REAL_REPORT = bytes.fromhex(
    (Path(__file__).parent.parent / "fixtures/attestation/sev-snp/report_milan.hex").read_text().strip()
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def forger() -> ForgedMilan:
    return ForgedMilan()


def snp_cas(tmp_path: Path, forger: ForgedMilan, *, pinned_roots: bool = False, **kwargs: Any) -> CasService:
    trust = HardwareTrust(amd_anchors=None if pinned_roots else forger.anchors, clock=NOW.timestamp)
    platforms = Platforms(sev_snp=SevSnpReference(measurements=(LAUNCH,)))
    return make_cas(tmp_path, trust, hardware_session(platforms, **kwargs))


def snp_evidence(forger: ForgedMilan, binding: bytes, **report: Any) -> dict[str, Any]:
    raw = forger.report(
        measurement=bytes.fromhex(LAUNCH), report_data=hardware_report_data(binding), **report
    )
    return {
        "kind": "sev-snp",
        "report": b64(raw),
        "certificates": b64(certificate_table((VCEK_GUID, forger.vcek_der))),
    }


def test_a_bound_snp_report_is_granted(tmp_path: Path, forger: ForgedMilan) -> None:
    cas = snp_cas(tmp_path, forger)
    runtime = Runtime(cas)
    nonce, binding = runtime.nonce()
    assert cas.nonce(CONFIG_ID)["accepts"] == ["sev-snp"]
    grant = runtime.attest(nonce, snp_evidence(forger, binding))
    assert grant["evidence"] == "sev-snp"
    assert grant["credential"]


def test_a_report_for_another_nonce_or_key_is_refused(tmp_path: Path, forger: ForgedMilan) -> None:
    cas = snp_cas(tmp_path, forger)
    runtime = Runtime(cas)
    _, old_binding = runtime.nonce()
    nonce, _ = runtime.nonce()
    with pytest.raises(CasError, match="report-data check") as refused:
        runtime.attest(nonce, snp_evidence(forger, old_binding))
    assert refused.value.status == 403
    # Someone who saw a runtime's evidence cannot use it with their own key.
    thief = Runtime(cas)
    nonce, _ = thief.nonce()
    with pytest.raises(CasError, match="report-data check"):
        thief.attest(nonce, snp_evidence(forger, evidence_binding(nonce, runtime.key)))


def test_an_outsider_with_a_genuine_public_report_gets_nothing(tmp_path: Path) -> None:
    # A real report from real AMD hardware, and its VCEK, are public: the CAS trusts AMD's pinned roots.
    vcek = (Path(__file__).parent.parent / "fixtures/attestation/sev-snp/vcek_milan.der").read_bytes()
    trust = HardwareTrust(clock=datetime(2026, 11, 28, tzinfo=UTC).timestamp)
    real_measurement = REAL_REPORT[0x90:0xC0].hex()
    platforms = Platforms(sev_snp=SevSnpReference(measurements=(real_measurement,)))
    cas = make_cas(tmp_path, trust, hardware_session(platforms, tolerate=("hyperthreading",)))
    outsider = Runtime(cas)
    nonce, _ = outsider.nonce()
    evidence = {
        "kind": "sev-snp",
        "report": b64(REAL_REPORT),
        "certificates": b64(certificate_table((VCEK_GUID, vcek))),
    }
    with pytest.raises(CasError, match="report-data check"):
        outsider.attest(nonce, evidence)


def test_a_report_under_a_self_made_root_is_refused(tmp_path: Path, forger: ForgedMilan) -> None:
    cas = snp_cas(tmp_path, forger, pinned_roots=True)
    runtime = Runtime(cas)
    nonce, binding = runtime.nonce()
    with pytest.raises(CasError, match="chain check"):
        runtime.attest(nonce, snp_evidence(forger, binding))


def test_a_debug_vm_is_refused_unless_tolerated(tmp_path: Path, forger: ForgedMilan) -> None:
    runtime = Runtime(snp_cas(tmp_path / "strict", forger))
    nonce, binding = runtime.nonce()
    with pytest.raises(CasError, match="shows debug-mode, which the policy does not tolerate"):
        runtime.attest(nonce, snp_evidence(forger, binding, policy=DEBUG | (1 << 17)))
    tolerant = Runtime(snp_cas(tmp_path / "tolerant", forger, tolerate=("debug-mode",)))
    nonce, binding = tolerant.nonce()
    assert tolerant.attest(nonce, snp_evidence(forger, binding, policy=DEBUG | (1 << 17)))["credential"]


def test_a_pinned_workload_must_also_send_its_token(tmp_path: Path, forger: ForgedMilan) -> None:
    runtime = Runtime(snp_cas(tmp_path, forger, kubernetes=WORKLOAD))
    nonce, binding = runtime.nonce()
    with pytest.raises(CasError, match="kubernetes evidence"):
        runtime.attest(nonce, snp_evidence(forger, binding))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("report", "not base64!", "not base64"),
        ("report", b64(b"\x00" * 10), "format check"),
        ("report", "A" * 200_000, "at most"),
        ("certificates", 7, "expected base64"),
    ],
)
def test_malformed_hardware_evidence_is_refused_by_name(
    tmp_path: Path, forger: ForgedMilan, field: str, value: object, reason: str
) -> None:
    runtime = Runtime(snp_cas(tmp_path, forger))
    nonce, binding = runtime.nonce()
    evidence = snp_evidence(forger, binding) | {field: value}
    with pytest.raises(CasError, match=reason) as refused:
        runtime.attest(nonce, evidence)
    assert refused.value.status == 403


def test_a_bound_tdx_quote_is_granted_and_a_revoked_platform_is_not(tmp_path: Path) -> None:
    hierarchy = Hierarchy()
    platforms = Platforms(tdx=TdxReference(mrtd=("03" * 48,)))
    for revoked in (False, True):
        collateral = write_collateral(
            hierarchy.collateral(revoked=revoked), tmp_path / f"collateral-{revoked}"
        )
        trust = HardwareTrust(tdx_collateral=collateral, intel_root=hierarchy.root, clock=DURING.timestamp)
        runtime = Runtime(make_cas(tmp_path / f"cas-{revoked}", trust, hardware_session(platforms)))
        nonce, binding = runtime.nonce()
        evidence = {
            "kind": "tdx",
            "quote": b64(hierarchy.quote(TdReport(report_data=hardware_report_data(binding)))),
        }
        if revoked:
            with pytest.raises(CasError, match="revocation check"):
                runtime.attest(nonce, evidence)
        else:
            assert runtime.attest(nonce, evidence)["evidence"] == "tdx"


def test_tdx_without_collateral_is_refused_at_upload(tmp_path: Path) -> None:
    platforms = Platforms(tdx=TdxReference(mrtd=("03" * 48,)))
    with pytest.raises(CasError) as refused:
        make_cas(tmp_path, HardwareTrust(), hardware_session(platforms))
    assert refused.value.extra["problems"] == [
        "security.attestation.platforms.tdx: this CAS has no TDX collateral to verify quotes with "
        "(cas serve --tdx-collateral)"
    ]


def test_the_vcek_cache_gives_the_vcek_of_the_reports_chip_and_tcb(
    tmp_path: Path, forger: ForgedMilan
) -> None:
    from pulumi_sconify.engine.policy import SnpTcb

    older = ForgedMilan(
        vcek_tcb=SnpTcb(bootloader=3, snp=7, microcode=115)
    )  # the same chip, before an update
    other_chip = ForgedMilan(vcek_chip_id=bytes([9] * 64))
    cache = tmp_path / "vceks"
    cache.mkdir()
    (cache / "a-older.der").write_bytes(older.vcek_der)
    (cache / "b-other-chip.der").write_bytes(other_chip.vcek_der)
    (cache / "c-current.der").write_bytes(forger.vcek_der)
    (cache / "d-not-a-certificate").write_bytes(b"junk")
    trust = HardwareTrust(vcek_directory=cache)
    assert trust.vcek_for(forger.report()) == forger.vcek_der
    assert HardwareTrust(vcek_directory=tmp_path / "vceks").vcek_for(b"short") is None
