"""Property values between the engine's wire form and the plain values the resource logic works on.

The resource logic sees plain Python: strings, bools, whole numbers as
ints, lists, dicts, and a preview-time unknown as the SDK's unknown sentinel. Secrets are unwrapped on the
way in and marked again on the way out: every property the spec calls secret, and every property that came
in secret, leaves secret — the plugin never unmarks one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.provider.experimental.property_value import Computed, PropertyValue
from pulumi.runtime import rpc

from ..resources.base import PROVIDER_KEY, is_unknown


class UnsupportedValueError(ValueError):
    """An asset, archive or resource reference: no sconify resource takes one."""


def plain(value: PropertyValue) -> Any:
    inner = value.value
    if isinstance(inner, Computed):
        return rpc.UNKNOWN
    if isinstance(inner, float) and inner.is_integer():
        return int(inner)
    if inner is None or isinstance(inner, (bool, float, str)):
        return inner
    if isinstance(inner, Mapping):
        return {key: plain(item) for key, item in inner.items()}
    if isinstance(inner, tuple):
        return [plain(item) for item in inner]
    raise UnsupportedValueError(f"a {type(inner).__name__} is not a value any sconify resource takes")


def plain_map(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    """Plain properties, without the pickled provider a state of a version before 0.2 holds."""
    return {key: plain(value) for key, value in values.items() if key != PROVIDER_KEY}


def secret_keys(values: Mapping[str, PropertyValue]) -> set[str]:
    """The properties that arrived secret (anywhere inside)."""
    return {key for key, value in values.items() if value.contains_secret()}


def wire(value: Any) -> PropertyValue:
    if value is None:
        return PropertyValue.null()
    if is_unknown(value):
        # The wire form of an unknown is its sentinel string (the SDK's marshalling has no case for its
        # own Computed value).
        return PropertyValue(rpc.UNKNOWN)
    if isinstance(value, bool | str):
        return PropertyValue(value)
    if isinstance(value, int | float):
        return PropertyValue(float(value))
    if isinstance(value, Mapping):
        return PropertyValue({str(key): wire(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return PropertyValue([wire(item) for item in value])
    raise UnsupportedValueError(f"cannot send a {type(value).__name__}")


def wire_map(values: Mapping[str, Any], secret: Iterable[str]) -> dict[str, PropertyValue]:
    secrets = set(secret)
    return {
        key: wire(value).with_secret(key in secrets) if value is not None else wire(value)
        for key, value in values.items()
        if key != PROVIDER_KEY
    }
