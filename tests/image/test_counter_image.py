"""Done when: the counter's native image becomes a confidential image in a real local registry,
skopeo inspects it, no layer blob contains the plaintext of /code, the emitted policy validates, and a
second identical run gives the same digest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.policy import parse_session
from tests.support.images.counter import APP, TAG, counter_layout, unpack_layout
from tests.support.images.layers import layer_files, skopeo
from tests.support.processes import sconify
from tests.support.registry import Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layout() -> Path:
    return counter_layout()


def test_counter_image_sconified_registry_to_registry(
    registry: Registry, layout: Path, tmp_path: Path
) -> None:
    skopeo(
        "copy", "--dest-tls-verify=false", f"oci:{layout}:{TAG}", f"docker://{registry.host}/native/counter:1"
    )
    arguments = [
        "image",
        "--from",
        f"docker://{registry.host}/native/counter:1",
        "--to",
        f"docker://{registry.host}/confidential/counter:1",
        "--push-image",
        "--command",
        "python3 /code/app.py",
        "--dir",
        "/code",
        "--volume=V1:/V1",
        "--name",
        "python-session",
        "--service-name",
        "python-service",
        "--fspf-key-file",
        str(tmp_path / "fspf.key"),
        "--json",
    ]
    first = sconify(*arguments)
    assert first.returncode == 0, first.stderr
    output = json.loads(first.stdout)
    assert output["binary"].startswith("/usr/bin/python3")

    inspected = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/confidential/counter:1").stdout
    )
    assert output["image"].endswith(inspected["Digest"])
    assert inspected["Labels"]["io.sconify.mrenclave"] == output["mrenclave"]

    plaintext = APP.read_bytes()
    marker = b"file holding the number of executions"
    assert marker in plaintext
    blobs = layer_files(registry.host, "confidential/counter:1", tmp_path / "pulled")
    assert not any(marker in blob for blob in blobs.values()), "a blob holds the plaintext of /code"

    session = parse_session(output["session"])
    assert session.service("python-service").command == "python3 /code/app.py"
    assert [v.name for v in session.volumes] == ["V1"]

    second = sconify(*arguments)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["image"] == output["image"]
    assert json.loads(second.stdout)["blobs_uploaded"] == 0


def test_native_image_still_runs_python(layout: Path, tmp_path: Path) -> None:
    """Sanity of the fixture: the base really has python3 and click (the runtime issue runs it)."""
    rootfs = unpack_layout(layout, tmp_path / "rootfs")
    assert (rootfs / "code" / "app.py").read_bytes() == APP.read_bytes()
    assert list((rootfs / "usr" / "lib" / "python3" / "dist-packages").glob("click*"))
    assert (
        subprocess.run(["chroot", str(rootfs), "python3", "-c", "import click"], check=False).returncode == 0
    )
