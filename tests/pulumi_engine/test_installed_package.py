"""The package as a user gets it: the built wheel installed into a fresh virtual environment, its plugin
installed for the engine with the README's one command, and a program copied to a folder of its own —
no path into this checkout — run by the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pulumi_sconify.engine.version import __version__
from tests.support.cas import RunningCas
from tests.support.paths import REPOSITORY
from tests.support.pulumi.engine import Engine, sessions_program

pytestmark = pytest.mark.slow


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A fresh virtual environment with the wheel. Its dependencies are taken from this environment's
    site-packages by a path file, which names the folder only: this environment's editable install of
    the checkout (itself a path file there) is not processed, so the package imports from the wheel."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPOSITORY)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("pulumi_sconify-*.whl")
    assert "pulumi_sconify/pulumi-plugin.json" in zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)  # type: ignore[attr-defined]
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True
    )
    return venv


def test_a_program_anywhere_runs_the_installed_wheels_plugin(
    engine: Engine, installed: Path, cas: RunningCas, tmp_path: Path
) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import pulumi_sconify; print(pulumi_sconify.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed)
    metadata = json.loads((Path(where).parent / "pulumi-plugin.json").read_text())
    assert metadata == {"resource": True, "name": "sconify", "version": __version__}

    # The README's step, with the installed command (not this environment's).
    installer = installed / "bin" / "pulumi-resource-sconify"
    done = subprocess.run(
        [str(installer), "--install", "--pulumi", engine.pulumi],
        env=engine.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (launcher,) = (engine.home / "plugins").glob(f"resource-sconify-v{__version__}/pulumi-resource-sconify")
    assert str(installed / "bin" / "python") in launcher.read_text()

    program = sessions_program(engine, cas, tmp_path / "anywhere", "test")
    assert str(REPOSITORY) not in (program / "Pulumi.yaml").read_text()
    engine.run("up", "--yes", cwd=program)
    assert json.loads(engine.run("stack", "output", "--json", cwd=program).stdout)["session"] == (
        "ns-1/python-session"
    )
    engine.run("destroy", "--yes", cwd=program)


def test_installing_needs_a_version_the_engine_accepts(engine: Engine) -> None:
    """A copy of the sources (no package metadata) has no version to install the plugin under."""
    from pulumi_sconify.provider.plugin.install import PluginInstallError, install

    with pytest.raises(PluginInstallError, match="semantic version"):
        install("0+unknown", engine.pulumi)
    assert not (engine.home / "plugins" / "resource-sconify-v0+unknown").exists()
