"""The resources the plugin serves, each with its description (spec) and its logic, and the boundary
between the engine's properties (camelCase, secrets marked) and the logic's (Python names, plain values).
The provider serves them; the schema describes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.provider import CheckFailure

from ..resources import cas_image, cas_keys, identity, image, recovery_key, session
from ..resources.base import ResourceLogic
from ..resources.spec import ResourceSpec
from .values import plain_map, secret_keys, wire_map


@dataclass(frozen=True)
class Kind:
    """A resource the plugin serves: its description and a maker of its logic, and the boundary between
    the engine's properties (camelCase, secrets marked) and the logic's (Python names, plain values)."""

    spec: ResourceSpec
    logic: type[ResourceLogic]

    def plain(self, values: Mapping[str, PropertyValue]) -> dict[str, Any]:
        return self.spec.from_wire(plain_map(values))

    def secret(self, *given: Mapping[str, PropertyValue]) -> set[str]:
        """What leaves secret (by Python name): what came in secret, and what the spec calls secret."""
        came = {name for values in given for name in self.spec.python_names_of(secret_keys(values))}
        return self.spec.secret_given(came)

    def wire(self, values: Mapping[str, Any], secret: set[str]) -> dict[str, PropertyValue]:
        return wire_map(self.spec.to_wire(values), set(self.spec.wire_names(secret)))

    def failure(self, name: str, reason: str) -> CheckFailure:
        (wired,) = self.spec.wire_names([name])
        return CheckFailure(wired, reason)


KINDS = {
    kind.spec.token: kind
    for kind in (
        Kind(identity.SPEC, identity.CreatorIdentityProvider),
        Kind(cas_keys.SPEC, cas_keys.CasKeysProvider),
        Kind(recovery_key.SPEC, recovery_key.CasRecoveryKeyProvider),
        Kind(image.SPEC, image.SconifiedImageProvider),
        Kind(cas_image.SPEC, cas_image.CasImageProvider),
        Kind(session.SPEC, session.CasSessionProvider),
    )
}
