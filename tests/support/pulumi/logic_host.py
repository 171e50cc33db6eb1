"""The resources' logic driven in process, with every property through Pulumi's wire encoding on the way in
and out (so secrets and unknowns reach the logic as the plugin hands them), answered in the engine's shapes:
a check's inputs and failures, a diff's kind and replaced properties."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import proto, rpc

from pulumi_sconify.provider.resources.base import PROVIDER_KEY, ResourceLogic, inputs_of

UNKNOWN = rpc.UNKNOWN
DIFF_NONE = proto.DiffResponse.DIFF_NONE
DIFF_SOME = proto.DiffResponse.DIFF_SOME


def wire(properties: dict[str, Any], keep_unknowns: bool = True) -> dict[str, Any]:
    """``properties`` as they come back from the engine's encoding."""
    struct = asyncio.run(rpc.serialize_properties(properties, {}))
    return dict(rpc.deserialize_properties(struct, keep_unknowns))


@dataclass
class Created:
    id: str
    outs: dict[str, Any]


@dataclass
class Diff:
    changes: int
    replaces: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


class LogicHost:
    """One resource kind's logic (``kind`` names it in messages only)."""

    def __init__(self, logic: ResourceLogic, kind: str) -> None:
        self.logic = logic
        self.kind = kind

    def __enter__(self) -> LogicHost:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def check(
        self, olds: dict[str, Any], news: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        checked = self.logic.check(wire(olds), wire(news))
        return wire(checked.inputs), [(f.property, f.reason) for f in checked.failures]

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        changes = self.logic.changes(wire(olds), wire(news))
        if not (changes.updates or changes.replaces):
            return Diff(DIFF_NONE)
        return Diff(DIFF_SOME, list(changes.replaces), [*changes.updates, *changes.replaces])

    def create(self, inputs: dict[str, Any]) -> Created:
        created = self.logic.create(wire(inputs, keep_unknowns=False))
        return Created(created.id, wire(created.outs, keep_unknowns=False))

    def read(self, id_: str, outs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        read = self.logic.read(id_, wire(outs, keep_unknowns=False))
        inputs = read.inputs if read.inputs is not None else read.outs
        return read.id, wire(read.outs, keep_unknowns=False), wire(inputs, keep_unknowns=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        updated = self.logic.update(id_, wire(olds, keep_unknowns=False), wire(news, keep_unknowns=False))
        return wire(updated.outs, keep_unknowns=False)

    def delete(self, id_: str, outs: dict[str, Any]) -> None:
        self.logic.delete(id_, wire(outs, keep_unknowns=False))


def strip(properties: dict[str, Any]) -> dict[str, Any]:
    """Properties without the pickled provider a state of a version before 0.2 carries."""
    return inputs_of(properties)


__all__ = ["DIFF_NONE", "DIFF_SOME", "PROVIDER_KEY", "UNKNOWN", "Created", "Diff", "LogicHost", "strip"]
