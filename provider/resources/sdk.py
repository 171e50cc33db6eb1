"""The Python classes' base: a custom resource of the ``sconify`` plugin.

Each class registers its spec's type token (``sconify:index:<Name>``) with the plugin of this package's
version, marks the spec's secret outputs, and carries an alias to the token the dynamic provider of
earlier versions gave it — so a stack made by one of them is taken over in place (the plugin reads its
state unchanged; see ``plugin/provider.py``), not replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from ...engine.version import __version__
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


class SconifyResource(pulumi.CustomResource):
    def __init__(
        self,
        spec: ResourceSpec,
        resource_name: str,
        inputs: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
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
