"""kill -9 of PostgreSQL itself under a write load on two replicas: no acknowledged write is lost, the
replicas serve again once the server is back (without a restart of their own), and the audit chain
verifies."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity, new_certificate_authority
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.fspf import AnchorConflictError, AnchorState
from pulumi_sconify.engine.policy import namespace_session, render_session
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas, identity
from tests.support.policies import counter, namespace, text
from tests.support.postgres import PostgresServer
from tests.support.processes import SAFETY_NET, sconify_executable, wait_for

MASTER_KEY = "6b" * 32


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    own = PostgresServer().initialise().start()  # its own: this test kills it
    yield own
    own.remove()


def test_kill_9_of_postgresql_loses_no_acknowledged_write(server: PostgresServer, tmp_path: Path) -> None:
    authority = tmp_path / "ca"
    authority.mkdir()
    certificate, key = new_certificate_authority()
    (authority / "ca.pem").write_bytes(certificate)
    (authority / "ca-key.pem").write_bytes(key)
    database = server.new_database()
    replicas = [
        RunningCas(
            tmp_path / name, database=database, options=["--ca-dir", str(authority), "--client-rate", "0"]
        ).start(extra_env={"SCONIFY_CAS_MASTER_KEY": MASTER_KEY})
        for name in ("a", "b")
    ]
    try:
        owner = identity(tmp_path, "owner")
        with replicas[0].client(owner) as client:
            client.post_session(namespace())
            client.post_session(text(counter()))
        runtime = replicas[1].runtime()
        runtime.attest()
        acknowledged: dict[str, str] = {}
        swaps: list[int] = []
        failures: list[int] = []
        creators: dict[int, ClientIdentity] = {}
        stop = threading.Event()

        def create_sessions() -> None:
            for batch in range(100):  # a new identity every 500 sessions: each may own 1024
                creator = creators[batch] = identity(tmp_path, f"creator-{batch}")
                with replicas[batch % 2].client(creator) as client:
                    for index in range(batch * 500, batch * 500 + 500):
                        if stop.is_set():
                            return
                        name = f"burst-{index}"
                        try:
                            acknowledged[name] = client.post_session(render_session(namespace_session(name)))
                        except CasError as error:
                            failures.append(error.status)

        def swap_tags() -> None:
            anchor = VolumeAnchor(runtime)
            current = None
            generation = 1
            while not stop.is_set():
                new = AnchorState(generation, generation.to_bytes(16, "big"))
                try:
                    anchor.compare_and_swap("V1", current, new)
                except (CasError, AnchorConflictError):
                    # The answer was lost or the server was away: what is committed is what counts.
                    try:
                        current = anchor.current("V1")
                    except CasError:
                        continue
                    generation = (current.generation if current else 0) + 1
                    continue
                swaps.append(generation)
                current, generation = new, generation + 1

        workers = [threading.Thread(target=create_sessions), threading.Thread(target=swap_tags)]
        for worker in workers:
            worker.start()
        wait_for(lambda: len(acknowledged) >= 20 and len(swaps) >= 20)
        server.kill()
        wait_for(lambda: len(failures) >= 3)  # the replicas noticed: writes are refused, not lost
        server.start()
        before_restart = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= before_restart + 20)  # served again, same processes
        stop.set()
        for worker in workers:
            worker.join(timeout=SAFETY_NET)

        for batch in range(100):
            names = [f"burst-{index}" for index in range(batch * 500, batch * 500 + 500)]
            if not any(name in acknowledged for name in names):
                break
            with replicas[1].client(creators[batch]) as client:
                for name in names:
                    if name in acknowledged:
                        assert client.read_session(name)[1] == acknowledged[name]
        observer = replicas[0].runtime()
        observer.attest()
        state = VolumeAnchor(observer).current("V1")
        assert state is not None and state.generation >= swaps[-1]
        assert set(failures) <= {500}
    finally:
        for replica in replicas:
            replica.stop()
    verified = subprocess.run(
        [sconify_executable(), "cas", "audit", "verify", str(tmp_path / "a"), "--store", database],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"SCONIFY_CAS_MASTER_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin"},
    )
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout
