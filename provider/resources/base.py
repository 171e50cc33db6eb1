"""What the resources' logic shares: its protocol (:class:`ResourceLogic`), the plain results it returns,
and helpers.

The logic of each resource is a class the plugin makes anew for each request (``plugin/provider.py``): it
holds nothing — no clients, no sockets, no secrets — and builds what it needs from its inputs. Its methods
take and return Python values by the spec's Python names; the plugin translates them to and from the
engine's properties (camelCase, secrets marked, unknowns).
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

PROVIDER_KEY = "__provider"
"""The pickled dynamic provider that states of versions before 0.2 keep among their properties: never
read, and never compared."""
PROVIDER_VERSION = "1"
"""Recorded as each resource's ``provider_version`` input: raising it forces replacement where a new
provider cannot take over what an old one made."""


@dataclass(frozen=True)
class CheckFailure:
    """An input that is not acceptable, by its Python name, and why (never its value)."""

    property: str
    reason: str


@dataclass(frozen=True)
class CheckResult:
    """The inputs as checked (defaults filled in, what check makes added) and what is wrong with them."""

    inputs: dict[str, Any]
    failures: list[CheckFailure] = field(default_factory=list)


@dataclass(frozen=True)
class CreateResult:
    id: str
    outs: dict[str, Any]


@dataclass(frozen=True)
class ReadResult:
    """What exists now (an empty ``id``: nothing, the engine drops the resource), and the inputs that would
    make it (``None``: the outputs' inputs)."""

    id: str
    outs: dict[str, Any]
    inputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class UpdateResult:
    outs: dict[str, Any]


@dataclass(frozen=True)
class Changes:
    """What a diff found: inputs that update the resource in place, and inputs that replace it. The plugin
    names each property's kind from it (a detailed diff)."""

    updates: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)


class ResourceLogic(ABC):
    """One resource's logic: check its inputs, say what changed, create, read, update and delete it."""

    @abstractmethod
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult: ...

    @abstractmethod
    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes: ...

    @abstractmethod
    def create(self, props: dict[str, Any]) -> CreateResult: ...

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """By default the state is what exists (key material lives only there)."""
        return ReadResult(id_, inputs_of(props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """By default an update only writes the new inputs into the state."""
        return UpdateResult({**inputs_of(olds), **inputs_of(news)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:  # noqa: B027 - a default, not a stub
        """By default nothing exists outside the state to delete."""


def unheard(_message: str) -> None:
    """A report nobody hears: the logic outside the plugin (tests, scripts)."""


class ReportsProgress:
    """Logic whose long steps report progress, or that warns: the plugin sets :attr:`progress` and
    :attr:`warning` for each request to reporters that write to the engine's log under the resource."""

    progress: Callable[[str], None] = staticmethod(unheard)
    warning: Callable[[str], None] = staticmethod(unheard)


def inputs_of(properties: dict[str, Any]) -> dict[str, Any]:
    """Properties without the pickled provider of a state before 0.2 (never part of a comparison)."""
    return {key: value for key, value in properties.items() if key != PROVIDER_KEY}


def whole_numbers(value: Any) -> Any:
    """Numbers arrive from the engine as floats: turn integral floats back into ints, recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def is_unknown(value: Any) -> bool:
    """A preview-time unknown: the host hands Check and Diff an ``Unknown`` (the wire form is a sentinel
    string, which is recognised too)."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def changed(olds: dict[str, Any], news: dict[str, Any], keys: list[str]) -> list[str]:
    return [key for key in keys if olds.get(key) != news.get(key)]


def required(news: dict[str, Any], names: list[str]) -> list[CheckFailure]:
    return [CheckFailure(name, f"{name} is required") for name in names if news.get(name) in (None, "")]


@contextmanager
def private_files(**contents: str) -> Iterator[dict[str, Path]]:
    """Write PEMs to a private temporary directory (mode 700, files 600) for as long as they are needed."""
    with tempfile.TemporaryDirectory(prefix="sconify-") as directory:
        paths = {}
        for name, content in contents.items():
            path = Path(directory) / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as stream:
                stream.write(content)
            paths[name] = path
        yield paths


class KeyMaterialProvider(ResourceLogic):
    """A provider whose resource is key material made once on create and kept only in Pulumi's state:
    ``common_name`` (defaulting to :attr:`default_name`) and the provider version replace it, nothing
    else changes it, and read echoes the state (there is nothing outside it to read)."""

    default_name = "sconify"

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {"common_name": self.default_name, "provider_version": PROVIDER_VERSION, **inputs_of(news)}
        return CheckResult(news, required(news, ["common_name"]))

    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes:
        return Changes(replaces=changed(olds, news, ["common_name", "provider_version"]))
