"""A CAS verifies its PostgreSQL server as CasDeployment configures it for a remote database (Azure's):
``PGSSLMODE=verify-full`` and ``PGSSLROOTCERT`` set to the roots given. Against a real server that speaks
TLS only, with a certificate for ``localhost`` from a CA of the test's own: the CAS connects with the
right roots and name, and refuses — before it serves anything — a server whose certificate chains to
another root (someone posing as the database) or does not name the host it is reached as."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ensure_server_pki, new_certificate_authority
from tests.support.cas import RunningCas
from tests.support.postgres import PostgresServer
from tests.support.processes import sconify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, Path]]:
    """A server with TLS only (no plain connection over TCP), its certificate issued by a CA of the test's
    own for ``localhost`` and ``127.0.0.1`` (the CAS's own PKI code makes both); and the CA's certificate."""
    pki_directory = tmp_path_factory.mktemp("database-pki")
    pki = ensure_server_pki(pki_directory / "server", [])  # a new CA, and a server certificate from it
    server = PostgresServer(
        {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}
    ).initialise()
    server.own(server.data / "server.crt", pki.certificate.read_bytes())
    server.own(server.data / "server.key", pki.key.read_bytes())
    server.own(
        server.data / "pg_hba.conf",
        b"local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    server.start()
    try:
        yield server, pki.ca_certificate
    finally:
        server.remove()


def verifying(roots: Path) -> dict[str, str]:
    """The CAS's environment as CasDeployment sets it for a store with a CA certificate."""
    return {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(roots)}


def serve_once(data_dir: Path, url: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``cas serve`` on the store, which must fail before it listens (ports 0: none is taken)."""
    return sconify(
        "cas", "serve", "--data-dir", str(data_dir), "--store", url,
        "--listen", "127.0.0.1:0", "--attest-listen", "127.0.0.1:0", env=environment,
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
    impostor_roots.write_bytes(new_certificate_authority("someone else")[0])
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
    # The same server under a name its certificate does not hold (libpq connects to hostaddr, verifies
    # the name).
    url = server.new_database().replace("@127.0.0.1:", "@database.example:") + "?hostaddr=127.0.0.1"
    refused = serve_once(tmp_path / "cas", url, verifying(roots))
    assert refused.returncode != 0
    assert "cannot connect to PostgreSQL" in refused.stderr
    assert "does not match host name" in refused.stderr
