"""The attestation protocol between a runtime and the CAS: its paths and the byte strings both sides must
compute alike. Written once here (this module ships into images) and used by both sides; the names it
carries (evidence kinds, ports) are the engine's shared vocabulary (``..vocabulary``).

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

NONCE_PATH = "/v1/attest/nonce"
ATTEST_PATH = "/v1/attest"
VOLUME_STATE_PATH = "/v1/volumes/{volume}/state"
SIGNATURE_HEADER = "sconify-signature"
"""Header of a volume request: the runtime key's Ed25519 signature (hex) over the request."""

RUNTIME_KEY_BYTES = 32
"""An Ed25519 public key, raw."""


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
