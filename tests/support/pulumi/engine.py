"""The real Pulumi engine, as a user runs it: the ``pulumi`` CLI built by ``.ci/build-pulumi`` (with the
YAML language host beside it), on a local file backend with a passphrase, offline, with its own
``PULUMI_HOME`` into which the package's plugin is installed the way the README says
(``pulumi-resource-sconify --install``). ``PULUMI_IGNORE_AMBIENT_PLUGINS`` keeps the engine from finding
the plugin on ``PATH`` instead: what a test proves is what a user's machine does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from pulumi import automation as auto

from pulumi_sconify.provider.resources import CreatorIdentity
from tests.support.cas import RunningCas
from tests.support.paths import ENGINE_PROGRAMS, REPOSITORY
from tests.support.policies import counter, namespace, text

PROGRAMS = ENGINE_PROGRAMS
PASSPHRASE = "engine tests only"


def engine_binaries() -> Path:
    """Where the built CLI is. The build script owns the location (and builds if nothing is cached, which
    ``.ci/setup`` has done before the tests)."""
    built = subprocess.run(
        ["bash", str(REPOSITORY / ".ci" / "build-pulumi")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, f".ci/build-pulumi failed:\n{built.stderr[-4000:]}"
    return Path(built.stdout.strip().splitlines()[-1])


@dataclass
class Engine:
    binaries: Path
    home: Path
    """``PULUMI_HOME``: the engine's plugins and credentials, the test's own."""
    backend: Path
    more: dict[str, str] = field(default_factory=dict)
    """More environment for the engine and the plugins it starts."""

    @property
    def pulumi(self) -> str:
        return str(self.binaries / "pulumi")

    def environment(self, **more: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")},
            "PATH": f"{self.binaries}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": self.backend.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
            "PULUMI_DISABLE_REGISTRY_RESOLVE": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
            **self.more,
            **more,
        }

    def run(
        self, *arguments: str, cwd: Path | str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.pulumi, *arguments, "--non-interactive"],
            cwd=cwd,
            env=self.environment(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(arguments)} failed ({done.returncode}):\n{done.stdout[-6000:]}\n"
                f"{done.stderr[-6000:]}"
            )
        return done

    def install_plugin(self) -> str:
        """The README's step: the installed package's command installs its plugin for this engine."""
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "pulumi-resource-sconify"),
                "--install",
                "--pulumi",
                self.pulumi,
            ],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def preview(self, program: Path, *arguments: str) -> dict[str, Any]:
        """A preview's plan, as the engine reports it (``--json``): steps and a summary of changes."""
        planned: dict[str, Any] = json.loads(self.run("preview", "--json", *arguments, cwd=program).stdout)
        return planned

    def export(self, stack: str, cwd: Path | str) -> dict[str, Any]:
        """The stack's state as ``pulumi stack export`` writes it (secrets encrypted)."""
        exported: dict[str, Any] = json.loads(self.run("stack", "export", "--stack", stack, cwd=cwd).stdout)
        return exported


def sdk_floor() -> tuple[str, Path]:
    """The lowest Pulumi SDK the package declares, and where ``.ci/setup`` put that version."""
    (declared,) = [
        r for r in map(Requirement, metadata.requires("pulumi-sconify") or []) if r.name == "pulumi"
    ]
    (floor,) = [spec.version for spec in declared.specifier if spec.operator == ">="]
    return floor, Path.home() / ".cache" / "pulumi-sconify" / "sdk-floor" / f"pulumi-{floor}"


def start_engine(root: Path) -> Engine:
    backend = root / "state"
    backend.mkdir(parents=True)
    engine = Engine(engine_binaries(), root / "pulumi-home", backend)
    engine.run("login", backend.as_uri(), cwd=root)
    engine.install_plugin()
    return engine


def inline_stack(engine: Engine, work: Path, program: Callable[[], None], name: str = "test") -> auto.Stack:
    """A stack of a Python program run by the engine through the Automation API's inline program: this
    process serves the program to the engine as its language host."""
    work.mkdir(parents=True, exist_ok=True)
    return auto.create_or_select_stack(
        stack_name=name,
        project_name="sconify-python",
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(work),
            pulumi_home=str(engine.home),
            pulumi_command=auto.PulumiCommand(root=str(engine.binaries.parent), skip_version_check=True),
            env_vars=engine.environment(),
            project_settings=auto.ProjectSettings(
                name="sconify-python", runtime="python", backend=auto.ProjectBackend(engine.backend.as_uri())
            ),
        ),
    )


def connection(cas: RunningCas, creator: CreatorIdentity) -> dict[str, Any]:
    """A CasSession's way to ``cas`` as ``creator`` (inside a program: the creator's outputs)."""
    return {
        "cas_client_address": cas.address,
        "cas_ca_certificate": cas.ca.read_text(),
        "identity_certificate": creator.certificate_pem,
        "identity_key": creator.private_key_pem,
    }


def sessions_program(engine: Engine, cas: RunningCas, directory: Path, stack: str) -> Path:
    """The YAML sessions program copied to ``directory`` (no path leads back into this checkout), with a
    stack configured for ``cas``: the counter's namespace and, secret, its service policy."""
    shutil.copytree(PROGRAMS / "sessions", directory)
    engine.run("stack", "init", stack, cwd=directory)
    engine.run("config", "set", "cas", cas.address, cwd=directory)
    engine.run("config", "set", "casCa", cwd=directory, stdin=cas.ca.read_text())
    engine.run("config", "set", "namespacePolicy", cwd=directory, stdin=namespace())
    engine.run("config", "set", "--secret", "servicePolicy", cwd=directory, stdin=text(counter()))
    return directory
