"""End to end in real containers (podman with runc): the confidential counter counts across runs on one
encrypted volume, anchored in a real CAS — and a rollback of the volume is refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.provider.cas.identity import ClientIdentity
from pulumi_sconify.provider.fspf import generate_key
from pulumi_sconify.provider.image.policy import confidential_session
from pulumi_sconify.provider.image.reference import parse_reference
from pulumi_sconify.provider.image.sconify import SconifyOptions, SconifyResult, sconify
from pulumi_sconify.provider.policy import namespace_session, render_session
from tests.cas.harness import RunningCas
from tests.image.counter_image import TAG, counter_layout

pytestmark = pytest.mark.slow
PODMAN = [
    "podman",
    "--runtime",
    "runc",
    "run",
    "--rm",
    "--network",
    "host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]


class Counter:
    def __init__(self, cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
        assert shutil.which("podman"), "podman is installed by .ci/setup"
        key = generate_key()
        self.image = f"oci:{tmp_path / 'confidential'}:1"
        options = SconifyOptions(
            source=parse_reference(f"oci:{counter_layout()}:{TAG}"),
            destination=parse_reference(self.image),
            command="python3 /code/app.py",
            fspf_key=key,
            service="python-service",
            dirs=("/code",),
            volumes=(("V1", "/V1"),),
            config_id="ns-e2e/python-session/python-service",
            cas=cas.attest_address,
            cas_certificate=cas.ca.read_bytes(),
        )
        self.result: SconifyResult = sconify(options)
        session = confidential_session(
            namespace="ns-e2e",
            session="python-session",
            service="python-service",
            mrenclave=self.result.mrenclave,
            command=options.command,
            fspf_key=key.hex(),
            fspf_tag=self.result.fspf_tag,
            volumes={"V1": "/V1"},
        )
        with cas.client(owner) as client:
            client.post_session(render_session(namespace_session("ns-e2e")))
            client.post_session(render_session(session))
        self.storage = tmp_path / "volume-V1"
        self.storage.mkdir()

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *PODMAN,
                "--tmpfs",
                "/code",
                "--tmpfs",
                "/V1",
                "-v",
                f"{self.storage}:/sconify/volumes/V1",
                *extra,
                self.image,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def count(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("The number of executions is"))
    return int(line.rsplit(" ", 1)[1])


def test_counts_across_runs_and_refuses_a_rollback(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    counter = Counter(cas, owner, tmp_path)
    assert count(counter.run()) == 0
    snapshot = tmp_path / "snapshot"
    shutil.copytree(counter.storage, snapshot)  # the adversary keeps a copy after run 1
    assert count(counter.run()) == 1
    assert count(counter.run()) == 2

    shutil.rmtree(counter.storage)
    shutil.copytree(snapshot, counter.storage)  # ... and restores it
    rolled_back = counter.run()
    assert rolled_back.returncode == 70
    fatal = [line for line in rolled_back.stderr.splitlines() if line.startswith("[SCONIFY|FATAL]")]
    assert len(fatal) == 1 and "is missing" in fatal[0]
    assert "The number of executions" not in rolled_back.stdout


def test_plaintext_only_on_memory(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
    counter = Counter(cas, owner, tmp_path)
    on_disk = subprocess.run(
        [*PODMAN, "--tmpfs", "/V1", "-v", f"{counter.storage}:/sconify/volumes/V1", counter.image],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert on_disk.returncode == 70
    assert "/code (encrypted region) is not a memory-backed mount" in on_disk.stderr
