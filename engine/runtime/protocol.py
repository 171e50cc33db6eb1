"""The attestation protocol between a runtime and the CAS: names, paths and the two byte strings both
sides must compute alike. Written once here (this module ships into images) and used by both sides.

1. ``POST /v1/attest/nonce`` with the configuration id: a single-use nonce of short life, and the
   evidence kinds the service's policy accepts (strongest first).
2. The runtime makes an Ed25519 key pair for this run and collects evidence bound to
   :func:`evidence_binding` of the nonce and its public key (a hardware report carries it in its
   report-data field; a Kubernetes token cannot carry it and relies on the nonce and TLS instead).
3. ``POST /v1/attest``: configuration id, measurement, nonce, public key, evidence. The answer holds the
   configuration and a credential bound to that key.
4. Every volume request carries the credential *and* a signature by the key over
   :func:`request_signing_input`, so a credential alone, without the key, opens nothing.
"""

from __future__ import annotations

import hashlib

ATTESTATION_PORT = 18765
"""The CAS's attestation API (server-authenticated TLS), SCONE's port."""
CLIENT_PORT = 8081
"""The CAS's client API (mutual TLS: sessions), SCONE's port."""
NONCE_PATH = "/v1/attest/nonce"
ATTEST_PATH = "/v1/attest"
VOLUME_STATE_PATH = "/v1/volumes/{volume}/state"
SIGNATURE_HEADER = "sconify-signature"
"""Header of a volume request: the runtime key's Ed25519 signature (hex) over the request."""

KUBERNETES = "kubernetes"
"""Evidence: the pod's projected service-account token, audience the CAS."""
INSECURE_SOFTWARE_EVIDENCE = "insecure-software-evidence"
"""Evidence *and* the toleration that admits it: the runtime's own word, which anyone can make up."""
SEV_SNP = "sev-snp"
"""Evidence: an AMD SEV-SNP report (``report``, base64) with :func:`hardware_report_data`, and the
extended report's certificate table (``certificates``) when the platform has one."""
TDX = "tdx"
"""Evidence: an Intel TDX quote (``quote``, base64) with :func:`hardware_report_data`."""
AZURE_CVM = "azure-cvm"
"""Evidence: an Azure confidential VM's HCL report (``hcl_report``), a vTPM quote (``quote``,
``signature``) whose qualifying data is :func:`evidence_binding`, and the quoted PCRs (``pcrs``)."""
HARDWARE_KINDS = (SEV_SNP, TDX, AZURE_CVM)

CAS_PIN_PATH = "/sconify/cas-ca.pem"
"""Where a confidential image carries the CA certificate of its CAS (the runtime trusts nothing else)."""
VOLUME_STORAGE_DIR = "/sconify/volumes"
"""Where a confidential container finds each volume's ciphertext, ``<dir>/<volume name>``."""
KUBERNETES_TOKEN_FILE = "/var/run/secrets/sconify.io/token"  # noqa: S105 - a path, not a secret
"""Where a confidential pod finds its projected service-account token for the CAS."""
RUNTIME_KEY_BYTES = 32
"""An Ed25519 public key, raw."""


def cas_host_and_port(address: str, default_port: int) -> tuple[str, int]:
    """A CAS address as users write it, ``host`` or ``host:port``, with the API's port when none is given
    (one rule for the runtime, the clients and the CLI). A bare IPv6 address, which has colons of its own,
    is a host without a port."""
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    return host or address, int(port) if port else default_port


def evidence_binding(nonce: str, runtime_key: bytes) -> bytes:
    """The 32 bytes evidence must carry to be bound to this attestation and this runtime key."""
    return hashlib.sha256(b"sconify-attestation-v1\x00" + bytes.fromhex(nonce) + runtime_key).digest()


def hardware_report_data(binding: bytes) -> bytes:
    """The 64-byte report-data of an SEV-SNP report or TDX quote for ``binding``: the binding, then
    zeros."""
    return binding + bytes(64 - len(binding))


def request_signing_input(method: str, path: str, body: bytes, credential: str) -> bytes:
    """What the runtime key signs for one volume request: the method, the path, the body's hash and the
    credential's hash (a signature for one credential is worth nothing with another)."""
    return b"\n".join(
        (
            b"sconify-request-v1",
            method.encode("ascii"),
            path.encode("utf-8"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
            hashlib.sha256(credential.encode("ascii")).hexdigest().encode("ascii"),
        )
    )
