"""The components as the ``sconify`` package describes them to other languages, read from the one place
they are described: each component's ``Args`` dataclass (its fields, their annotations and docstrings)
and the component class's annotated outputs.

From those, :func:`component_schemas` gives the package schema's resources (``isComponent``) and object
types, and :func:`construct` makes a component from the inputs the engine sends (nested objects become
their dataclasses, numbers their ints, paths their ``Path``). Annotations are read as source text (every
module uses ``from __future__ import annotations``), parsed into a small set of shapes; a field whose shape
is not one of them, and is not listed in :data:`PYTHON_ONLY`, is an error here, so nothing is left out
silently.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi

from ...components.aks import POOL_SIZES, AksCluster, AksClusterArgs
from ...components.azure_postgres import AzurePostgres, AzurePostgresArgs
from ...components.cas import CasDeployment, CasDeploymentArgs, ExternalCas, ExternalCasArgs
from ...components.minikube import MinikubeCluster, MinikubeClusterArgs
from ...components.native_image import BUILDERS, DockerfileImage, DockerfileImageArgs
from ...components.postgres import InClusterPostgres, InClusterPostgresArgs
from ...components.service import ConfidentialStatefulService, ConfidentialStatefulServiceArgs
from ...components.volume import EncryptedVolume, EncryptedVolumeArgs
from ...engine.chart.cas_objects import CAS_SERVICE_TYPES
from ...engine.errors import ArgumentsError
from ..resources.spec import (
    ANY,
    BOOLEAN,
    INTEGER,
    PACKAGE,
    STRING,
    WORKLOAD_TYPE,
    ClosedSet,
    wire_name,
)

COMPONENTS: dict[str, tuple[type[Any], type[Any]]] = {
    component.__name__: (component, args)
    for component, args in (
        (ConfidentialStatefulService, ConfidentialStatefulServiceArgs),
        (EncryptedVolume, EncryptedVolumeArgs),
        (CasDeployment, CasDeploymentArgs),
        (ExternalCas, ExternalCasArgs),
        (MinikubeCluster, MinikubeClusterArgs),
        (AksCluster, AksClusterArgs),
        (DockerfileImage, DockerfileImageArgs),
        (InClusterPostgres, InClusterPostgresArgs),
        (AzurePostgres, AzurePostgresArgs),
    )
}
PYTHON_ONLY = {
    "ConfidentialStatefulServiceArgs.identity": "a CreatorIdentity object; the service makes its own",
    "MinikubeCluster.provider": "a Kubernetes provider object; make one from `kubeconfig`",
    "AksCluster.provider": "a Kubernetes provider object; make one from `kubeconfig`",
    "ConfidentialStatefulService.volumes": "the EncryptedVolume children, by name",
    "MinikubeCluster.platform": "a class constant",
    "AksCluster.platform": "a class constant",
    "DockerfileImage.context_digest": "known only while the program runs",
}
"""What the schema leaves out, and why."""

CLOSED_FIELDS = {
    "ConfidentialStatefulServiceArgs.workload_type": WORKLOAD_TYPE,
    "AksClusterArgs.confidential_pool": ClosedSet(
        "ConfidentialPool",
        "The kind of confidential node pool: SGX enclaves or confidential VMs.",
        tuple(POOL_SIZES),
    ),
    "DockerfileImageArgs.builder": ClosedSet("Builder", "What builds and pushes the image.", BUILDERS),
    "CasDeploymentArgs.service_type": ClosedSet(
        "CasServiceType", "How the CAS's client API is exposed outside the cluster.", CAS_SERVICE_TYPES
    ),
}
"""Fields whose strings come from a closed set (each an enum in the schema), with their sets."""


@dataclass(frozen=True)
class Endpoint:
    """A CAS as another language names one (``sconify:index:CasEndpoint``): the three outputs every CAS
    component has (:class:`~.cas.CasEndpoint`)."""

    address: pulumi.Input[str]
    """The client API (`host:port`) as the machine running Pulumi reaches it."""
    attestation_address: pulumi.Input[str]
    """The attestation API (`host:port`) as confidential pods reach it."""
    ca_certificate: pulumi.Input[str]
    """The CA certificate (PEM) both are pinned to."""

    def __post_init__(self) -> None:
        # What the service reads of a CAS are Outputs (:class:`~.cas.CasEndpoint`), plain values or not.
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, pulumi.Output.from_input(getattr(self, field.name)))


_NAMED_ALIASES = {"CasEndpoint": Endpoint}
"""Types named in annotations that other languages see as another class."""


@dataclass(frozen=True)
class Shape:
    """What a field is: its schema type, how an input becomes the Python value, whether it may be an
    eventual value (an ``Input``) and whether it may be left out."""

    schema: Mapping[str, Any]
    convert: Callable[[Any], Any]
    plain: bool = True
    optional: bool = False
    named: tuple[type[Any], ...] = ()
    """Dataclasses this shape refers to (they become object types)."""


def _same(value: Any) -> Any:
    return value


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) else value


_SCALARS: dict[str, Shape] = {
    "str": Shape(STRING, _same),
    "bool": Shape(BOOLEAN, _same),
    "int": Shape(INTEGER, _whole),
    "float": Shape({"type": "number"}, _same),
    "Any": Shape(ANY, _same),
    "Path": Shape(STRING, _path),
}


class UnexpressibleError(TypeError):
    """An annotation that has no schema type."""


Result = TypeVar("Result")


def _per_class(function: Callable[[type[Any]], Result]) -> Callable[[type[Any]], Result]:
    """``function`` computed once per class (what it reads of a class does not change while it runs)."""
    return cast(Callable[[type[Any]], Result], functools.cache(function))


def type_token(cls: type[Any]) -> str:
    name = next((alias for alias, target in _NAMED_ALIASES.items() if target is cls), cls.__name__)
    return f"{PACKAGE}:index:{name}"


def shape(annotation: str, module: str) -> Shape:
    return _shape(ast.parse(annotation, mode="eval").body, vars(sys.modules[module]))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    raise UnexpressibleError(ast.unparse(node))


def _shape(node: ast.expr, scope: Mapping[str, Any]) -> Shape:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        options = [
            n for n in (node.left, node.right) if not (isinstance(n, ast.Constant) and n.value is None)
        ]
        if len(options) != 1:
            raise UnexpressibleError(ast.unparse(node))
        return dataclasses.replace(_shape(options[0], scope), optional=True)
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        arguments = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer in ("Input", "Output"):
            return dataclasses.replace(_shape(arguments[0], scope), plain=False)
        if outer in ("list", "Sequence", "tuple"):
            item = _shape(arguments[0], scope)
            container = tuple if outer == "tuple" else list
            return Shape(
                {"type": "array", "items": dict(item.schema)},
                lambda value: container(item.convert(v) for v in value) if isinstance(value, list) else value,
                named=item.named,
            )
        if outer in ("dict", "Mapping"):
            item = _shape(arguments[1], scope)
            return Shape(
                {"type": "object", "additionalProperties": dict(item.schema)},
                lambda value: (
                    {k: item.convert(v) for k, v in value.items()} if isinstance(value, dict) else value
                ),
                named=item.named,
            )
        raise UnexpressibleError(ast.unparse(node))
    name = _name(node)
    if name in _SCALARS:
        return _SCALARS[name]
    cls = _NAMED_ALIASES.get(name) or scope.get(name)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return Shape(
            {"$ref": f"#/types/{type_token(cls)}"}, lambda value: from_inputs(cls, value), named=(cls,)
        )
    raise UnexpressibleError(ast.unparse(node))


@_per_class  # a class's source is read once, not at every Construct
def docstrings(cls: type[Any]) -> dict[str, str]:
    """The attribute docstrings of a class body: the string that follows each annotated name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    found = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign | ast.Assign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            target = statement.target if isinstance(statement, ast.AnnAssign) else statement.targets[0]
            if isinstance(target, ast.Name):
                found[target.id] = inspect.cleandoc(following.value.value)
    return found


