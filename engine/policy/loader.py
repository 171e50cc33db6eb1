"""Loading untrusted YAML text into plain Python data, safely and within bounds.

A session policy arrives from users, from the network (the CAS accepts it as a request body) and from
Pulumi state, so the loader treats it as hostile:

- the text is limited in size (``MAX_DOCUMENT_BYTES``) before anything parses it;
- it must be UTF-8 without NUL or other control characters (binary input is refused);
- anchors and aliases are refused outright: they are the lever of "billion laughs" expansion, and a
  security policy is clearer without them;
- nesting depth and the number of nodes are bounded, so neither the parser nor anything that walks
  the result can be driven into deep recursion or unbounded work;
- exactly one document; duplicate mapping keys are an error (YAML would silently keep the last one,
  which would let one line of a policy quietly override another);
- only the YAML safe schema: no Python objects.

Integers and floats keep the text they were written as (:class:`SourcedInt`, :class:`SourcedFloat`),
because some policy fields are hexadecimal strings that YAML reads as numbers when every digit is
decimal (a measurement such as ``0123…`` would otherwise lose its leading zero).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import PolicyError

MAX_DOCUMENT_BYTES = 1024 * 1024
"""Largest policy text accepted: generous for policies with injected files, small enough to parse fast."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and sequences accepted; session YAML needs five levels."""
MAX_NODES = 200_000
"""Most scalars, mappings and sequences accepted in one document."""

_DOCUMENT = "(document)"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# libyaml's C parser when PyYAML was built with it (the wheels are); the pure-Python one otherwise.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SourcedInt(int):
    """An integer that remembers the text it was written as."""

    text: str

    def __new__(cls, value: int, text: str) -> SourcedInt:
        number = super().__new__(cls, value)
        number.text = text
        return number


class SourcedFloat(float):
    """A float that remembers the text it was written as."""

    text: str

    def __new__(cls, value: float, text: str) -> SourcedFloat:
        number = super().__new__(cls, value)
        number.text = text
        return number


class _StrictSafeLoader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, with duplicate keys refused and numbers that keep their source text."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it properly
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_describe_key(key)}", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _construct_int(loader: _StrictSafeLoader, node: yaml.ScalarNode) -> SourcedInt:
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    return SourcedInt(value, node.value)


def _construct_float(loader: _StrictSafeLoader, node: yaml.ScalarNode) -> SourcedFloat:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    return SourcedFloat(value, node.value)


_StrictSafeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_StrictSafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _describe_key(key: object) -> str:
    """Name a mapping key in an error; keys are field names, not secrets, but keep them short."""
    text = str(key)
    return repr(text if len(text) <= 64 else text[:61] + "...")


def _decode(data: str | bytes) -> str:
    if isinstance(data, bytes):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise PolicyError.single(_DOCUMENT, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError.single(_DOCUMENT, "not UTF-8 text") from None
    else:
        text = data
        # Characters, not bytes, but a bound either way; the precise byte check follows.
        if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
            raise PolicyError.single(_DOCUMENT, f"larger than {MAX_DOCUMENT_BYTES} bytes")
    if text.startswith("\ufeff"):
        text = text[1:]
    control = _CONTROL_CHARACTER.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise PolicyError.single(_DOCUMENT, f"line {line}: control character (binary data is not a policy)")
    return text


def _yaml_problem(error: yaml.YAMLError) -> PolicyError:
    """Turn a PyYAML error into a policy error without quoting the document (it may hold secrets)."""
    problem = getattr(error, "problem", None) or "not valid YAML"
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return PolicyError.single(_DOCUMENT, f"{where}{problem}")


def _check_structure(text: str) -> None:
    """Refuse aliases, anchors, extra documents and excessive depth or size before building objects."""
    depth = 0
    nodes = 0
    documents = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise PolicyError.single(_DOCUMENT, "expected exactly one YAML document")
        elif isinstance(event, yaml.AliasEvent):
            raise PolicyError.single(_DOCUMENT, _at(event, "aliases (*name) are not allowed in a policy"))
        elif isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise PolicyError.single(_DOCUMENT, f"more than {MAX_NODES} nodes")
            if event.anchor is not None:
                raise PolicyError.single(_DOCUMENT, _at(event, "anchors (&name) are not allowed in a policy"))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise PolicyError.single(_DOCUMENT, _at(event, f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _at(event: yaml.Event, message: str) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1} column {mark.column + 1}: {message}" if mark is not None else message


def load_yaml(data: str | bytes) -> Any:
    """Parse one untrusted YAML document into plain data (dicts, lists, str, numbers, bools, None).

    Raises :class:`PolicyError` for anything outside the bounds described in this module.
    """
    text = _decode(data)
    try:
        _check_structure(text)
        return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise _yaml_problem(error) from None
    except RecursionError:  # belt and braces: the depth bound should make this unreachable
        raise PolicyError.single(_DOCUMENT, "nested too deeply") from None
