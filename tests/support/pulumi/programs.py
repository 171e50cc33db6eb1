"""Run the repository's Pulumi programs under mocks (each run its own process) and read the results."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc

from pulumi_sconify.provider.plugin.provider import KINDS
from tests.support.paths import COMPONENT_STACKS, REPOSITORY
from tests.support.pulumi.program_runner import SECRET, UNKNOWN, plain

PACKAGE_SPECS = {token: kind.spec for token, kind in KINDS.items()}

PROGRAMS = {
    "root": REPOSITORY,
    "minikube": REPOSITORY / "examples" / "minikube",
    "aks": REPOSITORY / "examples" / "aks",
}
STACKS = [("root", "dev"), ("root", "aks"), ("minikube", "dev"), ("aks", "prod")]


@dataclass(frozen=True)
class Run:
    registrations: list[dict[str, Any]]
    exports: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def by_name(self, name: str, kind: str | None = None) -> dict[str, Any]:
        found = [
            r for r in self.registrations if r["name"] == name and (kind is None or r["type"].endswith(kind))
        ]
        assert len(found) == 1, f"{len(found)} registrations named {name!r} ({kind})"
        return found[0]

    def of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [r for r in self.registrations if r["type"].endswith(suffix)]

    def urn_of(self, name: str, kind: str | None = None) -> str:
        return str(self.by_name(name, kind)["urn"])


def python_inputs(registration: dict[str, Any]) -> dict[str, Any]:
    """A registration's inputs, plain, and for the package's resources by their Python names (the engine
    sees Pulumi's camelCase)."""
    inputs = plain(registration["inputs"])
    spec = PACKAGE_SPECS.get(registration["type"])
    return spec.from_wire(inputs) if spec else inputs


STACKS_DIRECTORY = COMPONENT_STACKS
"""Test programs that exercise the engine's rules (several services, an external CAS, a duplicate)."""


def _run(directory: Path, stack: str, preview: bool, as_shipped: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.support.pulumi.program_runner", str(directory), stack]
    if preview:
        command.append("--preview")
    if as_shipped:
        command.append("--as-shipped")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPOSITORY, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def run_program(directory: Path, stack: str, preview: bool = False, as_shipped: bool = False) -> Run:
    data = _run(directory, stack, preview, as_shipped)
    assert data["error"] is None, data["error"]
    return Run(data["registrations"], data["exports"], data["warnings"])


def program_failure(directory: Path, stack: str) -> tuple[str, Run]:
    """The error of a program that must fail, and what it registered before."""
    data = _run(directory, stack, preview=False)
    assert data["error"] is not None, "the program ran to its end"
    return str(data["error"]), Run(data["registrations"], data["exports"])


@functools.cache
def program_run(program: str, stack: str, preview: bool = False) -> Run:
    """The repository's program as it is (cached: the same inputs give the same run)."""
    return run_program(PROGRAMS[program], stack, preview)


def root_program_copy(destination: Path) -> Path:
    """A copy of the root program and what it reads, to change one input in."""
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.aks.yaml"):
        shutil.copy2(REPOSITORY / name, destination / name)
    shutil.copytree(REPOSITORY / "examples" / "counter", destination / "examples" / "counter")
    return destination


def plaintext_secrets(value: Any, path: str = "") -> list[str]:
    """Paths where a mock's secret value (``...SECRET...``) appears without a secret marker."""
    if isinstance(value, dict):
        if SECRET in value:
            return []
        return [p for key, item in value.items() for p in plaintext_secrets(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in plaintext_secrets(item, f"{path}[{index}]")]
    return [path] if isinstance(value, str) and "SECRET" in value else []


def has_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(has_unknown(item) for item in value)
    return isinstance(value, str) and value in (UNKNOWN, rpc.UNKNOWN)
