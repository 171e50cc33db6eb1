"""What every room of the suite needs: a free loopback port, waiting for a state, the ``sconify`` command."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

SAFETY_NET = 300.0
"""Seconds after which a wait gives up: a safety net against a hang, never a timing assumption (a CPU hog
beside the suite once made 30 s too short for a start)."""


def free_port() -> int:
    """A loopback port free at the time of the call (a server that then finds it taken says so, and its
    harness tries another)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str = "the state", safety_net: float = SAFETY_NET) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + safety_net
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def sconify_executable() -> str:
    """The ``sconify`` console script installed beside this interpreter."""
    found = shutil.which("sconify", path=str(Path(sys.executable).parent))
    assert found, "the sconify console script is not installed next to this interpreter (bash .ci/setup)"
    return found


def sconify(
    *arguments: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``sconify`` command, run to its end; ``env`` is added to this process's environment."""
    return subprocess.run(
        [sconify_executable(), *arguments],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=SAFETY_NET,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def sconify_output(*arguments: str) -> str:
    """The ``sconify`` command's output; it must succeed."""
    result = sconify(*arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout
