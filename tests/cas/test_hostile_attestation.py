"""The attestation API, which anyone who reaches it may call, against hostile bodies: too deep, too large,
huge numbers, evidence of every kind malformed. Never a server error, always an answer afterwards, and
memory under a stated bound."""

from __future__ import annotations

import json

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas
from tests.support.policies import RUNTIME_KEY, counter, namespace, text

RSS_BOUND = 256 * 1024 * 1024
"""What the CAS may use after the whole table (it uses well under a hundred MiB)."""
CONFIG_ID = "ns-1/python-session/python-service"


def attest_body(evidence: object, **changes: object) -> bytes:
    document = {
        "config_id": CONFIG_ID,
        "measurement": "ab" * 32,
        "nonce": "00" * 40,
        "runtime_key": RUNTIME_KEY,
        "evidence": evidence,
    } | changes
    return json.dumps(document).encode()


HOSTILE: list[tuple[str, str, bytes]] = [
    ("nested evidence", "/v1/attest", attest_body(json.loads("[" * 900 + "]" * 900))),
    ("deep body", "/v1/attest", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
    ("a number of 60,000 digits", "/v1/attest", b'{"config_id": ' + b"9" * 60_000 + b"}"),
    ("a float beyond range", "/v1/attest/nonce", b'{"config_id": 1e400}'),
    ("NaN", "/v1/attest/nonce", b'{"config_id": NaN}'),
    ("not UTF-8", "/v1/attest", b'{"config_id": "\xff\xfe"}'),
    ("config_id of another type", "/v1/attest/nonce", b'{"config_id": ["a", "b"]}'),
    ("huge config_id", "/v1/attest/nonce", json.dumps({"config_id": "n/" * 20_000}).encode()),
    ("unknown evidence kind", "/v1/attest", attest_body({"kind": "k" * 50_000})),
    ("sev-snp report of zeros", "/v1/attest", attest_body({"kind": "sev-snp", "report": "A" * 40_000})),
    ("tdx quote not base64", "/v1/attest", attest_body({"kind": "tdx", "quote": "%%%"})),
    (
        "azure pcrs",
        "/v1/attest",
        attest_body({"kind": "azure-cvm", "pcrs": {str(i): "zz" for i in range(5000)}, "hcl_report": "AA"}),
    ),
    ("runtime key of another type", "/v1/attest", attest_body({"kind": "kubernetes"}, runtime_key=[1, 2])),
    ("nonce as a huge integer", "/v1/attest", attest_body({}, nonce=10**4000)),
    (
        "volume generation of 10**4000",
        "/v1/volumes/V1/state",
        b'{"expected": {"generation": ' + b"1" * 4000 + b"}}",
    ),
]


def test_hostile_bodies_get_answers_never_server_errors(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    answers = {}
    with cas.attestation() as attestation:
        for name, path, body in HOSTILE:
            response = attestation._http.post(path, content=body)
            answers[name] = response.status_code
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
            assert "error" in response.json()
            assert attestation.request("GET", "/health") == {"status": "ok"}, name
    assert cas.rss() < RSS_BOUND
    assert not [line for line in cas.log_lines() if line.get("event") == "internal_error"]


@pytest.mark.parametrize("size", [64 * 1024 + 1, 4 * 1024 * 1024])
def test_bodies_beyond_the_cap_are_dropped_unread(cas: RunningCas, size: int) -> None:
    with cas.attestation() as attestation:
        response = attestation._http.post("/v1/attest", content=b" " * size)
        assert response.status_code == 413
        assert attestation.request("GET", "/health") == {"status": "ok"}
