"""The client API: sessions, namespaces, access control, history, delete, public values, bad bodies."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pulumi_sconify.engine.cas.clients.identity import (
    ClientIdentity,
    load_client_identity,
    self_signed_certificate,
)
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import AccessPolicy, parse_session, render_session, session_hash
from tests.support.cas import RunningCas
from tests.support.policies import counter, namespace, text, with_pwd


def status_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(CasError) as caught:
        call()
    return caught.value.status


def setup_counter(cas: RunningCas, owner: ClientIdentity) -> str:
    with cas.client(owner) as client:
        client.post_session(namespace())
        return client.post_session(text(counter()))


def test_create_read_update_history(cas: RunningCas, owner: ClientIdentity) -> None:
    first = setup_counter(cas, owner)
    assert first == session_hash(counter())
    with cas.client(owner) as client:
        stored, digest = client.read_session("ns-1/python-session")
        assert digest == first
        assert parse_session(stored) == counter()

        second_session = with_pwd(counter(predecessor=first), "/code")
        second = client.post_session(text(second_session))
        assert client.read_session("ns-1/python-session")[1] == second
        older, older_hash = client.read_session("ns-1/python-session", first)
        assert older_hash == first
        assert parse_session(older).services[0].pwd == "/"
        # Following predecessor links walks the history.
        assert parse_session(client.read_session("ns-1/python-session")[0]).predecessor == first


def test_update_needs_the_active_hash_as_predecessor(cas: RunningCas, owner: ClientIdentity) -> None:
    first = setup_counter(cas, owner)
    with cas.client(owner) as client:
        assert status_of(lambda: client.post_session(text(counter()))) == 409  # no predecessor
        client.post_session(text(counter(predecessor=first, services=())))
        stale = with_pwd(counter(predecessor=first), "/changed")
        assert status_of(lambda: client.post_session(text(stale))) == 409
        missing = counter(predecessor="0" * 64)
        with pytest.raises(CasError) as caught:
            client.post_session(text(dataclasses.replace(missing, name="ns-1/other")))
        assert caught.value.status == 409
        assert "cannot have a predecessor" in caught.value.message


def test_concurrent_updates_with_one_predecessor_exactly_one_wins(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    first = setup_counter(cas, owner)
    variants = [with_pwd(counter(predecessor=first), f"/p{i}") for i in range(16)]

    def post(session: object) -> int:
        with cas.client(owner) as client:
            try:
                client.post_session(render_session(session))  # type: ignore[arg-type]
                return 201
            except CasError as error:
                return error.status

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(post, variants))
    assert statuses.count(201) == 1
    assert statuses.count(409) == 15


def test_namespace_rights(cas: RunningCas, owner: ClientIdentity, stranger: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
    with cas.client(stranger) as client:
        assert status_of(lambda: client.post_session(text(counter()))) == 403
        assert status_of(lambda: client.post_session(text(counter("ns-missing")))) == 403


def test_create_sessions_right_can_be_granted_by_key_hash(
    cas: RunningCas, owner: ClientIdentity, stranger: ClientIdentity
) -> None:
    shared = parse_session(namespace("ns-shared"))
    shared = dataclasses.replace(
        shared,
        access_policy=AccessPolicy(
            read=("CREATOR",), update=("CREATOR",), create_sessions=("CREATOR", stranger.key_hash)
        ),
    )
    with cas.client(owner) as client:
        client.post_session(render_session(shared))
    with cas.client(stranger) as client:
        client.post_session(text(counter("ns-shared")))
        assert client.read_session("ns-shared/python-session")[1]


def test_strangers_can_neither_read_nor_update(
    cas: RunningCas, owner: ClientIdentity, stranger: ClientIdentity
) -> None:
    first = setup_counter(cas, owner)
    with cas.client(stranger) as client:
        read = status_of(lambda: client.read_session("ns-1/python-session"))
        absent = status_of(lambda: client.read_session("ns-1/no-such-session"))
        assert read == absent == 404  # no hint whether it exists
        assert (
            status_of(lambda: client.post_session(text(with_pwd(counter(predecessor=first), "/changed"))))
            == 403
        )
        assert status_of(lambda: client.delete_session("ns-1/python-session", first)) == 404
        assert status_of(lambda: client.public_values("ns-1/python-session")) == 404


def test_renewed_certificate_with_the_same_key_keeps_its_rights(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    first = setup_counter(cas, owner)
    key = serialization.load_pem_private_key(owner.key.read_bytes(), password=None)
    renewed = tmp_path / "renewed.pem"
    certificate = self_signed_certificate(key, "renewed")  # type: ignore[arg-type]
    assert (
        certificate.serial_number
        != x509.load_pem_x509_certificate(owner.certificate.read_bytes()).serial_number
    )
    renewed.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + owner.key.read_bytes())
    same_key = load_client_identity(renewed)  # one PEM file with certificate and key, like sconify_image's
    assert same_key.key_hash == owner.key_hash
    with cas.client(same_key) as client:
        assert client.read_session("ns-1/python-session")[1] == first
        client.post_session(text(with_pwd(counter(predecessor=first), "/changed")))


def test_delete_extension(cas: RunningCas, owner: ClientIdentity) -> None:
    first = setup_counter(cas, owner)
    with cas.client(owner) as client:
        assert status_of(lambda: client.delete_session("ns-1/python-session", "0" * 64)) == 409
        assert (
            status_of(lambda: client.delete_session("ns-1", session_hash(parse_session(namespace())))) == 409
        )
        client.delete_session("ns-1/python-session", first)
        assert status_of(lambda: client.read_session("ns-1/python-session")) == 404
        assert client.post_session(text(counter())) == first  # a fresh start with the same name


def test_public_values_only_export_public(cas: RunningCas, owner: ClientIdentity) -> None:
    setup_counter(cas, owner)
    with cas.client(owner) as client:
        values = client.public_values("ns-1/python-session")
    assert list(values) == ["ca"]
    assert values["ca"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in values["ca"]


def test_invalid_policy_is_a_400_naming_the_field(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client, pytest.raises(CasError) as caught:
        client.post_session(text(counter()).replace("fspf_key: " + "cd" * 32, "fspf_key: nothex"))
    assert caught.value.status == 400
    assert "services[0].fspf_key: expected 64 hex characters" in caught.value.extra["problems"]
    assert "nothex" not in str(caught.value.extra)


@pytest.mark.parametrize(
    "body",
    [b"\x00\x01\x02binary", b"- just\n- a list\n", b"a: &x [1]\nb: *x\n", "name: x\nversion: '0.3'\n" * 2],
    ids=["binary", "list", "alias", "duplicate-keys"],
)
def test_malformed_bodies_are_400(cas: RunningCas, owner: ClientIdentity, body: bytes | str) -> None:
    with cas.client(owner) as client:
        raw = body.encode() if isinstance(body, str) else body
        response = client._http.post("/v1/sessions", content=raw)
    assert response.status_code == 400
    assert "invalid session policy" in response.json()["error"]


def test_oversized_body_is_413(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        response = client._http.post("/v1/sessions", content=b"#" * (3 * 1024 * 1024))
    assert response.status_code == 413


def test_unknown_endpoint_and_version(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        assert client.version()["api"] == "sconify-cas/1"
        assert status_of(lambda: client.request("GET", "/v1/nothing")) == 404
        assert status_of(lambda: client.request("PUT", "/v1/sessions/x")) == 405
