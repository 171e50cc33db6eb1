"""Azure confidential VM evidence end to end with a real software TPM: the runtime's TPM client reads
the HCL report and quotes the PCRs; the verifier follows the chain hardware report → runtime data →
attestation key → quote, and refuses every broken link."""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pulumi_sconify.engine.attestation.azure import AzureEvidence, HclReport, verify_evidence
from pulumi_sconify.engine.cas.intake.hardware import HardwareTrust
from pulumi_sconify.engine.errors import CasError, EvidenceRefusedError
from pulumi_sconify.engine.policy import AzureCvmReference, Platforms
from pulumi_sconify.engine.runtime.hardware import (
    ATTESTATION_KEY_HANDLE,
    HCL_REPORT_NV_INDEX,
    HardwareSources,
)
from pulumi_sconify.engine.runtime.tpm import SocketTransport, Tpm, TpmError
from tests.support.evidence.snp_forge import ForgedMilan
from tests.support.evidence.swtpm import (
    AzureVtpm,
    Simulator,
    expected_pcr,
    hcl_report,
    provision,
    running_swtpm,
    start_swtpm,
)
from tests.support.evidence.tdx_forge import DURING, Hierarchy, TdReport, write_collateral
from tests.support.hardware import Runtime, hardware_session, make_cas
from tests.support.processes import sconify
from tests.support.runtime_harness import GoHardwareSources

NOW = datetime(2026, 1, 15, tzinfo=UTC)
BINDING = bytes(range(32))


@pytest.fixture(scope="module")
def forger() -> ForgedMilan:
    return ForgedMilan()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    yield from running_swtpm(tmp_path_factory.mktemp("swtpm"))


@pytest.fixture(scope="module")
def vtpm(simulator: Simulator, forger: ForgedMilan) -> AzureVtpm:
    return provision(simulator, forger)


def collect(vtpm: AzureVtpm, binding: bytes = BINDING) -> AzureEvidence:
    """What the runtime collects on the VM, through its own TPM client."""
    tpm = Tpm(SocketTransport("127.0.0.1", vtpm.simulator.port))
    try:
        hcl = tpm.nv_read(HCL_REPORT_NV_INDEX)
        pcrs = tpm.pcr_read(range(24))
        quote, signature = tpm.quote(ATTESTATION_KEY_HANDLE, binding, range(24))
    finally:
        tpm.close()
    return AzureEvidence(hcl, quote, signature, pcrs)


def pinned(*indexes: int, measurement: bytes | None = None) -> AzureCvmReference:
    return AzureCvmReference(
        pcrs=tuple((index, expected_pcr(index).hex()) for index in indexes),
        measurements=(measurement.hex(),) if measurement else (),
    )


def verify(evidence: AzureEvidence, forger: ForgedMilan, **kwargs: object) -> object:
    arguments: dict[str, object] = {
        "now": NOW,
        "reference": pinned(0, 7, 11),
        "qualifying_data": BINDING,
        "amd_anchors": forger.anchors,
    } | kwargs
    return verify_evidence(dataclasses.replace(evidence, vcek=forger.vcek_der), **arguments)  # type: ignore[arg-type]


def refused(evidence: AzureEvidence, forger: ForgedMilan, **kwargs: object) -> EvidenceRefusedError:
    with pytest.raises(EvidenceRefusedError) as refusal:
        verify(evidence, forger, **kwargs)
    return refusal.value


def test_the_runtime_reads_what_azure_provisions(vtpm: AzureVtpm) -> None:
    evidence = collect(vtpm)
    report = HclReport.parse(evidence.hcl_report)
    assert report.runtime_data == vtpm.runtime_data
    assert evidence.pcrs[7] == expected_pcr(7)
    assert evidence.pcrs[3] == bytes(32)
    assert len(evidence.pcrs) == 24