@_per_class
def fields(cls: type[Any]) -> dict[str, tuple[Shape, str, bool]]:
    """Each dataclass field the schema has: its shape, its description, and whether it is required."""
    described = docstrings(cls)
    result = {}
    for field in dataclasses.fields(cls):
        if f"{cls.__name__}.{field.name}" in PYTHON_ONLY:
            continue
        annotation = field.type if isinstance(field.type, str) else field.type.__name__
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        closed = CLOSED_FIELDS.get(f"{cls.__name__}.{field.name}")
        found = Shape(closed.ref, _same) if closed else shape(annotation, cls.__module__)
        result[field.name] = (found, described.get(field.name, ""), required)
    return result


COMPONENTS_PACKAGE = "pulumi_sconify.components"
"""Where the components are: an annotation of a class from elsewhere (Pulumi's own) is not an output."""


@_per_class
def outputs(component: type[Any]) -> dict[str, tuple[Shape, str]]:
    """Each output of a component class: its annotated attributes (and those it sets from a class
    constant of a dataclass), with their docstrings."""
    described = docstrings(component)
    result = {}
    annotations = {
        name: text
        for klass in reversed(component.__mro__)
        for name, text in getattr(klass, "__annotations__", {}).items()
        if klass.__module__.startswith(COMPONENTS_PACKAGE)
    }
    for name, constant in vars(component).items():
        if dataclasses.is_dataclass(constant) and name not in annotations:
            annotations[name] = type(constant).__name__
    for name, annotation in annotations.items():
        if f"{component.__name__}.{name}" in PYTHON_ONLY:
            continue
        result[name] = (shape(str(annotation), component.__module__), described.get(name, ""))
    return result


