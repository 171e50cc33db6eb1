"""Two CAS processes on one PostgreSQL serve both APIs correctly at once: one winner per race, a nonce good
on either and used once on both, credentials honoured by either — nothing that matters held in one process."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pulumi_sconify.engine.cas.clients.identity import load_client_identity, new_certificate_authority
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.fspf import AnchorConflictError, AnchorState
from pulumi_sconify.engine.policy import render_session
from pulumi_sconify.engine.runtime.cas import CasConnection, VolumeAnchor
from tests.support.cas import RunningCas, identity
from tests.support.policies import RUNTIME_KEY, counter, namespace, text
from tests.support.postgres import shared_server

MASTER_KEY = "5a" * 32
RACERS = 32
CONFIG_ID = "ns-1/python-session/python-service"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[RunningCas, RunningCas]]:
    """Two replicas: one database, one master key, one CA (as CasDeployment gives them)."""
    authority = tmp_path / "ca"
    authority.mkdir()
    certificate, key = new_certificate_authority()
    (authority / "ca.pem").write_bytes(certificate)
    (authority / "ca-key.pem").write_bytes(key)
    database = shared_server().new_database()
    started = []
    try:
        for name in ("a", "b"):
            replica = RunningCas(tmp_path / name, database=database, options=["--ca-dir", str(authority)])
            started.append(replica.start(extra_env={"SCONIFY_CAS_MASTER_KEY": MASTER_KEY}))
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.stop()


def counter_in(replica: RunningCas, tmp_path: Path) -> str:
    """The counter's policy, uploaded through ``replica``; returns its hash."""
    with replica.client(identity(tmp_path, "owner")) as client:
        client.post_session(namespace())
        return client.post_session(text(counter()))


def assert_one_winner(racer: Callable[[int], int]) -> None:
    """Run :data:`RACERS` racers at once: exactly one succeeds, every other is told of a conflict."""
    with ThreadPoolExecutor(RACERS) as pool:
        statuses = list(pool.map(racer, range(RACERS)))
    assert statuses.count(200) == 1 and statuses.count(409) == RACERS - 1


def attestation_body(nonce: str) -> dict[str, Any]:
    """An attestation of the counter with ``nonce`` and self-reported evidence (its policy accepts it)."""
    return {
        "config_id": CONFIG_ID,
        "measurement": "ab" * 32,
        "nonce": nonce,
        "runtime_key": RUNTIME_KEY,
        "evidence": {"kind": "insecure-software-evidence"},
    }


def status(action: Callable[[], Any]) -> int:
    try:
        action()
    except (CasError, AnchorConflictError) as error:
        return getattr(error, "status", 409)
    return 200


def test_updates_naming_one_predecessor_have_one_winner_across_replicas(
    replicas: tuple[RunningCas, RunningCas], tmp_path: Path
) -> None:
    first = counter_in(replicas[0], tmp_path)
    owner = load_client_identity(tmp_path / "owner")

    def update(index: int) -> int:
        session = counter(predecessor=first)
        service = dataclasses.replace(session.services[0], pwd=f"/p{index}")
        body = render_session(dataclasses.replace(session, services=(service,)))
        with replicas[index % 2].client(owner) as client:
            return status(lambda: client.post_session(body))

    assert_one_winner(update)


def test_tag_swaps_from_one_state_have_one_winner_across_replicas(
    replicas: tuple[RunningCas, RunningCas], tmp_path: Path
) -> None:
    counter_in(replicas[0], tmp_path)
    runtimes = [replicas[index % 2].runtime() for index in range(RACERS)]  # a connection each
    for runtime in runtimes:
        runtime.attest()

    def swap(index: int) -> int:
        anchor = VolumeAnchor(runtimes[index])
        return status(lambda: anchor.compare_and_swap("V1", None, AnchorState(1, index.to_bytes(16, "big"))))

    assert_one_winner(swap)


def test_a_nonce_of_one_replica_is_good_on_the_other_and_only_once(
    replicas: tuple[RunningCas, RunningCas], tmp_path: Path
) -> None:
    counter_in(replicas[0], tmp_path)
    with replicas[0].attestation() as first:
        nonce = first.request("POST", "/v1/attest/nonce", json={"config_id": CONFIG_ID})
    body = attestation_body(nonce["nonce"])
    with replicas[1].attestation() as second:
        granted = second.request("POST", "/v1/attest", json=body)
    assert granted["service"] == "python-service"
    for replica in replicas:
        with replica.attestation() as again, pytest.raises(CasError) as replayed:
            again.request("POST", "/v1/attest", json=body)
        assert replayed.value.status == 401 and "the nonce was used already" in replayed.value.message


def test_a_credential_of_one_replica_is_honoured_by_the_other(
    replicas: tuple[RunningCas, RunningCas], tmp_path: Path
) -> None:
    counter_in(replicas[1], tmp_path)
    runtime = replicas[0].runtime()
    runtime.attest()
    runtime.connection = CasConnection(replicas[1].attest_address, replicas[1].ca)  # now the other one
    VolumeAnchor(runtime).compare_and_swap("V1", None, AnchorState(1, b"\x01" * 16))
    observer = replicas[0].runtime()
    observer.attest()
    assert VolumeAnchor(observer).current("V1") == AnchorState(1, b"\x01" * 16)


def test_a_restart_of_either_replica_voids_outstanding_nonces_everywhere(
    replicas: tuple[RunningCas, RunningCas], tmp_path: Path
) -> None:
    counter_in(replicas[0], tmp_path)
    with replicas[0].attestation() as first:
        nonce = first.request("POST", "/v1/attest/nonce", json={"config_id": CONFIG_ID})
    replicas[1].stop()
    replicas[1].start(extra_env={"SCONIFY_CAS_MASTER_KEY": MASTER_KEY})
    body = attestation_body(nonce["nonce"])
    with replicas[0].attestation() as again, pytest.raises(CasError) as refused:
        again.request("POST", "/v1/attest", json=body)
    assert "issued before the CAS restarted" in refused.value.message
