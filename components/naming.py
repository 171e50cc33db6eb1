"""How a component names its children.

The engine makes a resource's URN from its parent's *type* and its own name, so two components of one type
whose children had fixed names (``image``, ``claim``) would give two resources one URN, which ``pulumi up``
refuses. Every child is therefore named after its component (``counter-image``); an alias to the bare name
it had before keeps the resources of stacks made by earlier versions.
"""

from __future__ import annotations

from typing import Any

import pulumi


class Children:
    """Names and options for the children of one component."""

    def __init__(self, parent: pulumi.Resource, parent_name: str) -> None:
        self._parent = parent
        self._parent_name = parent_name

    def name(self, child: str) -> str:
        return f"{self._parent_name}-{child}"

    def options(self, child: str, **options: Any) -> pulumi.ResourceOptions:
        """Options of the child ``child``: parented, aliased to its bare name, plus ``options``."""
        return pulumi.ResourceOptions(parent=self._parent, aliases=[pulumi.Alias(name=child)], **options)

    def __call__(self, child: str, **options: Any) -> tuple[str, pulumi.ResourceOptions]:
        return self.name(child), self.options(child, **options)
