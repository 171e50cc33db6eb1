"""Identities: who a CAS client is, and how a CAS proves who it is.

A client is identified by its certificate's *public key*, not by the certificate: a renewed certificate
for the same key keeps every right. The identity string that access policies name is the SHA-256 of the
key's DER SubjectPublicKeyInfo, as 64 lower-case hex characters (``key_hash``).

The CAS has its own small PKI, made on first start: a CA (whose certificate clients pin) and a server
certificate for the names the CAS is reached by.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ...errors import EXIT_USAGE, SconifyError

CLIENT_CERT = "client.pem"
CLIENT_KEY = "client-key.pem"
_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=90)
"""The server certificate's life: months, not the CA's ten years (a leaked server key is worth little)."""
RENEW_BEFORE = datetime.timedelta(days=30)
"""A server certificate with less than this left is renewed (at start, and by the running CAS)."""


class IdentityError(SconifyError, ValueError):
    """An identity that cannot be read or made."""

    exit_code = EXIT_USAGE


def key_hash(public_key: PublicKeyTypes) -> str:
    """The identity of a public key: SHA-256 of its DER SubjectPublicKeyInfo, 64 hex."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MIN_RSA_BITS = 2048


def client_identity(certificate: x509.Certificate, now: datetime.datetime) -> str:
    """The identity (key hash) of a client certificate, if it may be one: a key at least as strong as
    P-256 or RSA-2048 (Ed25519 and Ed448 too), in a certificate valid at ``now``. SCONE keys identities
    on the public key alone; refusing weak keys and certificates outside their validity is this CAS's
    choice (docs/cas.md)."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise IdentityError(
                f"an RSA key of {key.key_size} bits is too weak for an identity (2048 at least)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            raise IdentityError(
                f"the curve {key.curve.name} is not accepted for an identity (P-256 or stronger)"
            )
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise IdentityError(
            f"a {type(key).__name__.removesuffix('PublicKey')} key is not accepted for an identity"
        )
    if now < certificate.not_valid_before_utc:
        raise IdentityError("the client certificate is not valid yet")
    if now > certificate.not_valid_after_utc:
        raise IdentityError("the client certificate has expired")
    return key_hash(key)


def certificate_key_hash(pem: str | bytes) -> str:
    """The identity of the key a PEM certificate certifies."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return key_hash(x509.load_pem_x509_certificate(data).public_key())
    except ValueError:
        raise IdentityError("not a valid PEM certificate") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def x509_name(common_name: str) -> x509.Name:
    """The X.509 name with this common name, as every certificate made here is named."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: datetime.timedelta = _VALIDITY,
) -> x509.CertificateBuilder:
    """What every certificate made here shares: a random serial number, and validity from five minutes
    ago (clocks differ) for ``validity``."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
    )


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed client certificate, as SCONE's tooling makes them."""
    return (
        certificate_builder(x509_name(common_name), x509_name(common_name), key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a private file with mode 600 from the start (never world-readable, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


@dataclass(frozen=True)
class ClientIdentity:
    """Where a client identity's certificate and key are, and the identity they stand for."""

    certificate: Path
    key: Path
    key_hash: str


def create_client_identity(directory: Path, common_name: str = "sconify-client") -> ClientIdentity:
    """Write ``client.pem`` and ``client-key.pem`` (mode 600) into ``directory``; never overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate_path, key_path = directory / CLIENT_CERT, directory / CLIENT_KEY
    if certificate_path.exists() or key_path.exists():
        raise IdentityError(f"{directory}: already holds an identity; refusing to overwrite it")
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(key_path, private_pem(key))
    certificate_path.write_bytes(_pem(self_signed_certificate(key, common_name)))
    return ClientIdentity(certificate_path, key_path, key_hash(key.public_key()))


def load_client_identity(location: Path) -> ClientIdentity:
    """An identity directory (``client.pem`` + ``client-key.pem``) or one PEM file holding both."""
    if location.is_dir():
        certificate_path, key_path = location / CLIENT_CERT, location / CLIENT_KEY
    else:
        certificate_path = key_path = location
    try:
        certificate_pem = certificate_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as error:
        raise IdentityError(f"{location}: cannot read identity ({error.strerror})") from None
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise IdentityError(
            f"{location}: expected a PEM certificate and an unencrypted PEM private key"
        ) from None
    if key_hash(key.public_key()) != key_hash(certificate.public_key()):
        raise IdentityError(f"{location}: the certificate is not for this private key")
    return ClientIdentity(certificate_path, key_path, key_hash(certificate.public_key()))


@dataclass(frozen=True)
class ServerPki:
    """The CAS's TLS files."""

    ca_certificate: Path
    certificate: Path
    key: Path
    ca_key: Path
    """The CA's private key: issues server certificates, and signs the CAS's origin (recovery.py)."""


def new_certificate_authority(common_name: str = "sconify CAS CA") -> tuple[bytes, bytes]:
    """A fresh CA for a CAS's server certificates: ``(certificate PEM, private key PEM)``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_certificate = (
        certificate_builder(x509_name(common_name), x509_name(common_name), ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(ca_certificate), private_pem(ca_key)


def ensure_server_pki(directory: Path, hosts: list[str], ca_directory: Path | None = None) -> ServerPki:
    """Create the CAS's CA and server certificate on first start; reuse them afterwards.

    The server certificate is valid for ``localhost``, ``127.0.0.1`` and ``hosts``; if the host list
    grew since it was made, a new server certificate is issued by the same CA (clients keep their pin).
    With ``ca_directory`` (``ca.pem`` and ``ca-key.pem``, e.g. a Kubernetes Secret made by Pulumi) the
    CA is that one, so clients can pin it before the CAS ever starts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_home = ca_directory or directory
    ca_cert_path, ca_key_path = ca_home / "ca.pem", ca_home / "ca-key.pem"
    cert_path, key_path = directory / "server.pem", directory / "server-key.pem"
    if ca_directory is not None and not (ca_cert_path.is_file() and ca_key_path.is_file()):
        raise IdentityError(f"{ca_directory}: expected ca.pem and ca-key.pem")
    if not ca_cert_path.exists():
        certificate_pem, key_pem = new_certificate_authority()
        write_private(ca_key_path, key_pem)
        ca_cert_path.write_bytes(certificate_pem)
    issuer_marker = directory / "issuer.pem"
    if ca_directory is not None and (
        not issuer_marker.exists() or issuer_marker.read_bytes() != ca_cert_path.read_bytes()
    ):
        cert_path.unlink(missing_ok=True)  # a new CA was handed in: issue a new server certificate
        issuer_marker.write_bytes(ca_cert_path.read_bytes())
    names = sorted({"localhost", "127.0.0.1", *hosts})
    if not cert_path.exists() or _names_of(cert_path) != set(names) or _due_for_renewal(cert_path):
        ca_key_loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey)
        ca_certificate = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        server_key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            certificate_builder(
                x509_name("sconify CAS"),
                ca_certificate.subject,
                server_key.public_key(),
                SERVER_VALIDITY,
            )
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key_loaded, hashes.SHA256())
        )
        key_path.unlink(missing_ok=True)
        write_private(key_path, private_pem(server_key))
        cert_path.write_bytes(_pem(certificate))
    return ServerPki(ca_cert_path, cert_path, key_path, ca_key_path)


def _due_for_renewal(certificate_path: Path) -> bool:
    """Whether the server certificate ends within :data:`RENEW_BEFORE`, or was made to last longer than
    :data:`SERVER_VALIDITY` (by an earlier version, for ten years)."""
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    ends, starts = certificate.not_valid_after_utc, certificate.not_valid_before_utc
    return ends - _now() < RENEW_BEFORE or ends - starts > SERVER_VALIDITY + datetime.timedelta(days=1)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names_of(certificate_path: Path) -> set[str]:
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in names}


def cas_audience(ca_certificate: str | bytes) -> str:
    """The audience a Kubernetes token for this CAS carries: the CA's key identity, so a token meant
    for one CAS is refused by every other (another CAS that received it cannot pass it on)."""
    return "sconify-cas:" + certificate_key_hash(ca_certificate)
