"""Lint, format and type checks are part of the test suite, so one command checks everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPOSITORY


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_lint_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


PROGRAMS = sorted(
    [
        "__main__.py",
        "policy-pack/__main__.py",
        "examples/local-demo/demo.py",
        *(str(p.relative_to(REPOSITORY)) for p in REPOSITORY.glob("examples/*/__main__.py")),
        *(str(p.relative_to(REPOSITORY)) for p in REPOSITORY.glob("tests/components/stacks/*/__main__.py")),
    ]
)


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_program_type_checks(program: str) -> None:
    """Each Pulumi program is a ``__main__`` of its own, so mypy checks them one at a time (in one run it
    would see one module name twice); the package's public names are typed, so a misspelt argument fails."""
    result = run("mypy", program)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_public_api_is_typed(tmp_path: Path) -> None:
    probe = tmp_path / "typed_api_probe.py"  # outside the checkout: the suite writes nothing into it
    probe.write_text(
        'from pulumi_sconify import VolumeArgs\n\nVolumeArgs(name=1, sizee="x")  # type: ignore[call-arg]\n'
    )
    result = run("mypy", "--warn-unused-ignores", str(probe))
    assert result.returncode == 1
    assert 'Argument "name" to "VolumeArgs" has incompatible type "int"' in result.stdout
