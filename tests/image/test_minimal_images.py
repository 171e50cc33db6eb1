"""Images with no Python — a static Go service in a ``scratch`` image (no shell, no C library either) and
BusyBox — sconify and run confidentially in podman, with their volume; the seed's attacks are refused by name
for each: a replaced file, other arguments or environment, a rolled-back or deleted volume."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.images.confidential_counter import PODMAN, ConfidentialCounter, count, fatal_line
from tests.support.images.counter import unpack_layout
from tests.support.images.minimal import BUSYBOX_COUNTER, GREETING, busybox_layout, static_layout

pytestmark = pytest.mark.slow

IMAGES = {
    "static": (static_layout, "/counter", ("/conf",)),
    "busybox": (busybox_layout, f"/bin/sh -c '{BUSYBOX_COUNTER}'", ()),
}


@pytest.fixture(params=sorted(IMAGES))
def counter(
    request: pytest.FixtureRequest, cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> ConfidentialCounter:
    layout, program, dirs = IMAGES[request.param]
    return ConfidentialCounter(
        cas, owner, tmp_path, namespace=f"ns-{request.param}", native=layout(), program=program, dirs=dirs
    )


def test_the_images_have_no_python(tmp_path: Path) -> None:
    static = unpack_layout(static_layout(), tmp_path / "static")
    assert sorted(p.relative_to(static).as_posix() for p in static.rglob("*")) == [
        "conf",
        "conf/greeting",
        "counter",
    ]
    busybox = unpack_layout(busybox_layout(), tmp_path / "busybox")
    assert not list(busybox.rglob("python*")) and (busybox / "bin" / "sh").is_symlink()


def test_counts_across_runs_and_refuses_a_rollback_or_a_deletion(
    counter: ConfidentialCounter, tmp_path: Path
) -> None:
    first = counter.run()
    assert count(first) == 0
    if counter.dirs:
        assert GREETING in first.stdout  # from the encrypted region, decrypted by the runtime
    snapshot = tmp_path / "snapshot"
    shutil.copytree(counter.storage, snapshot)
    assert count(counter.run()) == 1
    assert count(counter.run()) == 2
    shutil.rmtree(counter.storage)
    shutil.copytree(snapshot, counter.storage)
    assert "is missing" in fatal_line(counter.run())  # rolled back
    for path in counter.storage.rglob("*"):
        if path.is_file():
            path.unlink()
    assert "is missing" in fatal_line(counter.run())  # deleted


def test_a_replaced_program_is_refused(counter: ConfidentialCounter, tmp_path: Path) -> None:
    assert count(counter.run()) == 0
    program = "/counter" if "/conf" in counter.dirs else "/bin/busybox"
    replacement = tmp_path / "replacement"
    shutil.copy("/bin/busybox", replacement)  # a working program, but not the one the policy measured
    with replacement.open("ab") as tail:
        tail.write(b"\x00planted")
    replaced = counter.run("-v", f"{replacement}:{program}:ro")
    line = fatal_line(replaced)
    assert "measurement not permitted by the policy" in line
    assert count(counter.run()) == 1  # nothing was lost


def test_other_arguments_and_environment_change_nothing(counter: ConfidentialCounter) -> None:
    assert count(counter.run(arguments=("/V1/count",))) == 0
    assert count(counter.run("-e", "PATH=/tmp", "-e", "LD_PRELOAD=/tmp/x.so")) == 1
    assert "unknown configuration id" in fatal_line(counter.run("-e", "SCONE_CONFIG_ID=ns-x/other/service"))


def test_bypassing_the_runtime_reads_no_plaintext(counter: ConfidentialCounter) -> None:
    assert count(counter.run()) == 0
    entrypoint = "/counter" if "/conf" in counter.dirs else "/bin/cat"
    bypass = subprocess.run(
        [*PODMAN, "--entrypoint", entrypoint, counter.image, "/conf/greeting"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert GREETING not in bypass.stdout and "The number of executions" not in bypass.stdout
