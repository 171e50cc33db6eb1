"""The distribution installs both editable (this environment) and as a built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pulumi_sconify
from pulumi_sconify.engine.runtime.binary import BINARIES
from tests.support.paths import REPOSITORY


def _packages_in(folder: Path, prefix: str) -> set[str]:
    return {
        prefix + "." + ".".join(init.parent.relative_to(folder).parts) if init.parent != folder else prefix
        for init in folder.rglob("__init__.py")
    }


def test_editable_install_imports_from_the_checkout() -> None:
    from pulumi_sconify import components, provider
    from pulumi_sconify.engine import policy

    assert Path(pulumi_sconify.__file__).resolve().parent == (REPOSITORY / "pulumi_sconify").resolve()
    assert Path(policy.__file__).resolve().is_relative_to(REPOSITORY / "engine")
    assert Path(provider.__file__).resolve().is_relative_to(REPOSITORY / "provider")
    assert Path(components.__file__).resolve().is_relative_to(REPOSITORY / "components")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPOSITORY)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("pulumi_sconify-*.whl")
    return built


def test_wheel_holds_every_package_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in modules if n.endswith("/__init__.py")}
    expected = (
        _packages_in(REPOSITORY / "engine", "pulumi_sconify.engine")
        | _packages_in(REPOSITORY / "provider", "pulumi_sconify.provider")
        | _packages_in(REPOSITORY / "components", "pulumi_sconify.components")
        | {"pulumi_sconify"}
    )
    assert packages == expected
    assert "pulumi_sconify/py.typed" in names
    assert "pulumi_sconify/engine/policy/counter-example.yaml" in names
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/", "runtime/")) for n in names)
    # The runtime images carry, built (users of the wheel need no Go), and nothing of its sources.
    for architecture in ("amd64", "arm64"):
        name = f"pulumi_sconify/engine/runtime/bin/sconify-run-{architecture}"
        assert zipfile.ZipFile(wheel).read(name) == (BINARIES / f"sconify-run-{architecture}").read_bytes()
    assert not any(n.endswith(".go") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sconify = pulumi_sconify.engine.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_installs_and_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    # Dependencies are already in this environment; the wheel's own files go to a fresh folder that
    # comes first on the path, so the import below must come from the wheel, not the checkout.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import pulumi_sconify, pulumi_sconify.engine.policy as p; print(pulumi_sconify.__file__); "
        "from importlib import resources; "
        "print(p.parse_session(resources.files(p).joinpath('counter-example.yaml').read_text()).name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    where, name = result.stdout.split()
    assert Path(where).is_relative_to(target)
    assert name == "ns-4027319958162/python-session"
    cli = subprocess.run(
        [sys.executable, "-m", "pulumi_sconify.engine.cli", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert cli.stdout.startswith("sconify 0.")


def test_the_package_re_exports_every_component_and_resource() -> None:
    from pulumi_sconify import components
    from pulumi_sconify.provider import resources

    public = {name for name in components.__all__ if name not in ("CasEndpoint", "KubernetesCluster")}
    public |= {name for name in resources.__all__ if not name.endswith("Provider")}
    assert public <= set(pulumi_sconify.__all__)
    for name in public:
        home = components if name in components.__all__ else resources
        assert getattr(pulumi_sconify, name) is getattr(home, name)
