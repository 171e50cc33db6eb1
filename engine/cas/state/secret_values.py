"""Secrets the CAS generates for a session, and how placeholders and public values render them.

Generated values never leave the CAS except in the configuration of an attested service (and, for
secrets marked ``export_public``, their public part). They are stored encrypted (see :mod:`.store`).
"""

from __future__ import annotations

import datetime
import secrets
import string

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...policy import Secret, SecretKind
from ..clients.identity import certificate_builder, private_pem, x509_name

DEFAULT_SIZE = 32
_ASCII = string.ascii_letters + string.digits + "-_.~+="


SECRET_CERTIFICATE_VALIDITY = datetime.timedelta(days=825)
"""How long a session's generated certificates live: 825 days, the longest Apple's platforms accept for a
TLS server certificate (a session's certificates mostly serve TLS)."""


def _certificate(
    subject_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    dns: tuple[str, ...],
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    subject = x509_name(common_name)
    builder = certificate_builder(
        subject,
        issuer.subject if issuer is not None else subject,
        subject_key.public_key(),
        SECRET_CERTIFICATE_VALIDITY,
    ).add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def generate(secret: Secret, resolved: dict[str, bytes]) -> bytes:
    """A new value for ``secret``. ``resolved`` holds values already generated in this session
    (an x509 certificate needs its private key and its issuer first)."""
    if secret.kind is SecretKind.ASCII:
        return "".join(secrets.choice(_ASCII) for _ in range(secret.size or DEFAULT_SIZE)).encode()
    if secret.kind is SecretKind.BINARY:
        return secrets.token_bytes(secret.size or DEFAULT_SIZE)
    if secret.kind is SecretKind.PRIVATE_KEY:
        return private_pem(ec.generate_private_key(ec.SECP256R1()))
    common_name = secret.common_name or secret.name
    if secret.kind is SecretKind.X509_CA:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(key, common_name, secret.dns, None, key, ca=True)
        return private_pem(key) + certificate.public_bytes(serialization.Encoding.PEM)
    subject_key = (
        _load_key(resolved[secret.private_key])
        if secret.private_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    if secret.issuer:
        issuer_key, issuer_certificate = _split(resolved[secret.issuer])
        certificate = _certificate(
            subject_key, common_name, secret.dns, issuer_certificate, issuer_key, ca=False
        )
    else:
        certificate = _certificate(subject_key, common_name, secret.dns, None, subject_key, ca=False)
    own_key = b"" if secret.private_key else private_pem(subject_key)
    return own_key + certificate.public_bytes(serialization.Encoding.PEM)


def generation_order(session_secrets: tuple[Secret, ...]) -> list[Secret]:
    """Private keys and CAs before the certificates that need them."""
    rank = {SecretKind.PRIVATE_KEY: 0, SecretKind.X509_CA: 1, SecretKind.X509: 2}
    return sorted(session_secrets, key=lambda s: rank.get(s.kind, 0))


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(_key_part(pem), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _key_part(pem: bytes) -> bytes:
    end = b"-----END PRIVATE KEY-----"
    return pem[: pem.index(end) + len(end)] + b"\n" if end in pem else pem


def _certificate_part(pem: bytes) -> bytes:
    start = pem.find(b"-----BEGIN CERTIFICATE-----")
    return pem[start:] if start >= 0 else b""


def _split(pem: bytes) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _load_key(pem), x509.load_pem_x509_certificate(_certificate_part(pem))


def render(secret: Secret, value: bytes, form: str | None, resolved: dict[str, bytes]) -> str:
    """What ``$$SCONE::name$$`` (or ``$$SCONE::name:form$$``) becomes for an attested service.

    Forms: none (the natural text: ascii as is, binary in hex, keys and certificates as PEM), ``hex``,
    ``crt`` (certificate), ``key`` (private key PEM of a certificate's key).
    """
    if secret.kind is SecretKind.ASCII:
        return value.decode()
    if secret.kind is SecretKind.BINARY:
        return value.hex()
    if secret.kind is SecretKind.PRIVATE_KEY:
        return value.decode()
    if form == "key":
        own = _key_part(value) if b"PRIVATE KEY" in value else b""
        return (own or _key_part(resolved.get(secret.private_key or "", b""))).decode()
    return _certificate_part(value).decode()


def public_value(secret: Secret, value: bytes) -> str:
    """The exportable part of a secret marked ``export_public``: never a private key."""
    if secret.kind is SecretKind.ASCII:
        return value.decode()
    if secret.kind is SecretKind.BINARY:
        return value.hex()
    if secret.kind is SecretKind.PRIVATE_KEY:
        key = _load_key(value)
        return (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    return _certificate_part(value).decode()
