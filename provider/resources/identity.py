"""``CreatorIdentity``: a CAS client identity — a private key and a self-signed certificate."""

from __future__ import annotations

from typing import Any

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...engine.cas.clients.identity import key_hash, self_signed_certificate
from .base import CreateResult, KeyMaterialProvider, inputs_of
from .sdk import KeyMaterialResource
from .spec import COMMON_NAME, PROVIDER_VERSION_PROPERTY, STRING, Property, ResourceSpec

SPEC = ResourceSpec(
    "CreatorIdentity",
    "A CAS client identity: a private key and a self-signed certificate. `key_hash` is what access "
    "policies name.",
    inputs={"common_name": COMMON_NAME, "provider_version": PROVIDER_VERSION_PROPERTY},
    outputs={
        "private_key_pem": Property(STRING, "The private key (PKCS#8 PEM).", secret=True),
        "certificate_pem": Property(
            STRING, "The self-signed certificate (PEM); renew it freely, the key is the identity."
        ),
        "key_hash": Property(
            STRING, "SHA-256 of the public key (64 hex): the identity access policies list."
        ),
    },
)


class CreatorIdentityProvider(KeyMaterialProvider):
    """Makes the key and certificate on create; nothing exists outside the state, so read echoes it."""

    default_name = "sconify-client"

    def create(self, props: dict[str, Any]) -> CreateResult:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self_signed_certificate(key, str(props["common_name"]))
        outs = {
            **inputs_of(props),
            "private_key_pem": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "certificate_pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "key_hash": key_hash(key.public_key()),
        }
        return CreateResult(id=outs["key_hash"], outs=outs)


class CreatorIdentity(KeyMaterialResource):
    """A CAS client identity. ``key_hash`` is what access policies name; the key is a secret output."""

    resource_spec = SPEC
    default_name = CreatorIdentityProvider.default_name

    common_name: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]
    """The private key (PKCS#8 PEM). Secret."""
    certificate_pem: pulumi.Output[str]
    """The self-signed certificate (PEM); renew it freely — the key is the identity."""
    key_hash: pulumi.Output[str]
    """SHA-256 of the public key (64 hex): the identity access policies list."""
