"""Installing the plugin where the Pulumi engine looks for it, from the Python environment that holds the
package.

The engine runs a provider it has no path for from ``$PULUMI_HOME/plugins`` (or ``pulumi-resource-sconify``
on the ``pulumi`` process's own ``PATH``, which a virtual environment's ``bin`` seldom is). The plugin
installed there is a launcher bound to *this* interpreter, so a program anywhere on the machine, in any
language, reaches the package installed here: no path into a checkout, no language host for Python needed.
It is installed by the real ``pulumi plugin install --file``, so the engine's own layout and locks are kept.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from ...engine.errors import SconifyError
from ..resources.spec import PACKAGE

SEMANTIC_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


class PluginInstallError(SconifyError):
    """The plugin could not be installed: the version is not one the engine accepts, or ``pulumi`` failed."""


def launcher(interpreter: str, version: str) -> str:
    """The plugin the engine runs: this interpreter serving the package's plugin."""
    return (
        "#!/bin/sh\n"
        f"# The {PACKAGE} provider plugin {version}, installed by `pulumi-resource-{PACKAGE} --install`.\n"
        f'exec {shlex.quote(interpreter)} -m pulumi_sconify.provider.plugin "$@"\n'
    )


def install(version: str, pulumi: str = "pulumi", interpreter: str = sys.executable) -> str:
    """Install the plugin of ``version`` with the ``pulumi`` command; returns what ``pulumi`` printed."""
    if not SEMANTIC_VERSION.match(version):
        raise PluginInstallError(
            f"version {version!r}: the engine installs plugins by semantic version (install the package "
            "with pip, not from a copy of its sources)"
        )
    with tempfile.TemporaryDirectory(prefix="sconify-plugin-") as directory:
        path = Path(directory) / f"pulumi-resource-{PACKAGE}"
        path.write_text(launcher(interpreter, version))
        path.chmod(0o755)
        command = [
            pulumi,
            "plugin",
            "install",
            "resource",
            PACKAGE,
            version,
            "--file",
            str(path),
            "--reinstall",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
        except FileNotFoundError as missing:
            raise PluginInstallError(f"{pulumi}: no such command (the Pulumi CLI is needed)") from missing
    if done.returncode != 0:
        raise PluginInstallError(f"pulumi plugin install failed: {(done.stderr or done.stdout).strip()}")
    return (done.stdout + done.stderr).strip()
