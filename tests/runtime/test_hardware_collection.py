"""The runtime collects hardware evidence from what the node offers — configfs-tsm (a FUSE fake laid out
as the kernel documents it), /dev/sev-guest (its ioctl, faked at the boundary the kernel defines), an
Azure vTPM (a real swtpm) — and what it collects passes the CAS's verifiers with this attestation's
binding. The configfs-tsm tests run against both collectors: the Go runtime's (through its harness, what
images run) and the engine's (``sconify evidence collect``); the ioctl is faked inside a process, so the
Go collector's ioctl tests are its own (``runtime/internal/hardware/hardware_test.go``)."""

from __future__ import annotations

import base64
import ctypes
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulumi_sconify.engine.attestation.snp import VCEK_GUID, verify_report
from pulumi_sconify.engine.attestation.tdx import verify_quote
from pulumi_sconify.engine.runtime.hardware import SNP_GET_REPORT, HardwareEvidenceError, HardwareSources
from pulumi_sconify.engine.runtime.protocol import evidence_binding, hardware_report_data
from tests.support.evidence.snp_forge import ForgedMilan, certificate_table
from tests.support.evidence.tdx_forge import DURING, Hierarchy, TdReport
from tests.support.evidence.tsm_fake import TsmFake, mounted
from tests.support.runtime_harness import GoHardwareSources

NOW = datetime(2026, 1, 15, tzinfo=UTC)
BINDING = evidence_binding("ab" * 16, b"\x01" * 32)


@pytest.fixture(scope="module")
def forger() -> ForgedMilan:
    return ForgedMilan()


Sources = Callable[..., "HardwareSources | GoHardwareSources"]


@pytest.fixture(params=["go", "python"])
def collector(request: pytest.FixtureRequest) -> Sources:
    """Makes a collector over the given interfaces: the Go runtime's, or the engine's."""
    if request.param == "python":
        return HardwareSources
    binary = request.getfixturevalue("harness_binary")
    return lambda **paths: GoHardwareSources(binary, **paths)


@pytest.fixture
def snp_fake(forger: ForgedMilan) -> TsmFake:
    return TsmFake(
        "sev_guest",
        lambda report_data: forger.report(report_data=report_data),
        auxblob=certificate_table((VCEK_GUID, forger.vcek_der)),
    )


@pytest.fixture
def snp_tsm(snp_fake: TsmFake, tmp_path: Path) -> Iterator[Path]:
    with mounted(snp_fake, tmp_path / "tsm") as reports:
        yield reports


def test_an_snp_node_is_recognised_by_its_provider(snp_tsm: Path, collector: Sources, tmp_path: Path) -> None:
    sources = collector(tsm_reports=snp_tsm, sev_guest=tmp_path / "none", tpm_device=tmp_path / "none")
    assert sources.available() == ["sev-snp"]
    assert list(snp_tsm.iterdir()) == []  # the probe's entry is gone again


def test_an_snp_report_from_configfs_tsm_is_bound_and_verifies(
    snp_tsm: Path, snp_fake: TsmFake, forger: ForgedMilan, collector: Sources, tmp_path: Path
) -> None:
    sources = collector(tsm_reports=snp_tsm, sev_guest=tmp_path / "none", tpm_device=tmp_path / "none")
    evidence = sources.collect("sev-snp", BINDING)
    assert evidence["kind"] == "sev-snp"
    verdict = verify_report(
        base64.b64decode(evidence["report"]),
        now=NOW,
        certificates=base64.b64decode(evidence["certificates"]),
        report_data=hardware_report_data(BINDING),
        anchors=forger.anchors,
    )
    assert "report-data" in verdict.checks
    assert snp_fake.entries == {}


def test_a_report_spoiled_by_another_writer_is_asked_for_again(
    snp_tsm: Path, snp_fake: TsmFake, forger: ForgedMilan, collector: Sources, tmp_path: Path
) -> None:
    snp_fake.interfere = 2
    sources = collector(tsm_reports=snp_tsm, sev_guest=tmp_path / "none")
    evidence = sources.collect("sev-snp", BINDING)
    report = base64.b64decode(evidence["report"])
    assert report[0x50:0x90] == hardware_report_data(BINDING)
    assert snp_fake.reports_made == 3


