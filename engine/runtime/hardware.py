"""Hardware evidence from inside a confidential VM: what the node offers, and a report bound to one
attestation.

Three sources, as Linux and Azure expose them:

- ``configfs-tsm`` (``/sys/kernel/config/tsm/report``, Linux 6.7+; Documentation/ABI/testing/
  configfs-tsm): make an entry, write the 64-byte report-data to ``inblob``, read the report or quote
  from ``outblob`` (and the SEV-SNP certificate table from ``auxblob``); ``provider`` says which TEE
  (``sev_guest`` or ``tdx_guest``) and ``generation`` detects another writer in between.
- ``/dev/sev-guest`` (older SEV-SNP guests): the ``SNP_GET_REPORT`` ioctl of include/uapi/linux/sev-guest.h.
- the vTPM of an Azure confidential VM (``/dev/tpmrm0``): the HCL report in NV index ``0x01400001`` and a
  quote by the attestation key at ``0x81000003`` (:mod:`.tpm`).

Which is used follows what the CAS accepts (the nonce's ``accepts``, strongest first) and what is there.
This module ships into images: standard library only.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import http.client
import json
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SconifyError
from ..vocabulary import AZURE_CVM, SEV_SNP, TDX
from .protocol import hardware_report_data
from .tpm import DEVICE as TPM_DEVICE, DeviceTransport, Tpm, TpmError

TSM_REPORT_DIR = "/sys/kernel/config/tsm/report"
SEV_GUEST_DEVICE = "/dev/sev-guest"
QUOTED_PCRS = range(24)
"""Every PCR of the SHA-256 bank: the CAS checks the ones the session pins."""
TSM_ATTEMPTS = 16
"""How often a configfs-tsm report is asked for again when another writer changed the entry meanwhile."""

# include/uapi/linux/sev-guest.h
_SNP_GUEST_REQUEST_SIZE = 32  # u8 msg_version, u64 req_data, u64 resp_data, u64 exitinfo2 (aligned)
SNP_GET_REPORT = (3 << 30) | (_SNP_GUEST_REQUEST_SIZE << 16) | (ord("S") << 8) | 0x0
_SNP_REPORT_REQUEST = struct.Struct("<64sI28x")  # user_data, vmpl
_SNP_RESPONSE_SIZE = 4000
_SNP_REPORT_OFFSET = 32  # MSG_REPORT_RSP: status, report_size, reserved[24], then the report
SNP_REPORT_SIZE = 1184

AZURE_IMDS = "169.254.169.254"
"""Azure's instance metadata service (link-local; reachable from a VM and, unless a network policy
forbids it, from its pods)."""
IMDS_TIMEOUT = 10.0
MAX_IMDS_ANSWER = 256 * 1024

# An Azure confidential VM's HCL report (Microsoft's "attestation report format"), which the runtime reads and
# the CAS's verifier (engine/attestation/azure.py) parses: written once, here, in the module that ships.
HCL_REPORT_NV_INDEX = 0x01400001
"""Where the vTPM keeps the HCL report."""
ATTESTATION_KEY_HANDLE = 0x81000003
"""The vTPM's persistent attestation key (the key ``HCLAkPub`` in the runtime data names)."""
HCL_HEADER_SIZE = 32
HARDWARE_REPORT_SIZE = 1184
"""The hardware report's field: an SNP report, or a TDREPORT (:data:`TD_REPORT_SIZE`) and padding."""
HCL_DATA_HEADER_SIZE = 20
"""Size, version, report type, hash type and the runtime data's size, each 32 bits."""
REPORT_TYPE_SNP, REPORT_TYPE_TDX = 2, 4
TD_REPORT_SIZE = 1024
_REPORT_TYPE_OFFSET = HCL_HEADER_SIZE + HARDWARE_REPORT_SIZE + 8


class HardwareEvidenceError(SconifyError):
    """The node's TEE interface failed to give a report."""


