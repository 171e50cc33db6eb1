"""Durability and secrecy of the CAS's state: kill -9, restart, audit chain, master key, logs."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.fspf import AnchorState
from pulumi_sconify.engine.policy import namespace_session, render_session
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas, audit_verify
from tests.support.policies import FSPF_KEY, counter, namespace, text
from tests.support.postgres import database_bytes, query
from tests.support.processes import sconify_executable

CONFIG_ID = "ns-1/python-session/python-service"


def test_acknowledged_writes_survive_kill_9(cas: RunningCas, owner: ClientIdentity) -> None:
    acknowledged: dict[str, str] = {}
    swaps: list[int] = []
    stop = threading.Event()

    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    runtime = cas.runtime()
    runtime.attest()

    def create_sessions() -> None:
        with cas.client(owner) as client:
            for index in range(10_000):
                if stop.is_set():
                    return
                name = f"burst-{index}"
                try:
                    acknowledged[name] = client.post_session(render_session(namespace_session(name)))
                except CasError:
                    return

    def swap_tags() -> None:
        anchor = VolumeAnchor(runtime)
        current = None
        for generation in range(1, 10_000):
            if stop.is_set():
                return
            new = AnchorState(generation, generation.to_bytes(16, "big"))
            try:
                anchor.compare_and_swap("V1", current, new)
            except CasError:
                return
            swaps.append(generation)
            current = new

    workers = [threading.Thread(target=create_sessions), threading.Thread(target=swap_tags)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 300  # waiting for the burst to be under way; a safety net only
    while not (len(acknowledged) > 10 and len(swaps) > 10) and time.monotonic() < deadline:
        time.sleep(0.01)
    cas.stop(signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert len(acknowledged) > 10 and len(swaps) > 10, "the burst must be under way when the CAS dies"

    # Reading every acknowledged session back is a burst of its own: beyond one identity's rate limit.
    cas.options.extend(["--client-rate", "0"])
    cas.start()
    with cas.client(owner) as client:
        for name, digest in acknowledged.items():
            assert client.read_session(name)[1] == digest
    grant = cas.runtime().attest()
    (volume,) = grant["configuration"]["volumes"]
    # The last acknowledged swap is there; at most one more (applied, answer lost in the kill).
    assert volume["generation"] in {swaps[-1], swaps[-1] + 1}


def test_audit_log_records_and_detects_edits(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    cas.runtime().attest()
    with pytest.raises(CasError):
        cas.runtime(measurement="00" * 32).attest()
    cas.stop()

    result = audit_verify(cas)
    assert result.returncode == 0, result.stderr
    assert "9 entries, chain intact" in result.stdout
    events = [row[0] for row in query(cas.database, "SELECT event FROM audit ORDER BY seq")]
    assert events == [
        "store.sealed",
        "recovery_keys.sealed",
        "store.rows_bound",
        "store.origin",
        "session.created",
        "session.created",
        "volume.created",
        "attestation.granted",
        "attestation.refused",
    ]

    query(
        cas.database,
        "UPDATE audit SET details = replace(details, 'measurement not', 'measurement was') WHERE seq = 9",
    )
    edited = audit_verify(cas)
    assert edited.returncode == 1
    assert "FATAL: audit entry 9: its content was changed" in edited.stderr

    query(cas.database, "DELETE FROM audit WHERE seq = 3")
    removed = audit_verify(cas)
    assert removed.returncode == 1
    assert "audit entry 4: the chain is broken before it" in removed.stderr


def test_secrets_at_rest_are_encrypted_and_a_wrong_master_key_is_refused(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    configuration = cas.runtime().attest()["configuration"]
    cas.stop()
    raw = database_bytes(cas.database)
    assert FSPF_KEY.encode() not in raw
    assert configuration["volumes"][0]["key"].encode() not in raw
    assert configuration["environment"]["TOKEN"].encode() not in raw
    assert (cas.data_dir / "master.key").stat().st_mode & 0o777 == 0o600

    with pytest.raises(RuntimeError, match="wrong master key"):
        cas.start(extra_env={"SCONIFY_CAS_MASTER_KEY": "11" * 32})


def test_no_generated_secret_in_any_client_response_or_log_line(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    responses: list[str] = []
    with cas.client(owner) as client:
        client.post_session(namespace())
        digest = client.post_session(text(counter()))
        configuration = cas.runtime().attest()["configuration"]
        for method, path in (
            ("GET", "/v1/sessions/ns-1/python-session"),
            ("GET", "/v1/values/session=ns-1/python-session"),
            ("GET", f"/v1/sessions/ns-1/python-session?hash={digest}"),
            ("GET", "/v1/version"),
        ):
            responses.append(client._http.request(method, path).text)
    generated = [
        configuration["command"][3],
        configuration["environment"]["TOKEN"],
        configuration["volumes"][0]["key"],
    ]
    log = cas.log_path.read_text() if cas.log_path else ""
    for secret in generated:
        assert all(secret not in response for response in responses)
        assert secret not in log


def test_graceful_shutdown(cas: RunningCas) -> None:
    assert cas.stop(signal.SIGTERM) == 0
    events = [line["event"] for line in cas.log_lines()]
    assert events[-2:] == ["stopping", "stopped"]


def test_refuses_to_start_with_a_bad_master_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    result = subprocess.run(
        [
            sconify_executable(),
            "cas",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--master-key-file",
            str(bad),
            "--listen",
            "127.0.0.1:0",
            "--attest-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "master key must be 64 hex characters" in result.stderr
    assert "not hex" not in result.stderr
