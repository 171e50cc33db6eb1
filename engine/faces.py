"""A package's face, loaded lazily: the public names of a room, each from the module that defines it,
imported when first used (PEP 562), so that importing a package for one name does not import all its
rooms' dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(package: str, face: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: each name of ``face`` from its module (relative to the package)."""

    def attribute(name: str) -> Any:
        module = face.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return attribute