Ioctl = Callable[[int, int, bytearray, bool], Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class HardwareSources:
    """The TEE interfaces of this node. Paths and the ioctl are parameters so that tests can give fakes
    laid out as the kernel documents them."""

    def __init__(
        self,
        tsm_reports: Path = Path(TSM_REPORT_DIR),
        sev_guest: Path = Path(SEV_GUEST_DEVICE),
        tpm: Callable[[], Tpm] | None = None,
        tpm_device: Path = Path(TPM_DEVICE),
        ioctl: Ioctl = fcntl.ioctl,
        azure_imds: str | None = AZURE_IMDS,
    ) -> None:
        self.tsm_reports = tsm_reports
        self.sev_guest = sev_guest
        self.tpm_device = tpm_device
        self._tpm = tpm or (lambda: Tpm(DeviceTransport(str(self.tpm_device))))
        self._tpm_given = tpm is not None
        self._ioctl = ioctl
        self.azure_imds = azure_imds

    # -- what is there ----------------------------------------------------------------------------

    def available(self) -> list[str]:
        """The hardware kinds this node can give, strongest first."""
        kinds = []
        provider = self.tsm_provider()
        if provider == "sev_guest" or (provider is None and self.sev_guest.exists()):
            kinds.append(SEV_SNP)
        if provider == "tdx_guest":
            kinds.append(TDX)
        if self._tpm_given or self.tpm_device.exists():
            kinds.append(AZURE_CVM)
        return kinds

    def tsm_provider(self) -> str | None:
        """The TEE behind configfs-tsm (``sev_guest``, ``tdx_guest``), or ``None`` without it."""
        if not self.tsm_reports.is_dir():
            return None
        entry = self._tsm_entry()
        try:
            return (entry / "provider").read_text().strip()
        finally:
            entry.rmdir()

    # -- collecting ---------------------------------------------------------------------------------

    def collect(self, kind: str, binding: bytes) -> dict[str, Any]:
        """Evidence of ``kind`` bound to ``binding`` (:func:`~.protocol.evidence_binding`)."""
        if kind in (SEV_SNP, TDX) and self.tsm_reports.is_dir():
            report, certificates = self.tsm_report(hardware_report_data(binding))
            if kind == TDX:
                return {"kind": TDX, "quote": _b64(report)}
            evidence = {"kind": SEV_SNP, "report": _b64(report)}
            if certificates:
                evidence["certificates"] = _b64(certificates)
            return evidence
        if kind == SEV_SNP:
            return {"kind": SEV_SNP, "report": _b64(self.sev_guest_report(hardware_report_data(binding)))}
        if kind == AZURE_CVM:
            return self.vtpm_evidence(binding)
        raise HardwareEvidenceError(f"this node cannot give {kind} evidence")

    def _tsm_entry(self) -> Path:
        entry = self.tsm_reports / f"sconify-{os.getpid()}"
        try:
            entry.mkdir()
        except FileExistsError:
            pass  # left by an earlier run of this process id; its contents are overwritten
        except OSError as error:
            raise HardwareEvidenceError(
                f"cannot make a configfs-tsm report entry: {error.strerror}"
            ) from None
        return entry

    def tsm_report(self, report_data: bytes) -> tuple[bytes, bytes]:
        """The report (SEV-SNP) or quote (TDX) for ``report_data``, and the auxiliary blob (SEV-SNP's
        certificate table; empty when the host supplies none)."""
        entry = self._tsm_entry()
        try:
            for _ in range(TSM_ATTEMPTS):
                (entry / "inblob").write_bytes(report_data)
                generation = (entry / "generation").read_text().strip()
                report = (entry / "outblob").read_bytes()
                auxiliary = (entry / "auxblob").read_bytes() if (entry / "auxblob").exists() else b""
                # The kernel counts inblob writes: an unchanged count means no one else wrote between our
                # write and our reads, so the report is for our report-data.
                if (entry / "generation").read_text().strip() == generation:
                    return report, auxiliary
            raise HardwareEvidenceError("configfs-tsm: another writer kept changing the report entry")
        except OSError as error:
            raise HardwareEvidenceError(f"configfs-tsm: {error.strerror or error}") from None
        finally:
            entry.rmdir()

    def sev_guest_report(self, report_data: bytes) -> bytes:
        """An SEV-SNP report from ``/dev/sev-guest`` (``SNP_GET_REPORT``, VMPL 0)."""
        # The ioctl takes the addresses of its buffers. ctypes is imported here, not at the top: some
        # images' Python is built without it (a minimal musl build), and only this interface needs it.
        import ctypes  # noqa: PLC0415

        request = ctypes.create_string_buffer(
            _SNP_REPORT_REQUEST.pack(report_data, 0), _SNP_REPORT_REQUEST.size
        )
        response = ctypes.create_string_buffer(_SNP_RESPONSE_SIZE)
        ioctl_argument = bytearray(
            struct.pack("<B7xQQQ", 1, ctypes.addressof(request), ctypes.addressof(response), 0)
        )
        try:
            fd = os.open(self.sev_guest, os.O_RDWR)
        except OSError as error:
            raise HardwareEvidenceError(f"cannot open {self.sev_guest}: {error.strerror}") from None
        try:
            self._ioctl(fd, SNP_GET_REPORT, ioctl_argument, True)
        except OSError as error:
            _, _, _, exitinfo = struct.unpack("<B7xQQQ", ioctl_argument)
            detail = f" (firmware error {exitinfo:#x})" if error.errno == errno.EIO else ""
            raise HardwareEvidenceError(f"SNP_GET_REPORT failed: {error.strerror}{detail}") from None
        finally:
            os.close(fd)
        status, size = struct.unpack_from("<II", response.raw)
        if status != 0 or size != SNP_REPORT_SIZE:
            raise HardwareEvidenceError(f"the firmware answered status {status:#x} with a {size}-byte report")
        return response.raw[_SNP_REPORT_OFFSET : _SNP_REPORT_OFFSET + SNP_REPORT_SIZE]

    def vtpm_evidence(self, binding: bytes) -> dict[str, Any]:
        """An Azure confidential VM's HCL report, its PCRs, and a quote over them with ``binding``."""
        try:
            tpm = self._tpm()
        except TpmError as error:
            raise HardwareEvidenceError(str(error)) from None
        try:
            hcl_report = tpm.nv_read(HCL_REPORT_NV_INDEX)
            pcrs = tpm.pcr_read(QUOTED_PCRS)
            quote, signature = tpm.quote(ATTESTATION_KEY_HANDLE, binding, QUOTED_PCRS)
        except TpmError as error:
            raise HardwareEvidenceError(f"vTPM: {error} (is this an Azure confidential VM?)") from None
        finally:
            tpm.close()
        evidence = {
            "kind": AZURE_CVM,
            "hcl_report": _b64(hcl_report),
            "quote": _b64(quote),
            "signature": _b64(signature),
            "pcrs": {str(index): value.hex() for index, value in sorted(pcrs.items())},
        }
        if self.azure_imds:
            evidence.update(self._from_imds(hcl_report))
        return evidence

    def _from_imds(self, hcl_report: bytes) -> dict[str, str]:
        """What Azure's instance metadata service adds to the HCL report: the VCEK for an SEV-SNP VM (so
        that the CAS needs no cache), the TD quote for a TDX VM (only a quoting enclave can make one).
        Neither is trusted for itself: the CAS verifies the VCEK's chain and the quote's. Without the
        service (not on Azure) there is nothing to add."""
        report_type = (
            struct.unpack_from("<I", hcl_report, _REPORT_TYPE_OFFSET)[0]
            if len(hcl_report) >= _REPORT_TYPE_OFFSET + 4
            else 0
        )
        try:
            if report_type == REPORT_TYPE_SNP:
                answer = self._imds("GET", "/metadata/THIM/amd/certification", None)
                certificates = str(answer.get("vcekCert", "")) + str(answer.get("certificateChain", ""))
                return {"vcek": _b64(certificates.encode())} if certificates else {}
            if report_type == REPORT_TYPE_TDX:
                td_report = hcl_report[HCL_HEADER_SIZE : HCL_HEADER_SIZE + TD_REPORT_SIZE]
                request = {"report": base64.urlsafe_b64encode(td_report).rstrip(b"=").decode()}
                answer = self._imds("POST", "/acc/tdquote", request)
                quote = str(answer.get("quote", ""))
                return {"td_quote": _b64(base64.urlsafe_b64decode(quote + "=" * (-len(quote) % 4)))}
        except (OSError, ValueError, http.client.HTTPException) as error:
            # Not fatal: a CAS with a VCEK cache (cas serve --snp-vcek-dir) needs nothing more.
            print(
                f"[SCONIFY|WARNING] Azure's metadata service did not answer ({error}): the evidence goes "
                "without the VCEK or TD quote it would add",
                file=sys.stderr,
                flush=True,
            )
        return {}

    def _imds(self, method: str, path: str, body: dict[str, str] | None) -> dict[str, Any]:
        assert self.azure_imds is not None
        host, _, port = self.azure_imds.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=IMDS_TIMEOUT)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Metadata": "true"} | ({"Content-Type": "application/json"} if payload else {})
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            data = response.read(MAX_IMDS_ANSWER + 1)
            if response.status != 200 or len(data) > MAX_IMDS_ANSWER:
                raise ValueError(f"{method} {path}: status {response.status}")
            answer = json.loads(data)
            if not isinstance(answer, dict):
                raise ValueError(f"{method} {path}: not a JSON object")
            return answer
        finally:
            connection.close()
