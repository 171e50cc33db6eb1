"""``sconify session``: validate, hash and render session policies."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..policy import MAX_DOCUMENT_BYTES, PolicyError, Session, parse_session, render_session, session_hash
from ..vocabulary import CLIENT_PORT
from .common import CAS_CA_FLAGS, EXIT_INVALID, CliError, add_renamed_flag, read_bounded

__all__ = ["register"]

if TYPE_CHECKING:
    from ..cas.clients.client import CasClient

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

    for verb, summary in (
        ("create", "upload a new session to a CAS; prints its hash"),
        ("update", "upload a new version (predecessor filled in if missing); prints its hash"),
    ):
        upload = commands.add_parser(verb, help=summary)
        upload.add_argument("file", metavar="FILE", help="session YAML, or - for standard input")
        _cas_arguments(upload)
        upload.set_defaults(handler=_upload, update=verb == "update")

    read = commands.add_parser("read", help="print a session's YAML from a CAS (hash on standard error)")
    read.add_argument("name", metavar="NAME")
    read.add_argument("--hash", help="an older version's hash")
    _cas_arguments(read)
    read.set_defaults(handler=_read)


def _cas_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cas-client", metavar="HOST[:PORT]", help=f"the CAS's client API (default port {CLIENT_PORT})"
    )
    add_renamed_flag(parser, "--cas", "--cas-client", "cas_client")
    parser.add_argument(
        *CAS_CA_FLAGS,
        dest="cas_ca",
        required=True,
        type=Path,
        metavar="FILE",
        help="the CAS's CA certificate to pin",
    )
    parser.add_argument(
        "--identity",
        required=True,
        type=Path,
        metavar="PATH",
        help="identity directory (client.pem, client-key.pem) or one PEM with key and certificate",
    )


def _client(args: argparse.Namespace) -> CasClient:
    from ..cas.clients.client import CasClient  # noqa: PLC0415 - only these commands need HTTP
    from ..cas.clients.identity import IdentityError, load_client_identity  # noqa: PLC0415

    if not args.cas_client:  # required, but argparse would refuse the old --cas that names it too
        raise CliError("--cas-client is required: the CAS's client API, host[:port]")
    try:
        return CasClient(args.cas_client, args.cas_ca, load_client_identity(args.identity))
    except (IdentityError, ValueError, OSError) as error:
        raise CliError(str(error)) from None


def _upload(args: argparse.Namespace) -> int:
    from ..cas.clients.upload import active_version, upload  # noqa: PLC0415
    from ..errors import CasError  # noqa: PLC0415

    text = read_bounded(args.file, MAX_DOCUMENT_BYTES).decode("utf-8", "replace")
    session = _parse(args.file, text)
    with _client(args) as client:
        try:
            if args.update and session.predecessor is None:
                current = active_version(client, session.name)
                if current is None:
                    raise CliError(
                        f"{session.name}: no such session to update (create it first)", EXIT_INVALID
                    )
                _, digest = upload(client, session, current[1])
            else:
                digest = client.post_session(text)  # as written: a create, or the predecessor it names
            print(digest)
        except CasError as error:
            details = "".join(f"\n  {problem}" for problem in error.extra.get("problems", []))
            raise CliError(f"{error}{details}", EXIT_INVALID) from None
    return 0


def _read(args: argparse.Namespace) -> int:
    from ..errors import CasError  # noqa: PLC0415

    with _client(args) as client:
        try:
            text, digest = client.read_session(args.name, args.hash)
        except CasError as error:
            raise CliError(str(error), EXIT_INVALID) from None
    sys.stdout.write(text)
    print(f"hash: {digest}", file=sys.stderr)
    return 0


def _load(source: str) -> Session:
    return _parse(source, read_bounded(source, MAX_DOCUMENT_BYTES))


def _parse(source: str, data: str | bytes) -> Session:
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
    sys.stdout.write(resources.files("pulumi_sconify.engine.policy").joinpath(EXAMPLE_RESOURCE).read_text())
    return 0