def test_a_writer_that_never_stops_is_an_error(
    snp_tsm: Path, snp_fake: TsmFake, collector: Sources, tmp_path: Path
) -> None:
    snp_fake.interfere = 10_000
    sources = collector(tsm_reports=snp_tsm, sev_guest=tmp_path / "none")
    with pytest.raises(HardwareEvidenceError, match="another writer"):
        sources.collect("sev-snp", BINDING)


def test_a_tdx_quote_from_configfs_tsm_is_bound_and_verifies(collector: Sources, tmp_path: Path) -> None:
    hierarchy = Hierarchy()
    fake = TsmFake("tdx_guest", lambda report_data: hierarchy.quote(TdReport(report_data=report_data)))
    with mounted(fake, tmp_path / "tsm") as reports:
        sources = collector(tsm_reports=reports, sev_guest=tmp_path / "none", tpm_device=tmp_path / "none")
        assert sources.available() == ["tdx"]
        evidence = sources.collect("tdx", BINDING)
    verdict = verify_quote(
        base64.b64decode(evidence["quote"]),
        hierarchy.collateral(),
        now=DURING,
        report_data=hardware_report_data(BINDING),
        root=hierarchy.root,
    )
    assert "report-data" in verdict.checks


class SevGuestDevice:
    """The kernel side of ``SNP_GET_REPORT`` (include/uapi/linux/sev-guest.h): it reads the request
    (``struct snp_report_req``) at ``req_data`` and writes ``MSG_REPORT_RSP`` at ``resp_data``."""

    def __init__(self, forger: ForgedMilan, status: int = 0) -> None:
        self.forger = forger
        self.status = status
        self.requests: list[tuple[bytes, int]] = []

    def __call__(self, fd: int, request: int, argument: bytearray, mutate: bool) -> int:
        assert request == SNP_GET_REPORT == 0xC0205300
        version, request_address, response_address, _ = struct.unpack("<B7xQQQ", argument)
        assert version == 1
        user_data, vmpl = struct.unpack("<64sI28x", ctypes.string_at(request_address, 96))
        self.requests.append((user_data, vmpl))
        report = self.forger.report(report_data=user_data)
        response = struct.pack("<II24x", self.status, len(report)) + report
        ctypes.memmove(response_address, response, len(response))
        return 0


def test_an_snp_report_from_dev_sev_guest_is_bound_and_verifies(forger: ForgedMilan, tmp_path: Path) -> None:
    device = tmp_path / "sev-guest"
    device.touch()
    kernel = SevGuestDevice(forger)
    sources = HardwareSources(tsm_reports=tmp_path / "no-configfs", sev_guest=device, ioctl=kernel)
    assert sources.available() == ["sev-snp"]
    evidence = sources.collect("sev-snp", BINDING)
    assert kernel.requests == [(hardware_report_data(BINDING), 0)]
    verdict = verify_report(
        base64.b64decode(evidence["report"]),
        now=NOW,
        vcek=forger.vcek_der,
        report_data=hardware_report_data(BINDING),
        anchors=forger.anchors,
    )
    assert "report-data" in verdict.checks


def test_a_firmware_error_from_dev_sev_guest_is_named(forger: ForgedMilan, tmp_path: Path) -> None:
    device = tmp_path / "sev-guest"
    device.touch()
    sources = HardwareSources(
        tsm_reports=tmp_path / "none", sev_guest=device, ioctl=SevGuestDevice(forger, 0x16)
    )
    with pytest.raises(HardwareEvidenceError, match="status 0x16"):
        sources.collect("sev-snp", BINDING)


def test_a_node_without_a_tee_offers_nothing(collector: Sources, tmp_path: Path) -> None:
    sources = collector(tsm_reports=tmp_path / "a", sev_guest=tmp_path / "b", tpm_device=tmp_path / "c")
    assert sources.available() == []
    with pytest.raises(HardwareEvidenceError, match="cannot open"):
        sources.collect("azure-cvm", BINDING)
