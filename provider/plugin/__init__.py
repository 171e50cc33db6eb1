"""The ``sconify`` provider plugin: the package's resources served over gRPC as the Pulumi engine drives a
provider (``provider.py``), their schema (``schema.py``), progress to the engine's log (``progress.py``).

Pulumi's Python language host runs this directory (``PulumiPlugin.yaml``, ``__main__.py``); the console
script ``pulumi-resource-sconify`` runs the same server for a plugin found on ``PATH``, and
``pulumi-resource-sconify --install`` puts a launcher into the engine's plugins (``install.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ...engine.version import __version__


def main(argv: list[str] | None = None) -> None:
    """Serve the provider, as the engine starts it: ``ENGINE_ADDRESS``; it prints its port and serves until
    stopped. ``--schema`` prints the package schema instead; ``--install [--pulumi PULUMI]`` installs the
    plugin into the engine's plugins with the ``pulumi`` command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--schema"]:
        from .schema import package_schema  # noqa: PLC0415

        print(json.dumps(package_schema(__version__), indent=2, sort_keys=True))
        return
    if arguments[:1] == ["--install"]:
        _install(arguments[1:])
        return
    parser = argparse.ArgumentParser(prog="pulumi-resource-sconify", description=main.__doc__)
    parser.add_argument("engine", help="the engine's address (host:port)")
    parser.add_argument("--logflow", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--logtostderr", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tracing", default="", help=argparse.SUPPRESS)
    known, _ = parser.parse_known_args(arguments)
    from .server import serve  # noqa: PLC0415 - grpc and the resources load only to serve

    asyncio.run(serve(arguments, known.engine, __version__))


def _install(arguments: list[str]) -> None:
    from .install import PluginInstallError, install  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pulumi-resource-sconify --install")
    parser.add_argument("--pulumi", default="pulumi", help="the pulumi command (default: pulumi on PATH)")
    options = parser.parse_args(arguments)
    try:
        print(install(__version__, options.pulumi) or f"installed the sconify plugin {__version__}")
    except PluginInstallError as error:
        sys.exit(f"pulumi-resource-sconify: {error}")
