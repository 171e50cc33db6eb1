"""The Go runtime as the engine's tests drive it: its test suite, and a harness (``runtime/test/harness``)
that runs the runtime's steps — attest, open a volume, supervise a command with periodic commits, commit —
on directories the test chooses, against a real CAS. The harness is built here, never shipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulumi_sconify.engine.runtime.hardware import HardwareEvidenceError
from tests.support.cas import RunningCas
from tests.support.paths import REPOSITORY

RUNTIME_SOURCES = REPOSITORY / "runtime"


def go_environment() -> dict[str, str]:
    """The machine's Go (not Debian's older one), its build cache under ``~/.cache`` whatever
    ``XDG_CACHE_HOME`` a test set, and no C: the runtime is static."""
    environment = dict(os.environ)
    environment["PATH"] = "/usr/local/go/bin:" + environment.get("PATH", "")
    environment["GOCACHE"] = str(Path.home() / ".cache" / "go-build")
    environment["CGO_ENABLED"] = "0"
    environment["GOFLAGS"] = "-mod=readonly"
    return environment


def go() -> str:
    found = shutil.which("go", path=go_environment()["PATH"])
    assert found, "Go is installed on the project's machines (/usr/local/go)"
    return found


def build_harness(directory: Path) -> Path:
    harness = directory / "sconify-run-harness"
    subprocess.run(
        [go(), "build", "-o", str(harness), "./test/harness"],
        cwd=RUNTIME_SOURCES,
        env=go_environment(),
        check=True,
        timeout=600,
    )
    return harness


class Harness:
    """One volume of one service, opened by the harness for a command."""

    def __init__(self, binary: Path, cas: RunningCas, config_id: str, storage: Path, workdir: Path) -> None:
        self.binary, self.cas, self.config_id = binary, cas, config_id
        self.storage, self.workdir = storage, workdir
        storage.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)

    def command(self, program: Sequence[str], interval: str | None = None, patience: float = 0) -> list[str]:
        return [
            str(self.binary),
            "-cas",
            self.cas.attest_address,
            "-ca",
            str(self.cas.ca),
            "-config-id",
            self.config_id,
            "-storage",
            str(self.storage),
            "-workdir",
            str(self.workdir),
            "-patience",
            str(patience),
            *(["-interval", interval] if interval is not None else []),
            "--",
            *program,
        ]

    def generation(self) -> int:
        """The committed generation, as the storage shows it (``state.<generation>.<tag>.fspf``; the highest
        while a commit is under way)."""
        states = [int(p.name.split(".")[1]) for p in self.storage.glob("state.*.fspf")]
        return max(states, default=0)


class GoHardwareSources:
    """The runtime's hardware collection (Go, through the harness) behind the face of the engine's Python
    collector (``available``, ``collect``, :class:`HardwareEvidenceError`), so that one test holds both to
    the same fakes of the kernel's interfaces, the same swtpm and the same verifiers."""

    def __init__(
        self,
        binary: Path,
        tsm_reports: Path,
        sev_guest: Path,
        tpm_device: Path = Path("/nonexistent/tpm"),
        tpm_port: int | None = None,
        azure_imds: str | None = None,
    ) -> None:
        self.arguments = [
            "-tsm",
            str(tsm_reports),
            "-sev-guest",
            str(sev_guest),
            "-tpm-device",
            str(tpm_device),
        ]
        if tpm_port is not None:
            self.arguments += ["-tpm-socket", f"127.0.0.1:{tpm_port}"]
        if azure_imds:
            self.arguments += ["-imds", azure_imds]
        self.binary = binary

    def _run(self, *arguments: str) -> Any:
        done = subprocess.run(
            [str(self.binary), *self.arguments, *arguments],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            fatal = [line for line in done.stderr.splitlines() if line.startswith("[SCONIFY|FATAL] ")]
            assert done.returncode == 70 and len(fatal) == 1, done.stderr
            raise HardwareEvidenceError(fatal[0].removeprefix("[SCONIFY|FATAL] "))
        return json.loads(done.stdout)

    def available(self) -> list[str]:
        return list(self._run("-available") or [])

    def collect(self, kind: str, binding: bytes) -> dict[str, Any]:
        return dict(self._run("-collect", kind, "-binding", binding.hex()))
