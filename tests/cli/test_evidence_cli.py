"""`sconify evidence verify` as an operator uses it: real vectors, their verdicts and the check that
refuses a forged or stale one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import sconify

FIXTURES = Path(__file__).parent.parent / "fixtures" / "attestation"
REPORT = FIXTURES / "sev-snp" / "report_milan.hex"
VCEK = FIXTURES / "sev-snp" / "vcek_milan.der"
QUOTE = FIXTURES / "tdx" / "tdx_quote_b0c06f.dat"
COLLATERAL = FIXTURES / "tdx" / "collateral-2025-06"
MEASUREMENT = (
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
)


def policy(tmp_path: Path, measurement: str) -> Path:
    path = tmp_path / "session.yaml"
    path.write_text(
        "name: s\nversion: '0.3'\nsecurity:\n  attestation:\n    mode: hardware\n    platforms:\n"
        f"      sev-snp:\n        measurements: ['{measurement}']\n"
    )
    return path


def test_a_real_snp_report_is_verified_and_its_claims_printed() -> None:
    result = sconify("evidence", "verify", "sev-snp", str(REPORT), "--vcek", str(VCEK))
    assert result.returncode == 0, result.stderr
    assert "sev-snp evidence verified: format, chain, signature, vcek-tcb" in result.stdout
    assert f"measurement: {MEASUREMENT}" in result.stdout
    assert "not checked: measurement, minimum-tcb, vmpl, report-data (no --policy" in result.stdout
    assert "weaknesses: hyperthreading" in result.stdout


def test_the_raw_report_and_json_output(tmp_path: Path) -> None:
    raw = tmp_path / "report.bin"
    raw.write_bytes(bytes.fromhex(REPORT.read_text().strip()))
    result = sconify("evidence", "verify", "sev-snp", str(raw), "--vcek", str(VCEK), "--json")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["claims"]["reported_tcb"]["microcode"] == 115
    assert verdict["checks"] == ["format", "chain", "signature", "vcek-tcb"]


def test_a_policy_checks_its_reference_values(tmp_path: Path) -> None:
    accepted = sconify(
        "evidence",
        "verify",
        "sev-snp",
        str(REPORT),
        "--vcek",
        str(VCEK),
        "--policy",
        str(policy(tmp_path, MEASUREMENT)),
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "measurement, minimum-tcb, vmpl" in accepted.stdout
    refused = sconify(
        "evidence",
        "verify",
        "sev-snp",
        str(REPORT),
        "--vcek",
        str(VCEK),
        "--policy",
        str(policy(tmp_path, "00" * 48)),
    )
    assert refused.returncode == 1
    assert "refused by the measurement check" in refused.stderr
    assert refused.stdout == ""


def test_a_forged_report_is_refused_by_its_check(tmp_path: Path) -> None:
    forged = bytearray(bytes.fromhex(REPORT.read_text().strip()))
    forged[0x90] ^= 1
    path = tmp_path / "forged.bin"
    path.write_bytes(bytes(forged))
    result = sconify("evidence", "verify", "sev-snp", str(path), "--vcek", str(VCEK), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["refused"]["check"] == "signature"


def test_a_tdx_quote_at_the_time_of_its_collateral_and_today() -> None:
    then = sconify(
        "evidence",
        "verify",
        "tdx",
        str(QUOTE),
        "--collateral",
        str(COLLATERAL),
        "--at",
        "2025-06-25T00:00:00Z",
    )
    assert then.returncode == 0, then.stderr
    assert "tcb_status: UpToDate" in then.stdout
    today = sconify("evidence", "verify", "tdx", str(QUOTE), "--collateral", str(COLLATERAL))
    assert today.returncode == 1
    assert "refused by the freshness check" in today.stderr


def test_bad_arguments_are_named() -> None:
    no_collateral = sconify("evidence", "verify", "tdx", str(QUOTE))
    assert no_collateral.returncode == 1
    assert "--collateral DIR" in no_collateral.stderr
    bad_time = sconify("evidence", "verify", "sev-snp", str(REPORT), "--at", "yesterday")
    assert bad_time.returncode == 2
    assert "--at: not an RFC 3339 time" in bad_time.stderr
    naive = sconify("evidence", "verify", "sev-snp", str(REPORT), "--at", "2025-06-25T00:00:00")
    assert "time zone" in naive.stderr
    unknown = sconify("evidence", "verify", "nitro", str(REPORT))
    assert unknown.returncode == 2
    missing = sconify("evidence", "verify", "sev-snp", "/nonexistent/report")
    assert missing.returncode == 2
    no_vcek = sconify("evidence", "verify", "sev-snp", str(REPORT))
    assert no_vcek.returncode == 1
    assert "no VCEK" in no_vcek.stderr


def test_collecting_on_a_node_without_a_tee_says_so() -> None:
    # This machine has no SEV-SNP, TDX or Azure vTPM; the collection itself is tested against fakes of
    # the kernel's interfaces and a real swtpm (tests/runtime, tests/attestation).
    result = sconify("evidence", "collect", "sev-snp")
    assert result.returncode == 1
    assert "this node offers no sev-snp evidence" in result.stderr
    assert sconify("evidence", "collect", "tdx", "--nonce", "zz").returncode == 2
