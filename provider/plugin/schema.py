"""The ``sconify`` package schema, generated from the resources' specs (``resources/*.py``, ``SPEC``).

``pulumi package add`` reads it from the plugin (GetSchema) to generate an SDK in the user's language, and
the registry renders it; ``schema.json`` beside this module is the same document, written by
``python -m pulumi_sconify.provider.plugin --schema`` and checked by the tests to be current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...components.naming import STACK_SETTINGS
from ..resources.spec import CLOSED_SETS, PACKAGE, ClosedSet, Property, ResourceSpec, wire_name


def _property(prop: Property) -> dict[str, Any]:
    described: dict[str, Any] = {**prop.type, "description": prop.description}
    if prop.secret:
        described["secret"] = True
    if prop.replaces:
        described["willReplaceOnChanges"] = True
    return described


def resource_schema(spec: ResourceSpec) -> dict[str, Any]:
    """A resource as other languages see it: camelCase names, without what only the provider sets. (The
    aliases to the dynamic providers' tokens are the Python classes' own: only Python had those.)"""

    def described(properties: Mapping[str, Property]) -> dict[str, Any]:
        shown = {wire_name(name): prop for name, prop in properties.items() if not prop.internal}
        return {name: _property(prop) for name, prop in sorted(shown.items())}

    return {
        "description": spec.description,
        "properties": described(spec.properties),
        "required": sorted(wire_name(name) for name, prop in spec.outputs.items() if not prop.internal),
        "inputProperties": described(spec.inputs),
        "requiredInputs": sorted(wire_name(name) for name, prop in spec.inputs.items() if prop.required),
    }


LANGUAGES = {
    "nodejs": {
        "packageName": "@pulumi-sconify/sconify",
        "dependencies": {"@pulumi/pulumi": "^3.175.0"},
    },
    "go": {
        "importBasePath": "github.com/pulumi-sconify/pulumi-sconify/sdk/go/sconify",
        "generateResourceContainerTypes": True,
    },
    # Python programs use the package itself (pulumi-sconify, imported as pulumi_sconify): a generated SDK
    # gets a name of its own, so that it never shadows it.
    "python": {"packageName": "pulumi_sconify_sdk"},
    "csharp": {"rootNamespace": "PulumiSconify", "packageReferences": {"Pulumi": "3.*"}},
    "java": {"basePackage": "io.github.pulumisconify"},
}
"""How each language's generated SDK is named: none under Pulumi's own scope or namespace."""


def _closed_sets() -> dict[str, ClosedSet]:
    """Every closed set's type, by its token (a component's or a resource's)."""
    return {ref.removeprefix("#/types/"): closed for ref, closed in CLOSED_SETS.items()}


def package_schema(version: str) -> dict[str, Any]:
    from .construct import component_schemas  # noqa: PLC0415 - heavy; only for the schema
    from .kinds import KINDS  # noqa: PLC0415 - the resources load only for the schema

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
        "language": LANGUAGES,
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
        "types": dict(
            sorted({**types, **{token: c.schema() for token, c in _closed_sets().items()}}.items())
        ),
    }
