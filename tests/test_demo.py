"""README's first command: the seed's scenario end to end (the demo is the main job)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPOSITORY

pytestmark = pytest.mark.slow


def test_the_demo_counts_refuses_the_rollback_and_counts_on() -> None:
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "examples" / "local-demo" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = [line.strip() for line in result.stdout.splitlines() if "The number of executions is" in line]
    assert counts == [f"The number of executions is {n}" for n in (0, 1, 2, 3)]
    assert "[SCONIFY|FATAL] volume V1: committed state 3 is missing" in result.stdout
