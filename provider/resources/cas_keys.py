"""``CasKeys``: the key material of one CAS, made before the CAS first starts.

A CAS deployed by Pulumi must be pinned by its clients — the sconified image, the session upload — before
it runs, so its certificate authority is made here and handed to it (``sconify cas serve --ca-dir``), as
is its master key (``SCONIFY_CAS_MASTER_KEY``). Both live only in Pulumi's state, as secrets, and in the
Kubernetes Secret the CAS reads.
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi

from ...engine.cas.clients.identity import new_certificate_authority
from .base import CreateResult, KeyMaterialProvider, inputs_of
from .sdk import KeyMaterialResource
from .spec import COMMON_NAME, PROVIDER_VERSION_PROPERTY, STRING, Property, ResourceSpec

SPEC = ResourceSpec(
    "CasKeys",
    "A CAS's certificate authority and master key, made before the CAS first starts so that clients and "
    "images can pin it. They exist only in Pulumi's state (as secrets) and in the Secret the CAS reads: only "
    "a new name replaces them, since new keys would orphan every pin and every sealed secret.",
    inputs={"common_name": COMMON_NAME, "provider_version": PROVIDER_VERSION_PROPERTY},
    outputs={
        "ca_certificate_pem": Property(STRING, "The CA certificate (PEM) that clients and images pin."),
        "ca_key_pem": Property(STRING, "The CA's private key (PKCS#8 PEM).", secret=True),
        "master_key": Property(STRING, "The CAS master key (64 hex) that seals its database.", secret=True),
    },
)
SECRET_OUTPUTS = SPEC.secret_outputs


class CasKeysProvider(KeyMaterialProvider):
    """Makes a CA and a master key on create; they exist nowhere else, so read echoes the state. Only a
    new name replaces them: new keys would orphan every pin and every sealed secret."""

    default_name = "sconify CAS CA"

    def create(self, props: dict[str, Any]) -> CreateResult:
        certificate, key = new_certificate_authority(str(props["common_name"]))
        outs = {
            **inputs_of(props),
            "ca_certificate_pem": certificate.decode(),
            "ca_key_pem": key.decode(),
            "master_key": secrets.token_hex(32),
        }
        return CreateResult(id=f"cas-keys-{secrets.token_hex(8)}", outs=outs)


class CasKeys(KeyMaterialResource):
    """A CAS's certificate authority and master key."""

    resource_spec = SPEC
    default_name = CasKeysProvider.default_name

    ca_certificate_pem: pulumi.Output[str]
    """The CA certificate (PEM) that clients and images pin."""
    ca_key_pem: pulumi.Output[str]
    """The CA's private key (PKCS#8 PEM). Secret."""
    master_key: pulumi.Output[str]
    """The CAS master key (64 hex) that seals its database. Secret."""
