"""The ``sconify`` provider: the package's custom resources, served to the engine over gRPC.

Each resource's logic lives below (``pulumi_sconify.provider.resources``, behind its own small protocol,
``ResourceLogic``); the plugin translates between the engine and it: the schema, Check failures for inputs of
the wrong type, a detailed diff (each changed property with its kind, update or replace), Read for import,
the engine's log for progress and warnings. A state written by the dynamic providers of versions before 0.2
reads back unchanged (its pickled ``__provider`` is ignored) and is rewritten by the next update.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
    ConfigureRequest,
    ConfigureResponse,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    DiffRequest,
    DiffResponse,
    GetSchemaRequest,
    GetSchemaResponse,
    PropertyDiff,
    PropertyDiffKind,
    Provider,
    ReadRequest,
    ReadResponse,
    UpdateRequest,
    UpdateResponse,
)

from ...components.naming import STACK_SETTINGS
from ..resources.base import Changes, CheckResult, KeyMaterialProvider, ReportsProgress, ResourceLogic
from ..resources.spec import ResourceSpec
from .kinds import KINDS, Kind
from .progress import EngineLog
from .schema import package_schema


class UnknownResourceTypeError(ValueError):
    """A type token this package does not define."""


class NotImportableError(ValueError):
    """Key material exists only in Pulumi's state: there is nothing outside it to import."""


def detailed_diff(changes: Changes, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, PropertyDiff]:
    """Each changed property with its kind: added, deleted or updated, and whether it replaces."""
    kinds = {
        (False, "add"): PropertyDiffKind.ADD,
        (False, "delete"): PropertyDiffKind.DELETE,
        (False, "update"): PropertyDiffKind.UPDATE,
        (True, "add"): PropertyDiffKind.ADD_REPLACE,
        (True, "delete"): PropertyDiffKind.DELETE_REPLACE,
        (True, "update"): PropertyDiffKind.UPDATE_REPLACE,
    }
    result = {}
    for replaces, names in ((False, changes.updates), (True, changes.replaces)):
        for name in names:
            how = "add" if olds.get(name) is None else "delete" if news.get(name) is None else "update"
            result[name] = PropertyDiff(kinds[(replaces, how)], input_diff=True)
    return result


