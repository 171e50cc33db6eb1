"""One description of each resource: its inputs and outputs, their types, which are secret and which
replace the resource when they change.

The package schema (``sconify`` plugin, ``schema.json``) is generated from these, the plugin checks inputs'
types and names each changed property's kind (update or replace) from them, and the Python classes mark
their secret outputs from them — so none of it is written twice.

Property names are written once, in Python's snake_case (the resource logic's and the Python classes'
names); on the wire, in the schema and in the state they are Pulumi's camelCase (:func:`wire_name`), so
every language's SDK follows its own conventions. A state written with the snake_case names of earlier
versions (by the dynamic providers, or the plugin of 0.1) reads back unchanged: a name that is not a
camelCase name of the resource is taken as it is (:meth:`ResourceSpec.from_wire`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...engine.chart import WorkloadType
from .base import is_unknown

PACKAGE = "sconify"

TypeSpec = Mapping[str, Any]
"""A Pulumi schema type reference: ``{"type": "string"}``, an array, a map, or ``{"$ref": ...}``."""
STRING: TypeSpec = {"type": "string"}
BOOLEAN: TypeSpec = {"type": "boolean"}
INTEGER: TypeSpec = {"type": "integer"}
ANY: TypeSpec = {"$ref": "pulumi.json#/Any"}


@dataclass(frozen=True)
class ClosedSet:
    """A string input with a closed set of values: an enum in the schema (each language's SDK gets a type
    for it), and a check that names the values."""

    name: str
    description: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        CLOSED_SETS[self.ref["$ref"]] = self

    @property
    def ref(self) -> TypeSpec:
        return {"$ref": f"#/types/{PACKAGE}:index:{self.name}"}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "description": self.description,
            "enum": [{"value": v} for v in self.values],
        }


CLOSED_SETS: dict[str, ClosedSet] = {}
"""Every closed set, by its schema reference."""


def wire_name(name: str) -> str:
    """Pulumi's name for a property: camelCase (``native_image`` → ``nativeImage``)."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def array_of(items: TypeSpec) -> TypeSpec:
    return {"type": "array", "items": dict(items)}


def map_of(values: TypeSpec) -> TypeSpec:
    return {"type": "object", "additionalProperties": dict(values)}


def one_of(*types: TypeSpec) -> TypeSpec:
    return {"oneOf": [dict(t) for t in types]}


