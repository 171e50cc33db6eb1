"""The Go runtime as the engine's tests drive it: its test suite, and a harness (``runtime/test/harness``)
that runs the runtime's steps — attest, open a volume, supervise a command with periodic commits, commit —
on directories the test chooses, against a real CAS. The harness is built here, never shipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

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
