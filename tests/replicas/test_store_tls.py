"""A CAS verifies its PostgreSQL server as CasDeployment configures it for a remote database (Azure's):
``PGSSLMODE=verify-full`` and ``PGSSLROOTCERT`` set to the roots given. Against a real server that speaks
TLS only, with a certificate for ``localhost`` from a CA of the test's own: the CAS connects with the
right roots and name, and refuses — before it serves anything — a server whose certificate chains to
another root (someone posing as the database) or names another host."""

from __future__ import annotations

import datetime
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cas.harness import RunningCas, sconify_executable
from tests.cas.postgres import PostgresServer

pytestmark = pytest.mark.slow


def certificate_authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def server_certificate(
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], host: str
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(issuer[0], hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, Path]]:
    """A server with TLS only (no plain connection over TCP), its certificate for ``localhost``; and the
    file holding its CA's certificate."""
    authority = certificate_authority("database CA")
    server = PostgresServer(
        {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}
    ).initialise()
    certificate, key = server_certificate(authority, "localhost")
    server.own(server.data / "server.crt", certificate)
    server.own(server.data / "server.key", key)
    server.own(
        server.data / "pg_hba.conf",
        b"local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    server.start()
    roots = tmp_path_factory.mktemp("roots") / "database-ca.pem"
    roots.write_bytes(pem(authority[1]))
    try:
        yield server, roots
    finally:
        server.remove()


def verifying(roots: Path) -> dict[str, str]:
    """The CAS's environment as CasDeployment sets it for a store with a CA certificate."""
    return {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(roots)}


def serve_once(data_dir: Path, url: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``cas serve`` on the store, which must fail before it listens (ports 0: none is taken)."""
    return subprocess.run(
        [
            sconify_executable(), "cas", "serve", "--data-dir", str(data_dir), "--store", url,
            "--listen", "127.0.0.1:0", "--attest-listen", "127.0.0.1:0",
        ],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **environment},
    )  # fmt: skip


def test_the_cas_connects_to_the_server_its_roots_and_name_verify(
    tls_server: tuple[PostgresServer, Path], tmp_path: Path
) -> None:
    server, roots = tls_server
    url = server.new_database().replace("@127.0.0.1:", "@localhost:")
    cas = RunningCas(tmp_path / "cas", database=url).start(verifying(roots))
    try:
        started = next(line for line in cas.log_lines() if line.get("event") == "started")
        assert started["version"]
    finally:
        assert cas.stop() == 0


def test_a_server_that_chains_to_another_root_is_refused(
    tls_server: tuple[PostgresServer, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    impostor_roots = tmp_path / "other-ca.pem"
    impostor_roots.write_bytes(pem(certificate_authority("someone else")[1]))
    url = server.new_database().replace("@127.0.0.1:", "@localhost:")
    refused = serve_once(tmp_path / "cas", url, verifying(impostor_roots))
    assert refused.returncode != 0
    assert "cannot connect to PostgreSQL" in refused.stderr
    assert "certificate verify failed" in refused.stderr
    assert not (tmp_path / "cas" / "cas.db").exists()  # it did not fall back to SQLite


def test_a_server_whose_certificate_names_another_host_is_refused(
    tls_server: tuple[PostgresServer, Path], tmp_path: Path
) -> None:
    server, roots = tls_server
    refused = serve_once(tmp_path / "cas", server.new_database(), verifying(roots))  # 127.0.0.1
    assert refused.returncode != 0
    assert "cannot connect to PostgreSQL" in refused.stderr
    assert "does not match host name" in refused.stderr
