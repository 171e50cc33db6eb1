"""The smaller findings of issue #31, each from the attacker's side, on both stores: a runtime key of small
order and the keyless signature it allows, a nonce taken to another configuration id, the nonce endpoint as
an oracle of which ids exist, a credential kept across its session's delete and re-creation, a deleted
session's volume, and connections from many addresses."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from pulumi_sconify.engine.cas.clients.client import pinned_context
from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.cas.intake.credentials import Credential, CredentialAuthority
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.runtime.protocol import ATTEST_PATH, NONCE_PATH
from tests.support.cas import RunningCas
from tests.support.policies import MEASUREMENT, RUNTIME_KEY, counter, namespace, text
from tests.support.postgres import store_location

OWNER = "0a" * 32
CONFIG_ID = "ns-1/python-session/python-service"
INSECURE = {"kind": "insecure-software-evidence"}
SMALL_ORDER_KEYS = [
    "00" * 32,  # y = 0: a point of order 4
    "01" + "00" * 31,  # the identity
    "ec" + "ff" * 30 + "7f",  # y = -1: order 2
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
]
"""Encodings of small-order points (from the list libsodium refuses, as in "Taming the many EdDSAs")."""
PATH = "/v1/volumes/V1/state"


def attest_body(config_id: str, nonce: str, runtime_key: str = RUNTIME_KEY) -> dict[str, object]:
    return {
        "config_id": config_id,
        "measurement": MEASUREMENT,
        "nonce": nonce,
        "runtime_key": runtime_key,
        "evidence": INSECURE,
    }


@pytest.fixture
def service(tmp_path: Path) -> CasService:
    cas = CasService(Store(store_location(tmp_path), b"\x07" * 32))
    cas.post_session(namespace().encode(), OWNER)
    cas.post_session(text(counter()).encode(), OWNER)
    return cas


def test_a_keyless_signature_never_verifies() -> None:
    """A credential bound to the all-zero key (as one could be issued before keys were checked): the
    'signature' R = identity, S = 0, made without any private key. OpenSSL's Ed25519 accepted it for about
    a quarter of requests; here for none."""
    authority = CredentialAuthority(b"\x05" * 32)
    token = authority.issue(Credential("ns-1/s", "svc", frozenset({"V1"}), bytes(32), time.time() + 60))
    keyless = ("01" + "00" * 31) + "00" * 32
    for _ in range(64):
        body = os.urandom(16)
        with pytest.raises(Exception, match="not signed by the key the credential is bound to"):
            authority.check(token, keyless, "POST", PATH, body, time.time())


def test_a_runtime_key_of_small_order_is_refused(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    with httpx.Client(base_url=f"https://{cas.attest_address}", verify=pinned_context(cas.ca)) as http:
        for key in SMALL_ORDER_KEYS:
            nonce = http.post(NONCE_PATH, json={"config_id": CONFIG_ID}).json()["nonce"]
            refused = http.post(ATTEST_PATH, json=attest_body(CONFIG_ID, nonce, key))
            assert refused.status_code == 400, key
            assert "small order" in refused.json()["error"]
        nonce = http.post(NONCE_PATH, json={"config_id": CONFIG_ID}).json()["nonce"]
        assert http.post(ATTEST_PATH, json=attest_body(CONFIG_ID, nonce)).status_code == 200


def test_a_nonce_is_good_only_for_the_config_id_it_was_asked_for(service: CasService) -> None:
    other = counter(name="ns-1/other", services=(dataclasses.replace(counter().services[0], name="b"),))
    service.post_session(text(other).encode(), OWNER)
    nonce = service.nonce("ns-1/other/b")["nonce"]
    with pytest.raises(CasError) as caught:
        service.attest(CONFIG_ID, MEASUREMENT, nonce, bytes.fromhex(RUNTIME_KEY), INSECURE)
    assert caught.value.status == 401 and "issued for another configuration id" in caught.value.message
    fresh = service.nonce(CONFIG_ID)["nonce"]
    assert service.attest(CONFIG_ID, MEASUREMENT, fresh, bytes.fromhex(RUNTIME_KEY), INSECURE)["credential"]


def test_the_nonce_endpoint_does_not_tell_which_ids_exist(service: CasService) -> None:
    known = service.nonce(CONFIG_ID)
    for unknown in ("ns-1/python-session/no-such-service", "ns-9/nothing/here", "a/b"):
        answer = service.nonce(unknown)
        assert answer.keys() == known.keys()
        assert answer["accepts"] == known["accepts"] == ["insecure-software-evidence"]
        assert answer["expires_in"] == known["expires_in"]
        assert len(answer["nonce"]) == len(known["nonce"])


def test_a_credential_outlives_nothing_of_a_session_deleted_and_made_again(service: CasService) -> None:
    runtime_key = bytes.fromhex(RUNTIME_KEY)
    grant = service.attest(CONFIG_ID, MEASUREMENT, service.nonce(CONFIG_ID)["nonce"], runtime_key, INSECURE)
    credential = grant["credential"]
    active = service._store.active("ns-1/python-session")
    assert active is not None
    service.delete_session("ns-1/python-session", OWNER, active.hash)

    with pytest.raises(CasError) as gone:
        service.volume_state(_checked(service, credential), "V1")
    assert gone.value.status == 404 and "no longer exists" in gone.value.message  # was a 500
    service.post_session(text(counter()).encode(), OWNER)  # the same name, made again
    with pytest.raises(CasError) as other:
        service.volume_state(_checked(service, credential), "V1")
    assert other.value.status == 403 and "earlier session of this name" in other.value.message
    with pytest.raises(CasError):
        service.swap_volume(_checked(service, credential), "V1", (0, None), (1, b"\x01" * 16))
    again = service.attest(CONFIG_ID, MEASUREMENT, service.nonce(CONFIG_ID)["nonce"], runtime_key, INSECURE)
    assert service.volume_state(_checked(service, again["credential"]), "V1")["generation"] == 0


def _checked(service: CasService, credential: str) -> Credential:
    """The credential as the CAS reads it from the token (its signature is another test's point)."""
    claims = json.loads(base64.urlsafe_b64decode(credential.split(".")[1] + "=="))
    return Credential(
        claims["session"],
        claims["service"],
        frozenset(claims["volumes"]),
        bytes.fromhex(claims["key"]),
        claims["expires"],
        claims.get("lineage"),
    )


def test_many_addresses_together_hold_a_bounded_number_of_connections(tmp_path: Path) -> None:
    cas = RunningCas(
        tmp_path / "cas", options=["--max-connections", "4", "--max-connections-per-address", "3"]
    ).start()
    try:
        context = ssl.create_default_context(cafile=str(cas.ca))
        port = cas.attest_port

        def connect(source: str) -> ssl.SSLSocket:
            raw = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
            return context.wrap_socket(raw, server_hostname="127.0.0.1")

        def answers(connection: ssl.SSLSocket) -> bool:
            try:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: cas\r\n\r\n")
                return connection.recv(4096).startswith(b"HTTP/1.1 200")
            except (ssl.SSLError, OSError):
                return False

        held = [connect(f"127.0.0.{index // 2 + 1}") for index in range(4)]  # two each from two addresses
        assert all(answers(connection) for connection in held)
        try:
            extra = connect("127.0.0.3")  # a third address, within its own share
            assert not answers(extra)
        except (ssl.SSLError, OSError):
            pass  # closed during the handshake: refused just the same
        assert any(
            line.get("event") == "connection_refused" and line.get("reason") == "too many connections"
            for line in cas.log_lines()
        )
        for connection in held:
            connection.close()
    finally:
        cas.stop()
