"""Volume credentials from attestation: short-lived, bound to one session's service and its volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulumi_sconify.provider.cas import service as service_module
from pulumi_sconify.provider.cas.service import CasError, CasService
from pulumi_sconify.provider.cas.store import Store
from tests.cas.policies import MEASUREMENT, counter, namespace, text

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
    service = CasService(Store(tmp_path / "cas.db", b"\x07" * 32), clock=clock, credential_lifetime=60)
    service.post_session(namespace().encode(), OWNER)
    service.post_session(text(counter()).encode(), OWNER)
    return service


def attest(cas: CasService) -> str:
    grant = cas.attest("ns-1/python-session/python-service", MEASUREMENT, {"kind": "software"})
    return str(grant["credential"])


def test_credential_expires(cas: CasService, clock: Clock) -> None:
    credential = attest(cas)
    assert cas.volume_state(credential, "V1")["generation"] == 0
    clock.now += 61
    with pytest.raises(CasError) as caught:
        cas.volume_state(credential, "V1")
    assert caught.value.status == 401


def test_credential_covers_only_its_service_volumes(cas: CasService) -> None:
    with pytest.raises(CasError) as caught:
        cas.swap_volume(attest(cas), "V9", (0, None), (1, b"\x00" * 16))
    assert caught.value.status == 403


def test_oldest_credentials_are_dropped_beyond_the_bound(
    cas: CasService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_CREDENTIALS", 3)
    first = attest(cas)
    others = [attest(cas) for _ in range(3)]
    with pytest.raises(CasError):
        cas.volume_state(first, "V1")
    assert cas.volume_state(others[-1], "V1")["volume"] == "V1"


def test_generation_must_advance_by_one(cas: CasService) -> None:
    credential = attest(cas)
    with pytest.raises(CasError) as caught:
        cas.swap_volume(credential, "V1", (0, None), (2, b"\x00" * 16))
    assert caught.value.status == 409


def test_access_entries_by_certificate_and_key_hash(tmp_path: Path) -> None:
    from pulumi_sconify.provider.cas.identity import create_client_identity
    from pulumi_sconify.provider.cas.service import allowed

    me = create_client_identity(tmp_path / "me")
    pem = me.certificate.read_text()
    assert allowed((pem,), me.key_hash, creator="other")
    assert allowed((me.key_hash,), me.key_hash, creator="other")
    assert allowed(("CREATOR",), me.key_hash, creator=me.key_hash)
    assert allowed(("ANY",), me.key_hash, creator="other")
    assert not allowed(("NONE",), me.key_hash, creator=me.key_hash)
    assert not allowed(("CREATOR", "ab" * 32), me.key_hash, creator="other")