class SconifyProvider(Provider):
    """The provider. ``engine`` is the engine's address, where progress goes (None: nowhere)."""

    def __init__(self, version: str, engine: str | None = None) -> None:
        self._version = version
        self._log = EngineLog(engine) if engine else None

    def _kind(self, token: str) -> Kind:
        kind = KINDS.get(token)
        if kind is None:
            raise UnknownResourceTypeError(
                f"{token}: not a resource of the sconify package ({', '.join(sorted(KINDS))})"
            )
        return kind

    def _logic(self, kind: Kind, urn: str) -> ResourceLogic:
        logic = kind.logic()
        if isinstance(logic, ReportsProgress):
            logic.progress = self._log.progress(urn) if self._log else _unheard
            logic.warning = self._log.warning(urn) if self._log else _unheard
        return logic

    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        return GetSchemaResponse(json.dumps(package_schema(self._version), indent=2, sort_keys=True))

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        # The engine hands the default provider every `sconify:*` key of the stack's configuration. Only
        # the programs' own settings are known; every other setting is an input of the resource needing it.
        unexpected = sorted(key for key in request.new_inputs if key not in {"version", *STACK_SETTINGS})
        return CheckResponse(
            inputs=request.new_inputs,
            failures=[
                CheckFailure(
                    key, f"not a setting of the sconify package ({', '.join(sorted(STACK_SETTINGS))})"
                )
                for key in unexpected
            ],
        )

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        # Create and Update are never called in a preview: the resource logic builds and uploads.
        return ConfigureResponse(accept_secrets=True, supports_preview=False)

    async def check(self, request: CheckRequest) -> CheckResponse:
        kind = self._kind(request.type)
        news = kind.plain(request.new_inputs)
        type_failures = kind.spec.type_failures(news)
        if type_failures:  # the resource's own checks assume the types: say what else is missing, stop
            return CheckResponse(
                inputs=request.new_inputs,
                failures=[
                    kind.failure(name, reason) for name, reason in [*type_failures, *kind.spec.missing(news)]
                ],
            )
        logic = self._logic(kind, request.urn)
        if isinstance(logic, ReportsProgress):
            for deprecation in kind.spec.deprecated_names(request.new_inputs):
                logic.warning(deprecation)
        checked: CheckResult = await asyncio.to_thread(logic.check, kind.plain(request.old_inputs), news)
        return CheckResponse(
            inputs=kind.wire(checked.inputs, kind.secret(request.new_inputs)),
            failures=[kind.failure(f.property, f.reason) for f in checked.failures],
        )

    async def diff(self, request: DiffRequest) -> DiffResponse:
        kind = self._kind(request.type)
        olds, news = kind.plain(request.old_state), kind.plain(request.new_inputs)
        ignored_changes = kind.spec.python_names_of(request.ignore_changes)
        for ignored in ignored_changes:  # the program's ignoreChanges: keep the old value
            if ignored in olds:
                news[ignored] = olds[ignored]
            else:
                news.pop(ignored, None)
        logic = self._logic(kind, request.urn)
        changes = await asyncio.to_thread(logic.changes, olds, news)
        renamed = kind.spec.earlier_names(request.old_state)
        if renamed and not (changes.updates or changes.replaces):
            # A state of the snake_case era: the same resource, but other resources (and other languages)
            # read its outputs by the new names, which only an update writes. Update changes nothing else.
            return DiffResponse(
                changes=True,
                diffs=kind.spec.wire_names(renamed),
                detailed_diff={
                    name: PropertyDiff(PropertyDiffKind.UPDATE, input_diff=False)
                    for name in kind.spec.wire_names(renamed)
                },
                delete_before_replace=False,
            )
        return DiffResponse(
            changes=bool(changes.updates or changes.replaces),
            replaces=kind.spec.wire_names(changes.replaces),
            diffs=kind.spec.wire_names([*changes.updates, *changes.replaces]),
            detailed_diff=kind.spec.to_wire(detailed_diff(changes, olds, news)),
            delete_before_replace=False,
        )

    async def create(self, request: CreateRequest) -> CreateResponse:
        kind = self._kind(request.type)
        logic = self._logic(kind, request.urn)
        created = await asyncio.to_thread(logic.create, kind.plain(request.properties))
        return CreateResponse(created.id, kind.wire(created.outs, kind.secret(request.properties)))

    async def read(self, request: ReadRequest) -> ReadResponse:
        kind = self._kind(request.type)
        properties = kind.plain(request.properties)
        if not properties:  # an import (`pulumi import`, the `import` option): the engine sends the id alone
            if issubclass(kind.logic, KeyMaterialProvider):
                raise NotImportableError(
                    f"{kind.spec.name} cannot be imported: its keys exist only in the state that made them"
                )
            properties = kind.plain(request.inputs)
            if not properties:
                how = (
                    f"; to take {request.resource_id} over, {kind.spec.taking_over}"
                    if kind.spec.taking_over
                    else ""
                )
                raise NotImportableError(
                    f"{kind.spec.name} cannot be imported by id: reading it needs the address, CA and "
                    f"credentials that are its inputs, and an import gives the provider the id alone{how}"
                )
        logic = self._logic(kind, request.urn)
        read = await asyncio.to_thread(logic.read, request.resource_id, properties)
        secret = kind.secret(request.properties, request.inputs)
        inputs = read.inputs if read.inputs is not None else _inputs(kind.spec, read.outs or {})
        return ReadResponse(
            read.id or "",
            kind.wire(read.outs or {}, secret) if read.id else {},
            kind.wire(inputs, secret) if read.id else {},
        )

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        kind = self._kind(request.type)
        logic = self._logic(kind, request.urn)
        olds, news = kind.plain(request.olds), kind.plain(request.news)
        secret = kind.secret(request.olds, request.news)
        changes = await asyncio.to_thread(logic.changes, olds, news)
        if not (changes.updates or changes.replaces):  # only the names of an earlier version's state
            return UpdateResponse(kind.wire(olds, secret))
        updated = await asyncio.to_thread(logic.update, request.resource_id, olds, news)
        return UpdateResponse(kind.wire(updated.outs, secret))

    async def delete(self, request: DeleteRequest) -> None:
        kind = self._kind(request.type)
        logic = self._logic(kind, request.urn)
        await asyncio.to_thread(logic.delete, request.resource_id, kind.plain(request.properties))


def _unheard(_message: str) -> None:
    """Where messages go when the plugin runs without an engine (tests of the logic alone)."""


def _inputs(spec: ResourceSpec, outputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs within a resource's outputs (what a refresh leaves as its inputs): with what check made,
    as check put it among the inputs."""
    return {
        name: value for name, value in outputs.items() if name in spec.inputs or name in spec.made_at_check
    }


__all__ = ["KINDS", "SconifyProvider"]
