"""Where things are: the repository, the committed fixtures, the tests' own Pulumi programs."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPOSITORY = TESTS.parent
FIXTURES = TESTS / "fixtures"
ENGINE_PROGRAMS = TESTS / "pulumi_engine" / "programs"
"""Programs the real engine runs (YAML, Go)."""
COMPONENT_STACKS = TESTS / "components" / "stacks"
"""Programs the component tests run under the strict mock monitor."""
