"""A real software TPM (Debian's ``swtpm``), provisioned the way Azure provisions a confidential VM's
vTPM: an attestation key persisted at ``0x81000003`` and the HCL report in NV index ``0x01400001``.

The provisioning uses an independent TSS (``tpm2-pytss``); the code under test reads it back with its
own client, as it reads ``/dev/tpmrm0`` on a real VM. The HCL report's hardware half is an SEV-SNP
report from the tests' own AMD-like hierarchy (real hardware does not hand a test its keys): its
report-data is the SHA-256 of runtime data naming this TPM's attestation key, as Azure's paravisor makes
it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from tpm2_pytss import ESAPI, TPM2B_NV_PUBLIC, TPM2B_PUBLIC, TPMS_NV_PUBLIC
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPMA_NV, TPMA_OBJECT

from pulumi_sconify.engine.runtime.hardware import (
    ATTESTATION_KEY_HANDLE,
    HARDWARE_REPORT_SIZE,
    HCL_REPORT_NV_INDEX,
    REPORT_TYPE_SNP,
    REPORT_TYPE_TDX,
)
from tests.support.evidence.snp_forge import ForgedMilan
from tests.support.processes import free_port

PCR_EVENTS = {0: b"firmware", 7: b"secure boot policy", 11: b"unified kernel image"}
"""What the tests' "boot" extends into the SHA-256 bank, like a VM's firmware and bootloader."""


@dataclass
class Simulator:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def start_swtpm(state: Path) -> Simulator:
    """``swtpm`` on free TCP ports, once it accepts connections (retried on another port if the one it
    was given was taken meanwhile)."""
    state.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                "--flags", "not-need-init,startup-clear",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        while process.poll() is None and not _accepting(port):
            time.sleep(0.01)  # polling for a state: swtpm either listens or exits
        if process.poll() is None:
            return Simulator(process, port)
    raise RuntimeError("swtpm did not start: " + (process.stderr.read().decode() if process.stderr else ""))


def hcl_report(runtime_data: bytes, hardware_report: bytes, report_type: int = REPORT_TYPE_SNP) -> bytes:
    """An HCL report as Azure's paravisor writes it: header, hardware report, HCL data, runtime data."""
    header = b"HCLA" + struct.pack("<IIII", 2, 0, 2, 0) + bytes(12)
    hcl_data = struct.pack("<IIIII", 20 + len(runtime_data), 1, report_type, 1, len(runtime_data))
    return header + hardware_report.ljust(HARDWARE_REPORT_SIZE, b"\0") + hcl_data + runtime_data


def _b64url(value: int) -> str:
    return (
        base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


@dataclass
class AzureVtpm:
    simulator: Simulator
    attestation_key: rsa.RSAPublicKey
    runtime_data: bytes
    launch_measurement: bytes


def provision(
    simulator: Simulator, forger: ForgedMilan | None, *, launch_measurement: bytes = b"\x5a" * 48
) -> AzureVtpm:
    """Give the simulator what an Azure CVM's vTPM has: the attestation key, the HCL report, measured PCRs.
    With ``forger`` the VM is SEV-SNP-based, its report signed by that hierarchy; without, TDX-based: the
    hardware field holds a TDREPORT (zeros but its report-data), which Azure's metadata service quotes."""
    with ESAPI(simulator.tcti) as esapi:
        template = TPM2B_PUBLIC.parse(
            "rsa2048:rsassa-sha256:null",
            objectAttributes=TPMA_OBJECT.FIXEDTPM
            | TPMA_OBJECT.FIXEDPARENT
            | TPMA_OBJECT.SENSITIVEDATAORIGIN
            | TPMA_OBJECT.USERWITHAUTH
            | TPMA_OBJECT.RESTRICTED
            | TPMA_OBJECT.SIGN_ENCRYPT,
        )
        handle, public, *_ = esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
        esapi.evict_control(ESYS_TR.OWNER, handle, ATTESTATION_KEY_HANDLE)
        modulus = int.from_bytes(bytes(public.publicArea.unique.rsa), "big")
        key = rsa.RSAPublicNumbers(65537, modulus).public_key()
        runtime_data = json.dumps(
            {
                "keys": [
                    {"kid": "HCLAkPub", "key_ops": ["sign"], "kty": "RSA", "e": "AQAB", "n": _b64url(modulus)}
                ],
                "vm-configuration": {"console-enabled": False, "secure-boot": True, "tpm-enabled": True},
                "user-data": "",
            }
        ).encode()
        report_data = hashlib.sha256(runtime_data).digest() + bytes(32)
        if forger is not None:
            content = hcl_report(
                runtime_data, forger.report(measurement=launch_measurement, report_data=report_data)
            )
        else:
            td_report = bytes(128) + report_data + bytes(1024 - 192)
            content = hcl_report(runtime_data, td_report, REPORT_TYPE_TDX)
        nv = esapi.nv_define_space(
            b"",
            TPM2B_NV_PUBLIC(
                TPMS_NV_PUBLIC(
                    nvIndex=HCL_REPORT_NV_INDEX,
                    nameAlg=TPM2_ALG.SHA256,
                    attributes=TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE,
                    dataSize=len(content),
                )
            ),
            ESYS_TR.OWNER,
        )
        for offset in range(0, len(content), 512):
            esapi.nv_write(nv, content[offset : offset + 512], offset, ESYS_TR.OWNER)
        for index, event in PCR_EVENTS.items():
            # TPM2_PCR_Event: each bank extended with the event's digest in that bank's hash.
            esapi.pcr_event(ESYS_TR.parse(f"pcr{index}"), event)
    return AzureVtpm(simulator, key, runtime_data, launch_measurement)


def expected_pcr(index: int) -> bytes:
    """PCR ``index`` after the tests' boot: one extend of :data:`PCR_EVENTS` onto zeros, or zeros."""
    if index not in PCR_EVENTS:
        return bytes(32)
    return hashlib.sha256(bytes(32) + hashlib.sha256(PCR_EVENTS[index]).digest()).digest()


def running_swtpm(state: Path) -> Iterator[Simulator]:
    simulator = start_swtpm(state)
    try:
        yield simulator
    finally:
        simulator.stop()
