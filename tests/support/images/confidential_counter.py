"""The confidential counter in real containers: podman as this machine runs it, and one counter image
sconified and its policy uploaded to a CAS. Shared by the end-to-end tests, the runtime benchmark and the
local demo."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.fspf import generate_key
from pulumi_sconify.engine.image.reference import parse_reference
from pulumi_sconify.engine.image.sconify import SconifyOptions, SconifyResult, sconify
from pulumi_sconify.engine.layout import KUBERNETES_TOKEN
from pulumi_sconify.engine.policy import (
    KubernetesIdentity,
    namespace_session,
    render_session,
    sconified_session,
)
from tests.support.cas import RunningCas
from tests.support.images.counter import TAG, counter_layout
from tests.support.processes import wait_for

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
"""podman as this machine allows it: runc (crun fails on its cgroups), limits not raised, the host's
network (to reach a CAS on loopback)."""


class ConfidentialCounter:
    """The counter image sconified into ``directory``, its policy in ``cas``, and an empty volume."""

    def __init__(
        self,
        cas: RunningCas,
        owner: ClientIdentity,
        directory: Path,
        namespace: str = "ns-e2e",
        native: Path | None = None,
        kubernetes: KubernetesIdentity | None = None,
        program: str = "python3 /code/app.py",
        dirs: tuple[str, ...] = ("/code",),
    ) -> None:
        """``native``: the OCI layout of the native counter (default: the Debian one). The policy pins
        ``kubernetes`` as the workload identity; without one it accepts insecure software evidence, as
        a local run without a cluster must (mount a token with ``token_mount`` for the former)."""
        assert shutil.which("podman"), "podman is installed by .ci/setup"
        key = generate_key()
        self.fspf_key = key
        self.cas, self.config_id = cas, f"{namespace}/python-session/python-service"
        self.image = f"oci:{directory / 'confidential'}:1"
        self.progress: list[str] = []
        options = SconifyOptions(
            source=parse_reference(f"oci:{native or counter_layout()}:{TAG}"),
            destination=parse_reference(self.image),
            command=program,
            fspf_key=key,
            service="python-service",
            dirs=dirs,
            volumes=(("V1", "/V1"),),
            config_id=f"{namespace}/python-session/python-service",
            cas_attestation_address=cas.attest_address,
            cas_ca_certificate=cas.ca.read_bytes(),
        )
        self.dirs = dirs
        self.result: SconifyResult = sconify(options, self.progress.append)
        session = sconified_session(
            namespace=namespace,
            session="python-session",
            service="python-service",
            mrenclave=self.result.mrenclave,
            command=options.command,
            fspf_key=key.hex(),
            fspf_tag=self.result.fspf_tag,
            volumes={"V1": "/V1"},
            kubernetes=kubernetes,
            insecure_software_evidence=kubernetes is None,
        )
        with cas.client(owner) as client:
            client.post_session(render_session(namespace_session(namespace)))
            client.post_session(render_session(session))
        self.storage = directory / "volume-V1"
        self.storage.mkdir()

    @staticmethod
    def token_mount(token_file: Path) -> tuple[str, str]:
        """podman options that mount a projected service-account token where the kubelet would."""
        return ("-v", f"{token_file}:{KUBERNETES_TOKEN}:ro")

    def command(self, *options: str, arguments: tuple[str, ...] = (), memory: str = "") -> list[str]:
        """The podman command line of one run: memory for the encrypted directories and /V1, the volume's
        ciphertext mounted; ``options`` go to podman, ``arguments`` to the container, ``memory`` to every
        tmpfs mount."""
        suffix = f":{memory}" if memory else ""
        return [
            *PODMAN,
            *(part for directory in self.dirs for part in ("--tmpfs", directory + suffix)),
            "--tmpfs",
            "/V1" + suffix,
            "-v",
            f"{self.storage}:/sconify/volumes/V1",
            *options,
            self.image,
            *arguments,
        ]

    def run(
        self, *options: str, arguments: tuple[str, ...] = (), memory: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*options, arguments=arguments, memory=memory),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def count(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("The number of executions is"))
    return int(line.rsplit(" ", 1)[1])


def fatal_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 70, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("[SCONIFY|FATAL]")]
    assert len(lines) == 1, result.stderr
    assert "The number of executions" not in result.stdout
    return lines[0]


class Serving:
    """One run of a confidential service in the background (a database), until :meth:`stop`: started, and
    waited for until ``ready()`` holds or the run has ended."""

    def __init__(self, image: ConfidentialCounter, name: str, ready: Callable[[], bool]) -> None:
        self.name, self.ready = name, ready
        self.process = subprocess.Popen(
            image.command("--name", name), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: self.ready() or self.process.poll() is not None, f"{name} serves, or its run ends")

    def stop(self) -> tuple[int, str]:
        """``podman stop`` (SIGTERM to the runtime, which forwards it): the exit code and standard error."""
        subprocess.run(
            ["podman", "stop", "--time", "120", self.name], capture_output=True, check=False, timeout=300
        )
        _, err = self.process.communicate(timeout=300)
        return self.process.returncode, err