def from_inputs(cls: type[Any], inputs: Any) -> Any:
    """A dataclass made from the engine's inputs (a mapping by the fields' wire names), each field
    converted by its shape."""
    if not isinstance(inputs, dict):
        return inputs  # an eventual value: the dataclass accepts it as an Input
    known = fields(cls)
    by_wire_name = {wire_name(name): name for name in known}
    unexpected = sorted(set(inputs) - set(by_wire_name))
    if unexpected:
        raise ArgumentsError(cls.__name__, [f"no input {', '.join(unexpected)}"])
    return cls(
        **{
            by_wire_name[key]: known[by_wire_name[key]][0].convert(value)
            for key, value in inputs.items()
            if value is not None
        }
    )


_ROLE = re.compile(r":(?:class|attr|data|func|meth|mod):`~?\.?(?:[\w.]*\.)?(\w+)`")


def markdown(docstring: str) -> str:
    """A docstring as other languages' documentation shows it: Markdown, not reStructuredText, and the
    schema's words (``None`` is an input left unset)."""
    text = _ROLE.sub(r"`\1`", inspect.cleandoc(docstring)).replace("``", "`")
    return re.sub(r"\bNone\b", "unset", text)


def _property(found: Shape, description: str) -> dict[str, Any]:
    described: dict[str, Any] = {**found.schema, "description": markdown(description)}
    if found.plain and "$ref" not in found.schema:
        described["plain"] = True
    if "Secret." in description or "Secret:" in description:  # how every docstring here says it
        described["secret"] = True
    return described


def component_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The components (schema resources) and the object types their inputs and outputs use."""
    resources: dict[str, Any] = {}
    named: dict[type[Any], None] = {}
    for name, (component, args) in COMPONENTS.items():
        inputs = fields(args)
        produced = outputs(component)
        for found in [*(f for f, _, _ in inputs.values()), *(f for f, _ in produced.values())]:
            named.update(dict.fromkeys(found.named))
        resources[f"{PACKAGE}:index:{name}"] = {
            "isComponent": True,
            "description": markdown(component.__doc__ or ""),
            "inputProperties": {wire_name(key): _property(f, d) for key, (f, d, _) in sorted(inputs.items())},
            "requiredInputs": sorted(wire_name(key) for key, (_, _, required) in inputs.items() if required),
            "properties": {wire_name(key): _property(f, d) for key, (f, d) in sorted(produced.items())},
            "required": sorted(wire_name(key) for key, (f, _) in produced.items() if not f.optional),
        }
    types: dict[str, Any] = {}
    pending = list(named)
    while pending:  # object types, and the object types they use
        cls = pending.pop()
        token = type_token(cls)
        if token in types:
            continue
        properties = fields(cls)
        for found, *_ in properties.values():
            pending.extend(found.named)
        types[token] = {
            "type": "object",
            "description": markdown(cls.__doc__ or ""),
            "properties": {wire_name(key): _property(f, d) for key, (f, d, _) in sorted(properties.items())},
            "required": sorted(wire_name(key) for key, (_, _, required) in properties.items() if required),
        }
    return resources, dict(sorted(types.items()))


@dataclass(frozen=True)
class Constructed:
    urn: pulumi.Output[str]
    state: dict[str, Any]


def state_value(value: Any) -> Any:
    """An output as the engine stores it: dataclasses as mappings by their fields' wire names (their
    Outputs kept); a mapping's keys are data, kept as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {wire_name(f.name): state_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [state_value(item) for item in value]
    if isinstance(value, dict):
        return {key: state_value(item) for key, item in value.items()}
    return value


def construct(
    name: str, component_name: str, inputs: Mapping[str, Any], options: pulumi.ResourceOptions
) -> Constructed:
    """Make the component ``component_name`` as a program in another language asked for it."""
    component, args = COMPONENTS[component_name]
    instance = component(name, from_inputs(args, dict(inputs)), options)
    state = {wire_name(key): state_value(getattr(instance, key, None)) for key in outputs(component)}
    return Constructed(instance.urn, {key: value for key, value in state.items() if value is not None})
