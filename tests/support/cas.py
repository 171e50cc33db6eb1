"""A real CAS for tests: `sconify cas serve` in its own process, on free loopback ports, with real TLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.client import AttestationClient, CasClient
from pulumi_sconify.engine.cas.clients.identity import ClientIdentity, create_client_identity
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.runtime.cas import CasConnection, CasSession
from tests.support.policies import large_namespace
from tests.support.postgres import store_location, store_option
from tests.support.processes import SAFETY_NET, free_port, sconify, sconify_executable

PORT_ATTEMPTS = 5


class PortTakenError(RuntimeError):
    """The CAS could not bind a port the harness picked: another process took it meanwhile."""


@dataclass
class RunningCas:
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    attest_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    options: list[str] = field(default_factory=list)
    """More ``cas serve`` options (a Kubernetes issuer, a credential lifetime)."""
    database: Path | str = ""
    """Where its state is: ``data_dir/cas.db``, or (``SCONIFY_TEST_STORE=postgresql``) a fresh database of
    the run's PostgreSQL server, kept across restarts of this CAS."""

    def __post_init__(self) -> None:
        if not self.database:
            self.database = store_location(self.data_dir)
        if isinstance(self.database, str) and "--store" not in self.options:
            self.options = [*self.options, "--store", self.database]

    @property
    def ca(self) -> Path:
        return self.data_dir / "cas-ca.pem"

    @property
    def address(self) -> str:
        return f"localhost:{self.client_port}"

    @property
    def attest_address(self) -> str:
        return f"localhost:{self.attest_port}"

    def start(self, extra_env: dict[str, str] | None = None) -> RunningCas:
        """Start and wait until it answers. A port that another process took between :func:`free_port`
        and the CAS's bind (the CAS then exits at once, saying so) is replaced and the start tried again."""
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return self._start(extra_env)
            except PortTakenError:
                self.client_port, self.attest_port = free_port(), free_port()
        return self._start(extra_env)

    def _start(self, extra_env: dict[str, str] | None) -> RunningCas:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sconify_executable(),
                    "cas",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--listen",
                    f"127.0.0.1:{self.client_port}",
                    "--attest-listen",
                    f"127.0.0.1:{self.attest_port}",
                    *self.options,
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, **(extra_env or {})},
            )
        # Waiting for a state (the CAS answers, or has exited); the deadline is only a safety net, generous
        # enough for a machine under load (a CPU hog beside the suite once made 30 s too short).
        deadline = time.monotonic() + SAFETY_NET
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log_path.read_text()
                last = (output.strip().splitlines() or [""])[-1]
                if "cannot listen on" in last:
                    raise PortTakenError(last)
                raise RuntimeError(f"CAS exited with {self.process.returncode}: {output}")
            if self.ca.exists() and self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError("CAS did not come up")

    def _answers(self) -> bool:
        try:
            with AttestationClient(self.attest_address, self.ca, timeout=1) as client:
                client.request("GET", "/health")
            return True
        except Exception:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def rss(self) -> int:
        """The CAS process's resident memory, in bytes."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def log_lines(self) -> list[dict[str, object]]:
        assert self.log_path is not None
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def connection(self, identity: ClientIdentity) -> dict[str, str]:
        """What a CasSession resource is given to reach this CAS as ``identity``."""
        return {
            "cas_client_address": self.address,
            "cas_ca_certificate": self.ca.read_text(),
            "identity_certificate": identity.certificate.read_text(),
            "identity_key": identity.key.read_text(),
        }

    # The clients' request timeout is the suite's safety net, not a client's 15 s: a test waits for the
    # CAS's answer, however loaded the machine (a CPU hog beside 24 uploads of 1 MiB policies once took
    # longer than 15 s).
    def client(self, identity: ClientIdentity) -> CasClient:
        return CasClient(self.address, self.ca, identity, timeout=SAFETY_NET)

    def attestation(self) -> AttestationClient:
        return AttestationClient(self.attest_address, self.ca, timeout=SAFETY_NET)

    def runtime(
        self,
        config_id: str = "ns-1/python-session/python-service",
        measurement: str = "ab" * 32,
        token_file: Path | None = None,
        patience: float = 0.0,
    ) -> CasSession:
        """The runtime's own client, as it attests: its key, a nonce, evidence from ``token_file`` (a
        projected token) when given, else the insecure kind."""
        return CasSession(
            CasConnection(self.attest_address, self.ca),
            config_id,
            measurement,
            patience=patience,
            token_file=token_file or self.data_dir.parent / "no-token",
        )


def identity(directory: Path, name: str = "client") -> ClientIdentity:
    return create_client_identity(directory / name, name)


def audit_verify(cas: RunningCas) -> subprocess.CompletedProcess[str]:
    return sconify("cas", "audit", "verify", str(cas.data_dir), *store_option(cas))


def backup(cas: RunningCas, out: Path) -> None:
    """A backup of ``cas``'s state, taken with the CLI as an operator does."""
    made = sconify(
        "cas", "backup", "create", "--data-dir", str(cas.data_dir), *store_option(cas), "--out", str(out)
    )
    assert made.returncode == 0, made.stderr


def healthy_meanwhile(
    cas: RunningCas, action: Callable[[int], int], count: int, threads: int
) -> tuple[list[int], int]:
    """``action(0 … count-1)`` from ``threads`` threads while health checks are asked, each answered: the
    statuses, and how many health checks were answered meanwhile."""
    health_answers = 0
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(action, index) for index in range(count)]
        with cas.attestation() as attestation:
            while not all(future.done() for future in futures):
                assert attestation.request("GET", "/health") == {"status": "ok"}
                health_answers += 1
        return [future.result() for future in futures], health_answers


def second_upload_refused(cas: RunningCas, tmp_path: Path) -> CasError:
    """One self-made identity stores a large policy; another's is refused: the refusal."""
    with cas.client(identity(tmp_path, "first")) as client:
        client.post_session(large_namespace("ns-big"))
    with cas.client(identity(tmp_path, "second")) as client, pytest.raises(CasError) as refused:
        client.post_session(large_namespace("ns-bog"))
    return refused.value
