"""How a component names its children.

The engine makes a resource's URN from its parent's *type* and its own name, so two components of one type
whose children had fixed names (``image``, ``claim``) gave two resources one URN, which ``pulumi up``
refuses. Every child is therefore named after its component (``counter-image``).

Stacks made before (version 0.1) hold children under the bare names. Setting the stack's configuration
``sconify:legacyChildNames`` to ``true`` gives every child an alias to its bare name, so ``pulumi up`` renames
those resources instead of replacing them. It is a stack setting, not a default, because an alias to a bare
name is ambiguous: two components of one type would give the engine one alias twice, which it refuses — and
such a program could not have been deployed by version 0.1 anyway.
"""

from __future__ import annotations

from typing import Any

import pulumi

LEGACY_SETTING = "legacyChildNames"
"""``pulumi config set sconify:legacyChildNames true``: alias children to the names version 0.1 gave them."""

STACK_SETTINGS = {
    LEGACY_SETTING: "Set to true in a stack made by version 0.1: every child of a component is aliased to "
    "the bare name that version gave it, so `pulumi up` renames those resources instead of replacing them.",
}
"""The package's stack configuration (``sconify:NAME``), each with its description. The engine hands these
keys to the ``sconify`` provider too, which accepts exactly these (its schema's ``config``)."""


def legacy_child_names() -> bool:
    return pulumi.Config("sconify").get_bool(LEGACY_SETTING) or False


class Children:
    """Names and options for the children of one component."""

    def __init__(self, parent: pulumi.Resource, parent_name: str) -> None:
        self._parent = parent
        self._parent_name = parent_name
        self._legacy = legacy_child_names()

    def name(self, child: str) -> str:
        return f"{self._parent_name}-{child}"

    def options(self, child: str, **options: Any) -> pulumi.ResourceOptions:
        """Options of the child ``child``: parented (aliased to its bare name in a legacy stack), plus
        ``options``."""
        aliases = [pulumi.Alias(name=child)] if self._legacy else None
        return pulumi.ResourceOptions(parent=self._parent, aliases=aliases, **options)

    def __call__(self, child: str, **options: Any) -> tuple[str, pulumi.ResourceOptions]:
        return self.name(child), self.options(child, **options)
