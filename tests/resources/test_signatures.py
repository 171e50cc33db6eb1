"""The Python classes' signatures follow their specs: each resource's inputs are written once, in its spec
(``provider/resources/spec.py``), and the hand-written ``__init__`` of its class is checked against it here —
the same inputs, and a parameter without a default exactly where the spec requires the input."""

from __future__ import annotations

import importlib
import inspect

import pytest

from pulumi_sconify.provider.resources import (
    CasImage,
    CasKeys,
    CasRecoveryKey,
    CasSession,
    CreatorIdentity,
    SconifiedImage,
)
from pulumi_sconify.provider.resources.sdk import SconifyResource
from pulumi_sconify.provider.resources.spec import ResourceSpec

NOT_INPUTS = {"self", "resource_name", "opts", "renamed"}


def spec_of(resource: type[SconifyResource]) -> ResourceSpec:
    return importlib.import_module(resource.__module__).SPEC  # type: ignore[no-any-return]


def parameters(resource: type[SconifyResource]) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(resource.__init__)
    return {name: p for name, p in signature.parameters.items() if name not in NOT_INPUTS}


@pytest.mark.parametrize(
    "resource",
    [SconifiedImage, CasSession, CasImage, CasKeys, CasRecoveryKey, CreatorIdentity],
    ids=lambda r: r.__name__,
)
def test_a_class_takes_its_specs_inputs(resource: type[SconifyResource]) -> None:
    spec = spec_of(resource)
    given = parameters(resource)
    inputs = {name for name, prop in spec.inputs.items() if not prop.internal}
    assert set(given) == inputs
    for name, parameter in given.items():
        has_default = parameter.default is not inspect.Parameter.empty
        # A required input renamed since 0.2 has a default of None: its old name may give it instead.
        renamed = name in spec.renamed.values() and parameter.default is None
        assert has_default != spec.inputs[name].required or renamed, name


def test_a_mismatch_would_be_found() -> None:
    def probe(self: object, resource_name: str, *, target: str, extra: int = 0) -> None: ...

    names = {n for n in inspect.signature(probe).parameters if n not in NOT_INPUTS}
    assert names != {name for name, prop in spec_of(SconifiedImage).inputs.items() if not prop.internal}
