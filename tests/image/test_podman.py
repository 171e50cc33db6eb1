"""A real container engine runs the confidential image (podman with runc, as this machine allows)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.provider.fspf import generate_key
from pulumi_sconify.provider.image.reference import parse_reference
from pulumi_sconify.provider.image.sconify import SconifyOptions, sconify
from tests.image.counter_image import TAG, counter_layout

pytestmark = pytest.mark.slow
PODMAN = [
    "podman",
    "--runtime",
    "runc",
    "run",
    "--rm",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]


def test_podman_runs_the_confidential_image(tmp_path: Path) -> None:
    assert shutil.which("podman"), "podman is installed by .ci/setup"
    destination = f"oci:{tmp_path / 'confidential'}:1"
    sconify(
        SconifyOptions(
            source=parse_reference(f"oci:{counter_layout()}:{TAG}"),
            destination=parse_reference(destination),
            command="python3 /code/app.py",
            fspf_key=generate_key(),
            dirs=("/code",),
            volumes=(("V1", "/V1"),),
        )
    )
    entrypoint = subprocess.run(
        [*PODMAN, destination], capture_output=True, text=True, timeout=300, check=False
    )
    # The runtime is a placeholder until the runtime lands: it must refuse, loudly, not run the program.
    assert entrypoint.returncode == 70
    assert "[SCONIFY|FATAL] this image carries the placeholder runtime" in entrypoint.stderr
    look = subprocess.run(
        [
            *PODMAN,
            "--entrypoint",
            "python3",
            destination,
            "-c",
            "import os; print(os.listdir('/code'), os.path.isfile('/fspf/fs.fspf'), "
            "os.path.isdir('/sconify/volumes/V1'))",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert look.returncode == 0, look.stderr
    assert look.stdout.strip() == "[] True True"  # no plaintext of /code in the running container
