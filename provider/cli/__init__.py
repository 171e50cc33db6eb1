"""The ``sconify`` command-line tool.

Each command group lives in a module of its own that adds its subcommands to the parser; groups
whose commands are not part of this version yet are listed so that ``--help`` shows the whole shape
of the tool, and say so when called.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..version import __version__
from . import cas, chart, fspf, image, session
from .common import CliError, Handler

# Groups that later versions fill, with the one line ``sconify --help`` shows for each.
_PLANNED_GROUPS = {
    "run": "the runtime inside a confidential container",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sconify",
        description="Confidential stateful services: policies, protected images and volumes, CAS.",
    )
    parser.add_argument("--version", action="version", version=f"sconify {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    session.register(groups)
    fspf.register(groups)
    cas.register(groups)
    chart.register(groups)
    image.register(groups)
    for name, summary in _PLANNED_GROUPS.items():
        planned = groups.add_parser(name, help=summary, description=summary)
        planned.set_defaults(handler=_planned(name))
    return parser


def _planned(name: str) -> Handler:
    def handler(_: argparse.Namespace) -> int:
        raise CliError(f"'sconify {name}' has no commands in version {__version__} yet")

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as error:
        print(f"sconify: {error}", file=sys.stderr)
        return error.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
