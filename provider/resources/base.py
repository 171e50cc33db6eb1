"""What the dynamic providers share.

Dynamic providers are pickled (with dill) into the Pulumi state and run in Pulumi's dynamic-provider
host, so a provider object holds nothing: no clients, no sockets, no secrets. Every method builds what
it needs from its inputs and throws it away.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ReadResult, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime import rpc

PROVIDER_KEY = "__provider"
PROVIDER_VERSION = "1"
"""Recorded as each resource's ``provider_version`` input: raising it forces replacement where a new
provider cannot take over what an old one made."""


def silent(_message: str) -> None:
    """Progress nobody hears: the dynamic-provider host has no channel to the engine."""


def to_stderr(message: str) -> None:
    """A warning where the dynamic-provider host has no channel to the engine: its stderr."""
    print(f"sconify: warning: {message}", file=sys.stderr)


class ReportsProgress:
    """A provider whose long steps report progress, or that warns: the plugin sets :attr:`progress` and
    :attr:`warning` for each request to reporters that write to the engine's log under the resource."""

    progress: Callable[[str], None] = staticmethod(silent)
    warning: Callable[[str], None] = staticmethod(to_stderr)


def inputs_of(properties: dict[str, Any]) -> dict[str, Any]:
    """Properties without the pickled provider (which must never take part in a comparison)."""
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


@dataclass(frozen=True)
class Changes:
    """What a diff found: inputs that update the resource in place, and inputs that replace it. The
    dynamic providers answer with it; the plugin names each property's kind from it (a detailed diff)."""

    updates: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)

    def result(self) -> DiffResult:
        return DiffResult(
            changes=bool(self.updates or self.replaces), replaces=self.replaces, delete_before_replace=False
        )


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


class KeyMaterialProvider(ResourceProvider):
    """A provider whose resource is key material made once on create and kept only in Pulumi's state:
    ``common_name`` (defaulting to :attr:`default_name`) and the provider version replace it, nothing
    else changes it, and read echoes the state (there is nothing outside it to read)."""

    default_name = "sconify"

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {"common_name": self.default_name, "provider_version": PROVIDER_VERSION, **inputs_of(news)}
        return CheckResult(news, required(news, ["common_name"]))

    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes:
        return Changes(replaces=changed(olds, news, ["common_name", "provider_version"]))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return self.changes(olds, news).result()

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=inputs_of(props))
