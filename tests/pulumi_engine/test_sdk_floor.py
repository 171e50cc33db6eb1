"""The package at the lowest Pulumi SDK it declares: the plugin, run by the real engine with that SDK,
serves a program's resources. (Below the floor the plugin cannot import: 3.170 has no
``pulumi.provider.experimental.server``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from tests.support.cas import RunningCas
from tests.support.pulumi.engine import Engine, sdk_floor, sessions_program


def test_the_plugin_serves_a_program_with_the_lowest_sdk_it_declares(
    engine: Engine, cas: RunningCas, tmp_path: Path
) -> None:
    floor, installed = sdk_floor()
    assert (installed / "pulumi").is_dir(), f"pulumi {floor} is installed there by .ci/setup"
    engine.more["PYTHONPATH"] = str(installed)  # ahead of this environment's newer SDK, in every plugin
    seen = subprocess.run(
        [sys.executable, "-c", "from importlib.metadata import version; print(version('pulumi'))"],
        env=engine.environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Version(seen.stdout.strip()) == Version(floor)

    program = sessions_program(engine, cas, tmp_path / "program", "floor")
    engine.run("up", "--yes", cwd=program)
    outputs = json.loads(engine.run("stack", "output", "--json", cwd=program).stdout)
    assert outputs["session"] == "ns-1/python-session"
    engine.run("preview", "--expect-no-changes", cwd=program)
    engine.run("destroy", "--yes", cwd=program)