def test_genuine_bound_evidence_is_accepted(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    verdict = verify(collect(vtpm), forger, reference=pinned(0, 7, 11, measurement=vtpm.launch_measurement))
    assert "tpm-quote" in verdict.checks and "qualifying-data" in verdict.checks and "pcrs" in verdict.checks  # type: ignore[attr-defined]
    assert "sev-snp:report-data" in verdict.checks  # type: ignore[attr-defined]
    assert verdict.claims["pcrs"]["7"] == expected_pcr(7).hex()  # type: ignore[attr-defined]


def test_a_quote_for_another_attestation_is_refused(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    assert refused(collect(vtpm, binding=b"\x01" * 32), forger).check == "qualifying-data"


def test_pcr_values_other_than_the_quoted_ones_are_refused(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    evidence = collect(vtpm)
    lied = dataclasses.replace(evidence, pcrs=dict(evidence.pcrs) | {7: bytes(32)})
    refusal = refused(lied, forger)
    assert refusal.check == "pcrs"
    assert "not the ones the TPM quoted" in str(refusal)


def test_a_pcr_the_policy_pins_differently_is_refused(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    other = AzureCvmReference(pcrs=((7, "00" * 32),))
    refusal = refused(collect(vtpm), forger, reference=other)
    assert refusal.check == "pcrs"
    assert "PCR 7 is" in str(refusal)


def test_a_wrong_firmware_measurement_is_refused(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    refusal = refused(collect(vtpm), forger, reference=pinned(7, measurement=b"\x00" * 48))
    assert refusal.check == "measurement"


def test_a_quote_by_a_key_the_hardware_report_does_not_name_is_refused(
    vtpm: AzureVtpm, forger: ForgedMilan, tmp_path: Path
) -> None:
    # Another TPM (the attacker's), quoting with its own key: the HCL report names the VM's key.
    evidence = collect(vtpm)
    for other in running_swtpm(tmp_path / "other"):
        foreign = collect(provision(other, ForgedMilan()))
        refusal = refused(
            dataclasses.replace(evidence, quote=foreign.quote, signature=foreign.signature), forger
        )
        assert refusal.check in {"tpm-quote", "qualifying-data"}


def test_runtime_data_swapped_for_the_attackers_key_breaks_the_hardware_binding(
    vtpm: AzureVtpm, forger: ForgedMilan
) -> None:
    evidence = collect(vtpm)
    report = HclReport.parse(evidence.hcl_report)
    document = json.loads(report.runtime_data)
    document["keys"][0]["n"] = document["keys"][0]["n"][::-1]
    swapped = hcl_report(json.dumps(document).encode(), report.hardware_report)
    refusal = refused(dataclasses.replace(evidence, hcl_report=swapped), forger)
    assert refusal.check == "report-data"


def test_an_hcl_report_under_a_self_made_root_is_refused(vtpm: AzureVtpm, forger: ForgedMilan) -> None:
    assert refused(collect(vtpm), forger, amd_anchors=None).check == "chain"


@pytest.mark.parametrize("garbage", [b"", b"HCLA" + bytes(100), b"XXXX" + bytes(2000)])
def test_what_is_not_an_hcl_report_is_refused(vtpm: AzureVtpm, forger: ForgedMilan, garbage: bytes) -> None:
    assert refused(dataclasses.replace(collect(vtpm), hcl_report=garbage), forger).check == "format"


def test_the_tpm_client_names_a_refusal(simulator: Simulator) -> None:
    tpm = Tpm(SocketTransport("127.0.0.1", simulator.port))
    try:
        with pytest.raises(TpmError, match="refused command 0x169"):
            tpm.nv_read(0x01400099)
    finally:
        tpm.close()


Collector = Callable[[int, "str | None"], "HardwareSources | GoHardwareSources"]


@pytest.fixture(params=["go", "python"])
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Collector:
    """Makes a collector on the vTPM at a swtpm's port (and Azure's metadata service, if given): the Go
    runtime's (through its harness, what images run), or the engine's (``sconify evidence collect``)."""
    if request.param == "python":
        return lambda port, imds: HardwareSources(
            tpm=lambda: Tpm(SocketTransport("127.0.0.1", port)), azure_imds=imds
        )
    binary, none = request.getfixturevalue("harness_binary"), tmp_path / "no-such-interface"
    return lambda port, imds: GoHardwareSources(
        binary, tsm_reports=none, sev_guest=none, tpm_port=port, azure_imds=imds
    )


def test_the_cas_grants_on_the_evidence_the_runtime_collects(
    vtpm: AzureVtpm, forger: ForgedMilan, collector: Collector, tmp_path: Path
) -> None:
    vceks = tmp_path / "vceks"
    vceks.mkdir()
    (vceks / "milan.der").write_bytes(forger.vcek_der)
    platforms = Platforms(azure_cvm=pinned(0, 7, 11))
    sources = collector(vtpm.simulator.port, None)
    assert "azure-cvm" in sources.available()
    for trusted, cas_directory in ((forger.anchors, "cas"), (None, "pinned-cas")):
        trust = HardwareTrust(vcek_directory=vceks, amd_anchors=trusted, clock=NOW.timestamp)
        runtime = Runtime(make_cas(tmp_path / cas_directory, trust, hardware_session(platforms)))
        nonce, binding = runtime.nonce()
        evidence = sources.collect("azure-cvm", binding)
        if trusted is not None:
            assert runtime.attest(nonce, evidence)["evidence"] == "azure-cvm"
        else:
            # Against AMD's real roots, the tests' own hardware is what an attacker has: nothing.
            with pytest.raises(CasError, match="chain check"):
                runtime.attest(nonce, evidence)


class FakeImds(http.server.BaseHTTPRequestHandler):
    """Azure's instance metadata service as far as a confidential VM uses it: the VCEK of its chip, and a
    TD quote of a TDREPORT (made here by the tests' Intel-like hierarchy)."""

    certificates = ""
    hierarchy: Hierarchy | None = None

    def do_GET(self) -> None:
        if self.path != "/metadata/THIM/amd/certification" or self.headers.get("Metadata") != "true":
            self.send_error(404)
            return
        self._answer({"vcekCert": self.certificates, "certificateChain": ""})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/acc/tdquote" or self.hierarchy is None or self.headers.get("Metadata") != "true":
            self.send_error(404)
            return
        td_report = base64.urlsafe_b64decode(body["report"] + "=" * (-len(body["report"]) % 4))
        quote = self.hierarchy.quote(TdReport(report_data=td_report[128:192]))
        self._answer({"quote": base64.urlsafe_b64encode(quote).rstrip(b"=").decode()})

    def _answer(self, document: dict[str, str]) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def fake_imds() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeImds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_the_vcek_comes_from_azures_metadata_service(
    vtpm: AzureVtpm, forger: ForgedMilan, collector: Collector, tmp_path: Path
) -> None:
    FakeImds.certificates = forger.vcek.public_bytes(serialization.Encoding.PEM).decode()
    with fake_imds() as imds:
        sources = collector(vtpm.simulator.port, imds)
        trust = HardwareTrust(amd_anchors=forger.anchors, clock=NOW.timestamp)  # no VCEK cache
        runtime = Runtime(make_cas(tmp_path, trust, hardware_session(Platforms(azure_cvm=pinned(7)))))
        nonce, binding = runtime.nonce()
        evidence = sources.collect("azure-cvm", binding)
        assert "vcek" in evidence
        assert runtime.attest(nonce, evidence)["evidence"] == "azure-cvm"


def test_a_tdx_based_vm_gets_its_td_quote_from_azure(collector: Collector, tmp_path: Path) -> None:
    FakeImds.hierarchy = hierarchy = Hierarchy()
    simulator = start_swtpm(tmp_path / "swtpm")
    try:
        tdx_vm = provision(simulator, None)
        collateral = write_collateral(hierarchy.collateral(), tmp_path / "collateral")
        trust = HardwareTrust(tdx_collateral=collateral, intel_root=hierarchy.root, clock=DURING.timestamp)
        reference = AzureCvmReference(pcrs=((7, expected_pcr(7).hex()),), measurements=("03" * 48,))
        runtime = Runtime(make_cas(tmp_path / "cas", trust, hardware_session(Platforms(azure_cvm=reference))))
        with fake_imds() as imds:
            sources = collector(simulator.port, imds)
            nonce, binding = runtime.nonce()
            evidence = sources.collect("azure-cvm", binding)
    finally:
        simulator.stop()
    assert "td_quote" in evidence
    assert HclReport.parse(base64.b64decode(evidence["hcl_report"])).runtime_data == tdx_vm.runtime_data
    assert runtime.attest(nonce, evidence)["evidence"] == "azure-cvm"


def test_the_cli_reads_an_azure_bundle_and_names_the_refusing_link(
    vtpm: AzureVtpm, forger: ForgedMilan, tmp_path: Path
) -> None:
    sources = HardwareSources(
        tpm=lambda: Tpm(SocketTransport("127.0.0.1", vtpm.simulator.port)), azure_imds=None
    )
    bundle = tmp_path / "evidence.json"
    bundle.write_text(json.dumps(sources.collect("azure-cvm", BINDING)))
    vcek = tmp_path / "vcek.der"
    vcek.write_bytes(forger.vcek_der)
    # The bundle parses and the HCL report is read; its SNP half is the tests' hierarchy, which AMD's
    # pinned roots refuse.
    result = sconify("evidence", "verify", "azure-cvm", str(bundle), "--vcek", str(vcek), "--json")
    assert result.returncode == 1
    refusal = json.loads(result.stdout)["refused"]
    assert refusal["check"] == "chain" and "not signed by AMD's Milan ASK" in refusal["reason"]
    raw = sconify("evidence", "verify", "azure-cvm", str(vcek))
    assert raw.returncode == 1 and "azure-cvm evidence is a bundle" in raw.stderr
