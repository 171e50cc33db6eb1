"""The ``sconify`` package schema, generated from the resources' specs (``resources/*.py``, ``SPEC``).

``pulumi package add`` reads it from the plugin (GetSchema) to generate an SDK in the user's language, and
the registry renders it; ``schema.json`` beside this module is the same document, written by
``python -m pulumi_sconify.provider.plugin --schema`` and checked by the tests to be current.
"""

from __future__ import annotations

from typing import Any

from ...components.naming import STACK_SETTINGS
from ..resources.spec import PACKAGE, Property, ResourceSpec


def _property(prop: Property) -> dict[str, Any]:
    described: dict[str, Any] = {**prop.type, "description": prop.description}
    if prop.secret:
        described["secret"] = True
    if prop.replaces:
        described["willReplaceOnChanges"] = True
    return described


def resource_schema(spec: ResourceSpec) -> dict[str, Any]:
    return {
        "description": spec.description,
        "properties": {name: _property(prop) for name, prop in sorted(spec.properties.items())},
        "required": sorted(spec.outputs),
        "inputProperties": {name: _property(prop) for name, prop in sorted(spec.inputs.items())},
        "requiredInputs": sorted(name for name, prop in spec.inputs.items() if prop.required),
        # Stacks made by earlier versions hold these resources under the dynamic provider's token.
        "aliases": [{"type": spec.dynamic_token}],
    }


def package_schema(version: str) -> dict[str, Any]:
    from ...components.schema import component_schemas  # noqa: PLC0415 - heavy; only for the schema
    from .provider import KINDS  # noqa: PLC0415 - the provider module imports this one

    components, types = component_schemas()
    return {
        "name": PACKAGE,
        "displayName": "sconify",
        "version": version,
        "description": (
            "Confidential stateful services: images made confidential, their security policies in a "
            "Configuration and Attestation Service (CAS), and the keys of the CAS that holds them."
        ),
        "keywords": ["pulumi", "confidential-computing", "scone", "attestation", "category/infrastructure"],
        "license": "Apache-2.0",
        "publisher": "pulumi-sconify developers",
        "meta": {"moduleFormat": "(.*)"},
        "config": {
            "variables": {
                name: {"type": "boolean", "description": description}
                for name, description in sorted(STACK_SETTINGS.items())
            }
        },
        "provider": {
            "description": "The sconify provider. Its resources take where their CAS and registries are as "
            "inputs; the package's one stack setting (`sconify:legacyChildNames`) is read by its components."
        },
        "resources": dict(
            sorted(
                {**{token: resource_schema(kind.spec) for token, kind in KINDS.items()}, **components}.items()
            )
        ),
        "types": types,
    }