@dataclass(frozen=True)
class Property:
    type: TypeSpec
    description: str
    secret: bool = False
    """Never in plaintext: marked secret on the wire, masked in diffs, encrypted in the state."""
    replaces: bool = False
    """A change replaces the resource (else it is updated in place)."""
    required: bool = False
    internal: bool = False
    """Set by the provider and its Python classes only: not in the schema other languages see."""
    made_at_check: bool = False
    """An output the provider's check adds to the inputs (a digest resolved, a policy planned): it is an
    input of the state too, so that a diff and a refresh compare it like one."""
    secret_with: tuple[str, ...] = ()
    """For an output made at check: the inputs it is made from; it is secret when one of them is."""


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    description: str
    inputs: Mapping[str, Property]
    outputs: Mapping[str, Property] = field(default_factory=dict)
    """Properties that only the provider sets (inputs are outputs too)."""
    taking_over: str = ""
    """How a program takes over such a resource that exists outside Pulumi, where an import cannot."""
    renamed: Mapping[str, str] = field(default_factory=dict)
    """Inputs renamed since an earlier version: old Python name → new. A state or program that still uses
    an old name (in either spelling) reads as the new one, with a deprecation warning, and the next update
    writes the new name."""

    @property
    def token(self) -> str:
        return f"{PACKAGE}:index:{self.name}"

    @property
    def dynamic_token(self) -> str:
        """The type token the dynamic provider of earlier versions gave: an alias of :attr:`token`."""
        return f"pulumi-python:dynamic/{PACKAGE}:{self.name}"

    @property
    def properties(self) -> dict[str, Property]:
        return {**self.inputs, **self.outputs}

    @property
    def secret_outputs(self) -> list[str]:
        return [name for name, prop in self.properties.items() if prop.secret]

    @functools.cached_property
    def old_names(self) -> dict[str, str]:
        """Each renamed input's Python name now, by its old names (Python's and the wire's)."""
        return {spelling: new for old, new in self.renamed.items() for spelling in (old, wire_name(old))}

    @functools.cached_property
    def python_names(self) -> dict[str, str]:
        """Each property's Python name, by its wire name (and a renamed input's, by its old names)."""
        return {**self.old_names, **{wire_name(name): name for name in self.properties}}

    def wire_names(self, names: Iterable[str]) -> list[str]:
        """Pulumi's names of these properties (a name the spec does not have stays as it is)."""
        return [wire_name(name) if name in self.properties else name for name in names]

    def python_names_of(self, names: Iterable[str]) -> list[str]:
        return [self.python_names.get(name, name) for name in names]

    def from_wire(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Properties by their Python names (top level only: a map's keys are data, not names)."""
        return dict(zip(self.python_names_of(values), values.values(), strict=True))

    def earlier_names(self, values: Mapping[str, Any]) -> list[str]:
        """The properties held under the names of earlier versions — the snake_case names before 0.2, the
        inputs renamed since (:attr:`renamed`) — by their names now (a state to rewrite)."""
        snake_case = [key for key in values if key in self.properties and wire_name(key) != key]
        return [*snake_case, *(self.old_names[key] for key in values if key in self.old_names)]

    def deprecated_names(self, values: Mapping[str, Any]) -> list[str]:
        """A warning for each input ``values`` gives under an old name."""
        return [
            f"{self.name}: input {key} is deprecated; use {wire_name(self.old_names[key])}"
            for key in values
            if key in self.old_names
        ]

    def to_wire(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return dict(zip(self.wire_names(values), values.values(), strict=True))

    @property
    def made_at_check(self) -> list[str]:
        return [name for name, prop in self.outputs.items() if prop.made_at_check]

    def secret_given(self, secret_inputs: set[str]) -> set[str]:
        """The properties that are secret when ``secret_inputs`` are: the spec's secrets, those inputs,
        and what check makes from one of them."""
        made = {name for name, prop in self.outputs.items() if secret_inputs & set(prop.secret_with)}
        return set(self.secret_outputs) | secret_inputs | made

    @property
    def replace_on(self) -> list[str]:
        return [name for name, prop in self.inputs.items() if prop.replaces]

    def missing(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(property, reason) for each required input that is not given."""
        return [
            (name, f"{name} is required")
            for name, prop in self.inputs.items()
            if prop.required and inputs.get(name) in (None, "")
        ]

    def type_failures(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(property, reason) for each known input of the wrong type, and each input it does not have."""
        failures = [(name, "not an input of " + self.name) for name in inputs if name not in self.inputs]
        for name, prop in self.inputs.items():
            value = inputs.get(name)
            if value is None:
                continue
            problem = _type_problem(value, prop.type)
            if problem:
                failures.append((name, problem))
        return failures


def _type_problem(value: Any, expected: TypeSpec) -> str | None:
    if is_unknown(value) or expected.get("$ref") == ANY["$ref"]:
        return None
    closed = CLOSED_SETS.get(str(expected.get("$ref")))
    if closed is not None:
        return None if value in closed.values else f"{value!r}: expected one of {', '.join(closed.values)}"
    if "oneOf" in expected:
        problems = [_type_problem(value, option) for option in expected["oneOf"]]
        return None if None in problems else " or ".join(str(p) for p in problems)
    kind = expected["type"]
    if kind == "string":
        return None if isinstance(value, str) else "expected a string"
    if kind == "boolean":
        return None if isinstance(value, bool) else "expected true or false"
    if kind == "integer":
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if whole and not isinstance(value, bool) else "expected a whole number"
    if kind == "array":
        if not isinstance(value, list):
            return "expected a list"
        for index, item in enumerate(value):
            problem = _type_problem(item, expected["items"])
            if problem:
                return f"item {index}: {problem}"
        return None
    if kind == "object":
        if not isinstance(value, dict):
            return "expected a mapping"
        for key, item in value.items():
            problem = _type_problem(item, expected.get("additionalProperties", STRING))
            if problem:
                return f"{key}: {problem}"
        return None
    raise ValueError(f"no such schema type: {kind}")  # a mistake in a spec, not in an input


WORKLOAD_TYPE = ClosedSet(
    "WorkloadType",
    "The Kubernetes workload that runs a confidential service (its chart's `--k8s-helm-workload-type`).",
    tuple(str(kind) for kind in WorkloadType),
)

PROVIDER_VERSION_PROPERTY = Property(
    STRING,
    "The version of the provider's behaviour the resource was made with (set by the provider); raising "
    "it replaces what an earlier version cannot take over.",
    replaces=True,
    internal=True,
)
COMMON_NAME = Property(
    STRING,
    "The name the key material is made under; a new name makes new keys (a replacement).",
    replaces=True,
)
