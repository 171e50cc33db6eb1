"""``sconify session``: validate, hash and render session policies."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from ..policy import MAX_DOCUMENT_BYTES, PolicyError, Session, parse_session, render_session, session_hash
from .common import EXIT_INVALID, CliError, read_bounded

__all__ = ["register"]

EXAMPLE_RESOURCE = "counter-example.yaml"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "session",
        help="validate, hash and render session policies (YAML 0.3)",
        description="Work with session policies (SCONE session YAML 0.3).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser("validate", help="check a policy; list every problem by field path")
    validate.add_argument("file", metavar="FILE", help="session YAML, or - for standard input")
    validate.set_defaults(handler=_validate)

    hash_ = commands.add_parser("hash", help="print the session hash (the last line of output)")
    hash_.add_argument("file", metavar="FILE", help="session YAML, or - for standard input")
    hash_.set_defaults(handler=_hash)

    render = commands.add_parser("render", help="print the policy in canonical form")
    render.add_argument("file", metavar="FILE", help="session YAML, or - for standard input")
    render.set_defaults(handler=_render)

    example = commands.add_parser("example", help="print the bundled counter-service policy")
    example.set_defaults(handler=_example)


def _load(source: str) -> Session:
    data = read_bounded(source, MAX_DOCUMENT_BYTES)
    try:
        return parse_session(data)
    except PolicyError as error:
        raise CliError(
            "\n".join(f"{source}: {problem}" for problem in error.problems), EXIT_INVALID
        ) from None


def _validate(args: argparse.Namespace) -> int:
    session = _load(args.file)
    print(f"{args.file}: valid session {session.name}")
    return 0


def _hash(args: argparse.Namespace) -> int:
    print(session_hash(_load(args.file)))
    return 0


def _render(args: argparse.Namespace) -> int:
    sys.stdout.write(render_session(_load(args.file)))
    return 0


def _example(_: argparse.Namespace) -> int:
    sys.stdout.write(resources.files("pulumi_sconify.provider.policy").joinpath(EXAMPLE_RESOURCE).read_text())
    return 0
