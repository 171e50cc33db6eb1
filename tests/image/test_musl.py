"""The runtime on a musl image, as Alpine's are: the static runtime needs nothing of the image's C library;
the counter (CPython on musl) counts across runs and a rollback is refused — in real containers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.image.wheels import Target, detect_target
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import PODMAN, ConfidentialCounter, count
from tests.support.images.counter import unpack_layout
from tests.support.images.musl import musl_counter_layout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def musl_layout() -> Path:
    return musl_counter_layout()


def test_the_image_is_a_musl_one(musl_layout: Path, tmp_path: Path) -> None:
    root = unpack_layout(musl_layout, tmp_path / "root")
    assert detect_target(root, "amd64") == Target("3.11", "musl", "x86_64")
    assert not (root / "lib" / "x86_64-linux-gnu").exists()  # no glibc to fall back on


def test_counts_on_musl_and_refuses_a_rollback(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path, musl_layout: Path
) -> None:
    counter = ConfidentialCounter(cas, owner, tmp_path, namespace="ns-musl", native=musl_layout)
    listing = subprocess.run(
        [*PODMAN, "--entrypoint", "/bin/sh", counter.image, "-c", "find /sconify -type f"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    # One static binary, the plan and the pin: no wheels, no Python code of ours in the image.
    assert sorted(listing.stdout.split()) == [
        "/sconify/bin/sconify-run",
        "/sconify/cas-ca.pem",
        "/sconify/measure.json",
    ]

    assert count(counter.run()) == 0
    # An extended attribute added to a file the program loads is seen, whatever the image's C library.
    marked = tmp_path / "os.py"
    with marked.open("wb") as sink:
        subprocess.run(
            [*PODMAN, "--entrypoint", "cat", counter.image, "/usr/lib/python3.11/os.py"],
            stdout=sink,
            timeout=300,
            check=True,
        )
    marked.chmod(0o644)
    os.setxattr(marked, "user.planted", b"1")
    refused = counter.run("-v", f"{marked}:/usr/lib/python3.11/os.py:ro")
    assert refused.returncode == 70, refused.stderr
    assert "os.py failed: extended attribute user.planted added" in refused.stderr
    snapshot = tmp_path / "snapshot"
    shutil.copytree(counter.storage, snapshot)
    assert count(counter.run()) == 1
    assert count(counter.run()) == 2
    shutil.rmtree(counter.storage)
    shutil.copytree(snapshot, counter.storage)
    rolled_back = counter.run()
    assert rolled_back.returncode == 70, rolled_back.stderr
    assert "[SCONIFY|FATAL]" in rolled_back.stderr and "is missing" in rolled_back.stderr
