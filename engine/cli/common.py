"""What every command group shares: the command line's own error, bounded input reading, registry flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_INVALID, EXIT_USAGE, SconifyError
from ..image.oci import DEFAULT_PLATFORM

if TYPE_CHECKING:
    from ..image.transport import RegistryOptions

Handler = Callable[[argparse.Namespace], int]

__all__ = [
    "CAS_CA_FLAGS",
    "EXIT_INVALID",
    "EXIT_USAGE",
    "CliError",
    "Handler",
    "RenamedFlag",
    "add_renamed_flag",
]

CAS_CA_FLAGS = ("--cas-ca-certificate", "--cas-ca")
"""The CAS's CA certificate, under one name in every command (``--cas-ca`` is its short form); the Python
and Pulumi name is ``cas_ca_certificate``."""


class CliError(SconifyError):
    """What a command words itself: a problem only the command line knows (a flag, a file it reads), or an
    engine error said with the command's context. Reported as one line on standard error."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RenamedFlag(argparse.Action):
    """A flag of an earlier version, still accepted: it sets the new flag's value, after a warning that names
    the new flag. Added with ``help=argparse.SUPPRESS`` and ``default=argparse.SUPPRESS`` (so that it
    neither shows nor overwrites the new flag's default)."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"sconify: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_flag(parser: argparse.ArgumentParser, old: str, new: str, dest: str) -> None:
    """Accept ``old`` for the flag now called ``new`` (its value ``dest``), with a deprecation warning."""
    parser.add_argument(
        old, dest=dest, action=RenamedFlag, new=new, help=argparse.SUPPRESS, default=argparse.SUPPRESS
    )


def read_bounded(source: str, limit: int) -> bytes:
    """Read a file (or standard input for ``-``), refusing more than ``limit`` bytes without
    reading them all: a huge or endless input must not exhaust memory."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with Path(source).open("rb") as stream:
                data = stream.read(limit + 1)
    except OSError as error:
        raise CliError(f"{source}: cannot read: {error.strerror}") from None
    if len(data) > limit:
        raise CliError(f"{source}: larger than {limit} bytes", EXIT_INVALID)
    return data


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """``--platform``, ``--insecure-registry``, ``--authfile``, ``--registry-ca``."""
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help="platform to take from an index")
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a registry that may be reached over plain HTTP",
    )
    parser.add_argument("--authfile", type=Path, help="docker config.json with registry credentials")
    parser.add_argument("--registry-ca", type=Path, metavar="FILE", help="CA certificate of the registries")


def registry_options(args: argparse.Namespace) -> RegistryOptions:
    from ..image.transport import RegistryOptions  # noqa: PLC0415 - the HTTP stack only where needed

    return RegistryOptions(frozenset(args.insecure_registry), args.authfile, args.registry_ca)
