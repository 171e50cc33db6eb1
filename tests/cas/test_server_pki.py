"""The CAS's TLS files: its own CA by default, or a CA handed in (``--ca-dir``) as CasDeployment does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pulumi_sconify.engine.cas.clients.identity import (
    SERVER_VALIDITY,
    IdentityError,
    ensure_server_pki,
    new_certificate_authority,
)


def _issuer(path: Path) -> x509.Name:
    return x509.load_pem_x509_certificate(path.read_bytes()).issuer


def _write_ca(directory: Path, common_name: str) -> Path:
    directory.mkdir()
    certificate, key = new_certificate_authority(common_name)
    (directory / "ca.pem").write_bytes(certificate)
    (directory / "ca-key.pem").write_bytes(key)
    return directory


def test_a_handed_in_ca_issues_the_server_certificate(tmp_path: Path) -> None:
    handed = _write_ca(tmp_path / "ca", "made by Pulumi")
    pki = ensure_server_pki(tmp_path / "tls", ["cas.example"], handed)
    assert pki.ca_certificate == handed / "ca.pem"
    assert _issuer(pki.certificate).rfc4514_string() == "CN=made by Pulumi"
    assert not (tmp_path / "tls" / "ca-key.pem").exists()  # the key stays where it was handed in
    first = pki.certificate.read_bytes()
    assert ensure_server_pki(tmp_path / "tls", ["cas.example"], handed).certificate.read_bytes() == first


def test_a_new_ca_reissues_the_server_certificate(tmp_path: Path) -> None:
    ensure_server_pki(tmp_path / "tls", [], _write_ca(tmp_path / "one", "one"))
    pki = ensure_server_pki(tmp_path / "tls", [], _write_ca(tmp_path / "two", "two"))
    assert _issuer(pki.certificate).rfc4514_string() == "CN=two"


def test_an_incomplete_ca_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.pem").write_bytes(new_certificate_authority()[0])
    with pytest.raises(IdentityError, match=r"expected ca\.pem and ca-key\.pem"):
        ensure_server_pki(tmp_path / "tls", [], tmp_path / "ca")
    assert not (tmp_path / "tls" / "server.pem").exists()


def _server_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_server_certificate_lasts_months_and_is_renewed_under_the_same_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = ensure_server_pki(tmp_path / "tls", ["cas.example"])
    first = _server_certificate(pki.certificate)
    assert first.not_valid_after_utc - first.not_valid_before_utc <= SERVER_VALIDITY + timedelta(minutes=5)
    ca = pki.ca_certificate.read_bytes()
    # Not yet due: kept.
    assert ensure_server_pki(tmp_path / "tls", ["cas.example"]).certificate.read_bytes() == _pem(first)
    # Seventy days on, less than thirty are left: renewed, by the same CA, which clients keep pinned.
    later = datetime.now(UTC) + timedelta(days=70)
    monkeypatch.setattr("pulumi_sconify.engine.cas.clients.identity._now", lambda: later)
    renewed = _server_certificate(ensure_server_pki(tmp_path / "tls", ["cas.example"]).certificate)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert pki.ca_certificate.read_bytes() == ca
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))


def test_a_ten_year_server_certificate_of_an_earlier_version_is_replaced(tmp_path: Path) -> None:
    pki = ensure_server_pki(tmp_path / "tls", [])
    ca_key = serialization.load_pem_private_key((tmp_path / "tls" / "ca-key.pem").read_bytes(), password=None)
    old = _server_certificate(pki.certificate)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ten_years = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=3650))
        .add_extension(
            old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki.certificate.write_bytes(_pem(ten_years))
    replaced = _server_certificate(ensure_server_pki(tmp_path / "tls", []).certificate)
    assert replaced.not_valid_after_utc - replaced.not_valid_before_utc <= SERVER_VALIDITY + timedelta(
        minutes=5
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_the_running_server_takes_the_renewed_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from OpenSSL import SSL

    from pulumi_sconify.engine.cas.server.server import _TlsContext

    pki = ensure_server_pki(tmp_path / "tls", [])
    tls = _TlsContext(pki.certificate, pki.key, require_client_certificate=False)
    before = tls.getContext()
    later = datetime.now(UTC) + timedelta(days=70)
    monkeypatch.setattr("pulumi_sconify.engine.cas.clients.identity._now", lambda: later)
    ensure_server_pki(tmp_path / "tls", [])
    tls.reload()
    after = tls.getContext()
    assert after is not before
    serving = SSL.Connection(after, None).get_certificate()  # what a new connection presents
    assert serving is not None
    assert serving.to_cryptography() == _server_certificate(pki.certificate)
