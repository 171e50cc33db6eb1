"""The CAS's TLS files: its own CA by default, or a CA handed in (``--ca-dir``) as CasDeployment does."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from pulumi_sconify.engine.cas.identity import IdentityError, ensure_server_pki, new_certificate_authority


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
