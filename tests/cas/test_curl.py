"""The curl commands SCONE users run against a CAS work against ours unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.policies import counter, namespace, text

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/setup")


def curl(cas: RunningCas, identity: ClientIdentity | None, *args: str) -> subprocess.CompletedProcess[str]:
    credentials = ["--cert", str(identity.certificate), "--key", str(identity.key)] if identity else []
    return subprocess.run(
        ["curl", "-sS", "--cacert", str(cas.ca), *credentials, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_scone_style_upload_and_read(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
    (tmp_path / "namespace.yml").write_text(namespace())
    (tmp_path / "session.yml").write_text(text(counter()))
    url = f"https://{cas.address}"

    created = curl(
        cas,
        owner,
        "-w",
        "\n%{http_code}",
        "--data-binary",
        f"@{tmp_path / 'namespace.yml'}",
        f"{url}/v1/sessions",
    )
    assert created.stdout.splitlines()[-1] == "201"
    legacy = curl(
        cas, owner, "-w", "\n%{http_code}", "--data-binary", f"@{tmp_path / 'session.yml'}", f"{url}/session"
    )
    body, code = legacy.stdout.splitlines()
    assert code == "201"
    digest = json.loads(body)["hash"]

    read = curl(cas, owner, f"{url}/v1/sessions/ns-1/python-session")
    document = json.loads(read.stdout)
    assert document["hash"] == digest
    assert document["session"] == text(counter())  # `jq -r .session` gives back the YAML as uploaded


def test_without_a_client_certificate_the_handshake_fails(cas: RunningCas) -> None:
    result = curl(cas, None, f"https://{cas.address}/v1/version")
    assert result.returncode != 0  # TLS alert: certificate required
    assert result.stdout == ""


def test_attestation_api_is_server_authenticated_only(cas: RunningCas) -> None:
    result = curl(cas, None, f"https://{cas.attest_address}/health")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"status": "ok"}


def test_the_cas_identity_is_pinned(cas: RunningCas, owner: ClientIdentity, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(owner.certificate.read_bytes())
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(other_ca),
            "--cert",
            str(owner.certificate),
            "--key",
            str(owner.key),
            f"https://{cas.address}/v1/version",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 60  # peer certificate cannot be authenticated with the given CA
