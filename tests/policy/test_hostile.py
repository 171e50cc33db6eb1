"""Hostile YAML: each gets a clear error quickly and within bounded memory, never a crash or a hang."""

from __future__ import annotations

import tracemalloc

import pytest

from pulumi_sconify.engine.policy import MAX_DOCUMENT_BYTES, PolicyError, parse_session
from pulumi_sconify.engine.policy.loader import MAX_DEPTH, MAX_NODES
from pulumi_sconify.engine.policy.parse import MAX_ITEMS

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: [*i]
version: "0.3"
"""


def refused(text: str | bytes) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_session(text)
    return str(caught.value)


def test_alias_bomb_is_refused_without_expanding() -> None:
    tracemalloc.start()
    try:
        message = refused(BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "anchors" in message or "aliases" in message
    assert peak < 16 * 1024 * 1024


def test_single_alias_is_refused() -> None:
    message = refused('name: &n x\nversion: "0.3"\n')
    assert "anchors" in message


@pytest.mark.parametrize(
    "text",
    ["- a\n- b\n", "just a string\n", "42\n", "", "~\n", "[]\n"],
    ids=["list", "string", "number", "empty", "null", "empty-list"],
)
def test_non_mapping_documents_are_refused(text: str) -> None:
    assert "expected a mapping" in refused(text)


def test_binary_input_is_refused() -> None:
    assert "not UTF-8" in refused(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    assert "control character" in refused(b'name: x\x00\nversion: "0.3"\n')


def test_oversized_input_is_refused_before_parsing() -> None:
    huge = b"name: x\n" + b"#" * MAX_DOCUMENT_BYTES
    assert "larger than" in refused(huge)
    assert "larger than" in refused(huge.decode())


def test_deep_nesting_is_refused() -> None:
    text = 'name: x\nversion: "0.3"\nsecurity: ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    assert "nested deeper" in refused(text)
    extreme = "a: " + "[" * 100_000  # would overflow a recursive parser's stack
    assert "nest" in refused(extreme)  # libyaml may stop it first, with its own words


def test_too_many_nodes_are_refused() -> None:
    text = "x: [" + "1," * (MAX_NODES + 1) + "1]\n"
    assert len(text) < MAX_DOCUMENT_BYTES
    assert "more than" in refused(text)


def test_several_documents_are_refused() -> None:
    assert "exactly one" in refused('name: a\nversion: "0.3"\n---\nname: b\nversion: "0.3"\n')


def test_duplicate_keys_are_refused() -> None:
    text = 'name: a\nversion: "0.3"\naccess_policy:\n  update: [ANY]\n  update: [CREATOR]\n'
    message = refused(text)
    assert "duplicate key 'update'" in message
    assert "line 5" in message


def test_python_objects_are_refused() -> None:
    message = refused('name: !!python/object/apply:os.system ["true"]\nversion: "0.3"\n')
    assert "line 1" in message


def test_syntax_errors_report_position_without_quoting_text() -> None:
    message = refused('name: x\nversion: "0.3"\nservices: [\n  {fspf_key: 0f1e2d3c4b5a6978 ,,, }\n')
    assert message.startswith("(document): line ")
    assert "0f1e2d3c4b5a6978" not in message


@pytest.mark.parametrize("section", ["services", "secrets", "volumes", "images"])
def test_lists_longer_than_the_bound_are_refused_unread(section: str) -> None:
    items = "".join(f"  - {{name: n{index}}}\n" for index in range(MAX_ITEMS + 1))
    text = f'name: s\nversion: "0.3"\n{section}:\n{items}'
    assert len(text) < MAX_DOCUMENT_BYTES
    message = refused(text)
    assert f"{section}: at most {MAX_ITEMS} items" in message
    assert f"{section}[0]" not in message  # not one item was read


def test_an_environment_larger_than_the_bound_is_refused() -> None:
    variables = "".join(f"      V{index}: x\n" for index in range(MAX_ITEMS + 1))
    text = f'name: s\nversion: "0.3"\nservices:\n  - name: app\n    environment:\n{variables}'
    assert f"services[0].environment: at most {MAX_ITEMS} variables" in refused(text)
