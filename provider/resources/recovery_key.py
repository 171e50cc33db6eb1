"""``CasRecoveryKey``: the owner's recovery key of one CAS, made by Pulumi and kept as a secret.

The CAS seals its master key to the public half (``sconify cas serve --recovery-key``); the private half
opens that sealed copy in a backup or in the database (``sconify cas recover``), so the CAS can be rebuilt
when its pods, its Secret and the ``CasKeys`` resource are all gone. The private key lives only in
Pulumi's state, encrypted by the stack's secrets provider: export it to offline storage
(``pulumi stack output casRecoveryKey --show-secrets``), or give the CAS a public key made elsewhere and
keep the private key out of the state altogether (docs/cas.md, "Who holds what").
"""

from __future__ import annotations

from typing import Any

import pulumi

from ...engine.cas.state.recovery import new_recovery_key
from .base import CreateResult, KeyMaterialProvider, inputs_of
from .sdk import KeyMaterialResource
from .spec import COMMON_NAME, PROVIDER_VERSION_PROPERTY, STRING, Property, ResourceSpec

SPEC = ResourceSpec(
    "CasRecoveryKey",
    "An X25519 recovery key for a CAS's master key: the CAS seals its master key to the public half "
    "(`sconify cas serve --recovery-key`), the private half opens it (`sconify cas recover`). Kept only in "
    "Pulumi's state; only a new name replaces it.",
    inputs={"common_name": COMMON_NAME, "provider_version": PROVIDER_VERSION_PROPERTY},
    outputs={
        "public_key_pem": Property(STRING, "The public key (SubjectPublicKeyInfo PEM) the CAS seals to."),
        "private_key_pem": Property(STRING, "The private key (PKCS#8 PEM) that opens it.", secret=True),
        "fingerprint": Property(STRING, "SHA-256 of the raw public key (64 hex)."),
    },
)


class CasRecoveryKeyProvider(KeyMaterialProvider):
    """Makes an X25519 key pair on create; it exists nowhere else, so read echoes the state. Only a new
    name replaces it (the CAS then seals its master key to the new public key at its next start)."""

    default_name = "sconify CAS recovery"

    def create(self, props: dict[str, Any]) -> CreateResult:
        pair = new_recovery_key()
        outs = {
            **inputs_of(props),
            "public_key_pem": pair.public_pem.decode(),
            "private_key_pem": pair.private_pem.decode(),
            "fingerprint": pair.fingerprint,
        }
        return CreateResult(id=f"cas-recovery-{pair.fingerprint[:16]}", outs=outs)


class CasRecoveryKey(KeyMaterialResource):
    """An X25519 recovery key for a CAS's master key."""

    resource_spec = SPEC
    default_name = CasRecoveryKeyProvider.default_name

    public_key_pem: pulumi.Output[str]
    """The public key (SubjectPublicKeyInfo PEM) the CAS seals its master key to."""
    private_key_pem: pulumi.Output[str]
    """The private key (PKCS#8 PEM) that ``sconify cas recover`` takes. Secret."""
    fingerprint: pulumi.Output[str]
    """SHA-256 of the raw public key (64 hex), as ``sconify cas recover`` and the CAS's log name it."""
