"""Volume credentials from attestation: short-lived, bound to one session's service and its volumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulumi_sconify.engine.cas.intake.credentials import Credential
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.runtime.protocol import request_signing_input
from tests.support.policies import MEASUREMENT, counter, namespace, text
from tests.support.postgres import store_location

OWNER = "0a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cas(tmp_path: Path, clock: Clock) -> CasService:
    service = CasService(Store(store_location(tmp_path), b"\x07" * 32), clock=clock, credential_lifetime=60)
    service.post_session(namespace().encode(), OWNER)
    service.post_session(text(counter()).encode(), OWNER)
    return service


CONFIG_ID = "ns-1/python-session/python-service"
PATH = "/v1/volumes/V1/state"


class Runtime:
    """What a runtime holds after attesting: its key and its credential."""

    def __init__(self, cas: CasService) -> None:
        self.key = Ed25519PrivateKey.generate()
        public = self.key.public_key().public_bytes_raw()
        nonce = cas.nonce(CONFIG_ID)["nonce"]
        evidence = {"kind": "insecure-software-evidence"}
        self.token = str(cas.attest(CONFIG_ID, MEASUREMENT, nonce, public, evidence)["credential"])

    def sign(self, method: str = "GET", path: str = PATH, body: bytes = b"") -> str:
        return self.key.sign(request_signing_input(method, path, body, self.token)).hex()

    def credential(self, cas: CasService) -> Credential:
        return cas.authorize(self.token, self.sign(), "GET", PATH, b"")


def test_credential_expires(cas: CasService, clock: Clock) -> None:
    runtime = Runtime(cas)
    assert cas.volume_state(runtime.credential(cas), "V1")["generation"] == 0
    clock.now += 61
    with pytest.raises(CasError) as caught:
        runtime.credential(cas)
    assert caught.value.status == 401
    assert "expired" in caught.value.message


def test_credential_survives_a_new_cas_on_the_same_store(
    tmp_path: Path, cas: CasService, clock: Clock
) -> None:
    runtime = Runtime(cas)
    again = CasService(Store(cas._store.location, b"\x07" * 32), clock=clock)
    assert again.volume_state(runtime.credential(again), "V1")["volume"] == "V1"
    other_master = CasService(Store(store_location(tmp_path / "other"), b"\x08" * 32), clock=clock)
    with pytest.raises(CasError) as caught:
        runtime.credential(other_master)
    assert caught.value.status == 401


def test_a_credential_needs_its_key_and_the_request_it_signed(cas: CasService) -> None:
    runtime, other = Runtime(cas), Runtime(cas)
    for token, signature, method in (
        (runtime.token, other.sign(), "GET"),  # another runtime's key
        (runtime.token, runtime.sign("POST"), "GET"),  # signed for another request
        (other.token, runtime.sign(), "GET"),  # another credential
        (runtime.token + "x", runtime.sign(), "GET"),
        ("c1.e30.AAAA", runtime.sign(), "GET"),
    ):
        with pytest.raises(CasError) as caught:
            cas.authorize(token, signature, method, PATH, b"")
        assert caught.value.status == 401


def test_credential_covers_only_its_service_volumes(cas: CasService) -> None:
    with pytest.raises(CasError) as caught:
        cas.swap_volume(Runtime(cas).credential(cas), "V9", (0, None), (1, b"\x00" * 16))
    assert caught.value.status == 403


def test_a_nonce_is_used_once(cas: CasService) -> None:
    nonce = cas.nonce(CONFIG_ID)["nonce"]
    key, evidence = b"\x01" * 32, {"kind": "insecure-software-evidence"}
    cas.attest(CONFIG_ID, MEASUREMENT, nonce, key, evidence)
    with pytest.raises(CasError) as caught:
        cas.attest(CONFIG_ID, MEASUREMENT, nonce, key, evidence)
    assert caught.value.status == 401


def test_a_nonce_expires(cas: CasService, clock: Clock) -> None:
    nonce = cas.nonce(CONFIG_ID)["nonce"]
    clock.now += 61
    with pytest.raises(CasError) as caught:
        cas.attest(CONFIG_ID, MEASUREMENT, nonce, b"\x01" * 32, {"kind": "insecure-software-evidence"})
    assert caught.value.status == 401
    assert "expired" in caught.value.message


def test_generation_must_advance_by_one(cas: CasService) -> None:
    with pytest.raises(CasError) as caught:
        cas.swap_volume(Runtime(cas).credential(cas), "V1", (0, None), (2, b"\x00" * 16))
    assert caught.value.status == 409


def test_access_entries_by_certificate_and_key_hash(tmp_path: Path) -> None:
    from pulumi_sconify.engine.cas.clients.identity import create_client_identity
    from pulumi_sconify.engine.cas.server.service import allowed

    me = create_client_identity(tmp_path / "me")
    pem = me.certificate.read_text()
    assert allowed((pem,), me.key_hash, creator="other")
    assert allowed((me.key_hash,), me.key_hash, creator="other")
    assert allowed(("CREATOR",), me.key_hash, creator=me.key_hash)
    assert allowed(("ANY",), me.key_hash, creator="other")
    assert not allowed(("NONE",), me.key_hash, creator=me.key_hash)
    assert not allowed(("CREATOR", "ab" * 32), me.key_hash, creator="other")
