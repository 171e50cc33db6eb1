"""The ``sconify`` command-line tool.

Each command group lives in a module of its own that adds its subcommands to the parser.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence

from ..errors import SconifyError
from ..version import __version__
from . import cas, chart, evidence, fspf, image, session


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
    evidence.register(groups)
    summary = "the runtime of a confidential container (images run it as their entrypoint)"
    run = groups.add_parser("run", help=summary, description=summary + "; configured by SCONE_* variables")
    run.set_defaults(handler=_run)
    return parser


def _run(_: argparse.Namespace) -> int:
    """The runtime binary for this machine, in this process's place (what an image's entrypoint runs)."""
    from ..runtime.binary import runtime_binary  # noqa: PLC0415 - only this command needs it

    binary = runtime_binary(platform.machine())
    os.execv(binary, [str(binary)])  # noqa: S606 - the runtime of this package, with no arguments


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except SconifyError as error:  # the one place errors become exit codes: each carries its own
        print(f"sconify: {error}", file=sys.stderr)
        return error.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
