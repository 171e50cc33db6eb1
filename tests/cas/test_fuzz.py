"""Schemathesis fuzzes both APIs from the OpenAPI document: no request may cause a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.paths import REPOSITORY
from tests.support.policies import counter, namespace, text

OPENAPI = REPOSITORY / "engine" / "cas" / "server" / "openapi.json"


def schemathesis(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a test dependency"
    return subprocess.run(
        [
            executable,
            "run",
            str(OPENAPI),
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "20261127",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_client_api_fuzz(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    result = schemathesis(
        "--url",
        f"https://{cas.address}",
        "--tls-verify",
        str(cas.ca),
        "--request-cert",
        str(owner.certificate),
        "--request-cert-key",
        str(owner.key),
        "--exclude-path-regex",
        "^/v1/(attest|volumes)",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
    assert not [line for line in cas.log_lines() if line.get("event") == "internal_error"]


@pytest.mark.slow
def test_attestation_api_fuzz(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    result = schemathesis(
        "--url",
        f"https://{cas.attest_address}",
        "--tls-verify",
        str(cas.ca),
        "--include-path-regex",
        "^/(v1/(attest|volumes)|health)",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
    assert not [line for line in cas.log_lines() if line.get("event") == "internal_error"]
