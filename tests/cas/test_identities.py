"""Client identities the CAS refuses: weak keys, certificates outside their validity; and the TLS it
speaks (1.2 with ECDHE and AEAD only, or 1.3)."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from pulumi_sconify.engine.cas.clients.identity import (
    ClientIdentity,
    IdentityError,
    client_identity,
    load_client_identity,
)
from pulumi_sconify.engine.errors import CasError
from tests.support.cas import RunningCas
from tests.support.policies import namespace

NOW = datetime.now(UTC)


def make_identity(
    directory: Path,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
) -> ClientIdentity:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, algorithm)
    )
    directory.mkdir(parents=True)
    (directory / "client.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "client-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return load_client_identity(directory)


def refusal(cas: RunningCas, identity: ClientIdentity) -> CasError:
    with pytest.raises(CasError) as refused, cas.client(identity) as client:
        client.post_session(namespace())
    return refused.value


def attacker_post(cas: RunningCas, identity: ClientIdentity) -> str:
    """POST a session as a client that presents any key (OpenSSL's security level 0): the CAS's answer, or
    the TLS alert that ended the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(cas.ca))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(str(identity.certificate), str(identity.key))
    host, _, port = cas.address.rpartition(":")
    body = namespace().encode()
    request = (
        f"POST /v1/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    try:
        with (
            socket.create_connection((host, int(port))) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    except (ssl.SSLError, ConnectionResetError) as alert:
        return f"handshake refused: {alert}"
    return answer.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits is too weak"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "curve secp224r1 is not accepted"),
        (lambda: dsa.generate_private_key(2048), "DSA key is not accepted"),
    ],
)
def test_weak_keys_are_no_identity(cas: RunningCas, tmp_path: Path, make: object, reason: str) -> None:
    identity = make_identity(tmp_path / "weak", make())  # type: ignore[operator]
    # The CAS's own rule, whatever TLS let through...
    certificate = x509.load_pem_x509_certificate(identity.certificate.read_bytes())
    with pytest.raises(IdentityError, match=reason):
        client_identity(certificate, NOW)
    # ...and over the wire nothing is created: OpenSSL refuses the handshake, or the CAS answers 401.
    answer = attacker_post(cas, identity)
    assert answer.startswith("handshake refused") or (
        answer.startswith("HTTP/1.1 401") and reason in answer
    ), answer
    with cas.client(identity_for_reading(tmp_path)) as reader:
        with pytest.raises(CasError) as missing:
            reader.read_session("ns-1")
        assert missing.value.status in (403, 404)


def identity_for_reading(tmp_path: Path) -> ClientIdentity:
    return make_identity(tmp_path / "reader", ec.generate_private_key(ec.SECP256R1()))


def test_certificates_outside_their_validity_are_no_identity(cas: RunningCas, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    expired = make_identity(
        tmp_path / "expired", key, not_before=NOW - timedelta(days=60), not_after=NOW - timedelta(days=1)
    )
    assert "expired" in refusal(cas, expired).message
    future = make_identity(tmp_path / "future", key, not_before=NOW + timedelta(days=1))
    assert "not valid yet" in refusal(cas, future).message


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
)
def test_strong_keys_are_identities(cas: RunningCas, tmp_path: Path, make: object) -> None:
    identity = make_identity(tmp_path / "strong", make())  # type: ignore[operator]
    with cas.client(identity) as client:
        assert len(client.post_session(namespace())) == 64


def _handshake(cas: RunningCas, ciphers: str) -> str:
    context = ssl.create_default_context(cafile=str(cas.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    host, _, port = cas.attest_address.rpartition(":")
    with (
        socket.create_connection((host, int(port))) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return cipher[0]


def test_tls_12_offers_forward_secret_aead_suites_only(cas: RunningCas) -> None:
    assert "GCM" in _handshake(cas, "ECDHE+AESGCM")
    for legacy in ("ECDHE+AES128+SHA1", "AES128-SHA256", "AES256-GCM-SHA384"):  # CBC with SHA-1, no ECDHE
        with pytest.raises(ssl.SSLError):
            _handshake(cas, legacy)
