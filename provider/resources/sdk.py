"""The Python classes' base: a custom resource of the ``sconify`` plugin.

Each class registers its spec's type token (``sconify:index:<Name>``) with the plugin of this package's
version, marks the spec's secret outputs, and carries an alias to the token the dynamic provider of
earlier versions gave it — so a stack made by one of them is taken over in place (the plugin reads its
state unchanged; see ``plugin/provider.py``), not replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pulumi

from ...engine.version import __version__
from .base import PROVIDER_VERSION
from .spec import ResourceSpec


def _legacy_aliases(spec: ResourceSpec, opts: pulumi.ResourceOptions | None) -> list[pulumi.Alias]:
    """The dynamic token, alone and with each rename the caller aliases (a stack of version 0.1 has both
    the old token and the old name)."""
    renamed = []
    for alias in (opts.aliases or []) if opts else []:
        # An Alias leaves unset fields as `...` (the resource's own value): a rename sets a name only.
        unset: Any = ...
        if isinstance(alias, pulumi.Alias) and alias.type_ is unset and isinstance(alias.name, str):
            renamed.append(pulumi.Alias(name=alias.name, parent=alias.parent, type_=spec.dynamic_token))
    return [pulumi.Alias(type_=spec.dynamic_token), *renamed]


def take_renamed(spec: ResourceSpec, inputs: dict[str, Any], renamed: Mapping[str, Any]) -> None:
    """Put the inputs a program gives under an old name (:attr:`~.spec.ResourceSpec.renamed`) under the new
    one, with a deprecation warning; an unknown name is a ``TypeError``, as for any function."""
    for old, value in renamed.items():
        new = spec.renamed.get(old)
        if new is None:
            raise TypeError(f"{spec.name}() got an unexpected keyword argument {old!r}")
        if inputs.get(new) not in (None, ""):
            raise TypeError(f"{spec.name}(): {old} and {new} name one input; give {new} only")
        pulumi.log.warn(f"{spec.name}: {old}= is deprecated; use {new}=")
        inputs[new] = value


class SconifyResource(pulumi.CustomResource):
    """Inputs and attributes carry Python's names; the engine sees Pulumi's camelCase (the spec's
    :func:`~.spec.wire_name`), as a generated SDK does, translating top-level names only (a map's keys are
    data). A name the spec does not have is left as it is, so a state of the snake_case era reads back."""

    _spec: ResourceSpec

    def translate_input_property(self, prop: str) -> str:
        (wired,) = self._spec.wire_names([prop])
        return wired

    def translate_output_property(self, prop: str) -> str:
        return self._spec.python_names.get(prop, prop)

    def __init__(
        self,
        spec: ResourceSpec,
        resource_name: str,
        inputs: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self._spec = spec
        own = pulumi.ResourceOptions(
            version=__version__,
            aliases=_legacy_aliases(spec, opts),
            additional_secret_outputs=spec.secret_outputs,
        )
        super().__init__(
            spec.token,
            resource_name,
            {**dict.fromkeys(spec.outputs), **inputs},
            pulumi.ResourceOptions.merge(opts, own),
        )


class KeyMaterialResource(SconifyResource):
    """Key material the plugin makes on create and keeps only in the state (a CA, a recovery key, a client
    identity): its one input is the name it is made under, and a new name makes new keys."""

    resource_spec: ClassVar[ResourceSpec]
    default_name: ClassVar[str]

    def __init__(
        self,
        resource_name: str,
        common_name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = {"common_name": common_name or self.default_name, "provider_version": PROVIDER_VERSION}
        super().__init__(self.resource_spec, resource_name, inputs, opts)
