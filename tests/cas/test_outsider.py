"""The attacker's side: everything that is public — the configuration id, the measurement (an image label),
the CAS's CA certificate, network access to both ports — and every evidence an outsider can make up. Not
one answer may carry a key, a secret or a usable credential.

The service pins a Kubernetes workload identity (no insecure toleration), as the components generate it;
the cluster's issuer is :class:`~tests.support.issuer.Cluster`, whose key set the CAS reads from a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pulumi_sconify.engine.cas.clients.client import pinned_context
from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import KubernetesIdentity
from pulumi_sconify.engine.runtime.cas import CasSession, VolumeAnchor
from pulumi_sconify.engine.runtime.protocol import request_signing_input
from tests.support.cas import RunningCas, identity
from tests.support.issuer import ISSUER, WORKLOAD, Cluster, audience_of, elliptic_key
from tests.support.policies import FSPF_KEY, MEASUREMENT, counter, namespace, text

CONFIG_ID = "ns-1/python-session/python-service"


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def k8s_cas(tmp_path: Path, cluster: Cluster, owner: ClientIdentity) -> Iterator[RunningCas]:
    jwks = cluster.write_jwks(tmp_path / "jwks.json")
    running = RunningCas(
        tmp_path / "cas", options=["--kubernetes-issuer", ISSUER, "--kubernetes-jwks", str(jwks)]
    ).start()
    with running.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter(insecure=False, kubernetes=WORKLOAD)))
    yield running
    running.stop()


@pytest.fixture
def legitimate(k8s_cas: RunningCas, cluster: Cluster, tmp_path: Path) -> tuple[CasSession, dict[str, Any]]:
    """The service's own pod: its token mounted, attested; its grant is what nobody else may see."""
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token(audience_of(k8s_cas.ca)))
    runtime = k8s_cas.runtime(token_file=token_file)
    return runtime, runtime.attest()


def secrets_of(grant: dict[str, Any]) -> list[str]:
    configuration = grant["configuration"]
    return [
        FSPF_KEY,
        grant["credential"],
        *(volume["key"] for volume in configuration["volumes"]),
        configuration["environment"]["TOKEN"],
        configuration["command"][3],
    ]


class Outsider:
    """Raw HTTP to the attestation port, pinned to the public CA, with a key of its own."""

    def __init__(self, cas: RunningCas) -> None:
        self.http = httpx.Client(base_url=f"https://{cas.attest_address}", verify=pinned_context(cas.ca))
        self.key = Ed25519PrivateKey.generate()
        self.answers: list[str] = []

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        response = self.http.post(path, content=json.dumps(body).encode(), headers=headers)
        self.answers.append(response.text)
        return response

    def nonce(self) -> str:
        return str(self.post("/v1/attest/nonce", {"config_id": CONFIG_ID}).json()["nonce"])

    def attest(self, evidence: Any, nonce: str | None = None) -> httpx.Response:
        public = self.key.public_key().public_bytes_raw().hex()
        return self.post(
            "/v1/attest",
            {
                "config_id": CONFIG_ID,
                "measurement": MEASUREMENT,
                "nonce": nonce or self.nonce(),
                "runtime_key": public,
                "evidence": evidence,
            },
        )


def _part(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': 'cluster-key-1'})}.{_part(claims)}."


def hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    """The old algorithm-confusion forgery: HS256 'signed' with the issuer's public key as the secret."""
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'cluster-key-1'})}.{_part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_part(mac)}"


def made_up_evidence(cas: RunningCas, cluster: Cluster) -> dict[str, Any]:
    """Every evidence an outsider can make: kinds it may claim, and tokens it may forge."""
    audience = audience_of(cas.ca)
    other_cluster = Cluster()  # same issuer name, another key
    stranger = KubernetesIdentity(ISSUER, "default", "intruder")
    public_pem = cluster.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = cluster.claims(audience)
    return {
        "insecure software": {"kind": "insecure-software-evidence"},
        "old software kind": {"kind": "software", "runtime": "0.1.0"},
        "no kind": {},
        "made-up hardware": {"kind": "sev-snp", "report": "00" * 1184},
        "kubernetes without token": {"kind": "kubernetes"},
        "token of another key": {"kind": "kubernetes", "token": other_cluster.token(audience)},
        "token of an EC key": {
            "kind": "kubernetes",
            "token": jwt.encode(claims, elliptic_key(), "ES256", {"kid": "cluster-key-1"}),
        },
        "alg none": {"kind": "kubernetes", "token": unsigned_token(claims)},
        "HS256 with the public key": {
            "kind": "kubernetes",
            "token": hmac_token(claims, public_pem),
        },
        "expired": {"kind": "kubernetes", "token": cluster.token(audience, exp=claims["iat"] - 120)},
        "not yet valid": {"kind": "kubernetes", "token": cluster.token(audience, nbf=claims["iat"] + 600)},
        "wrong audience": {"kind": "kubernetes", "token": cluster.token("https://kubernetes.default.svc")},
        "the API server's audience too": {
            "kind": "kubernetes",
            "token": cluster.token(audience, aud=["https://kubernetes.default.svc", audience]),
        },
        "wrong namespace": {
            "kind": "kubernetes",
            "token": cluster.token(audience, KubernetesIdentity(ISSUER, "other", "counter")),
        },
        "wrong account": {"kind": "kubernetes", "token": cluster.token(audience, stranger)},
        "wrong issuer": {"kind": "kubernetes", "token": cluster.token(audience, iss="https://evil.example")},
        "no pod binding": {
            "kind": "kubernetes",
            "token": cluster.token(
                audience,
                WORKLOAD,
                **{"kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "counter"}}},
            ),
        },
        "a year long": {"kind": "kubernetes", "token": cluster.token(audience, lifetime=365 * 86400)},
        "garbage": {"kind": "kubernetes", "token": "a.b.c"},
    }


def test_no_made_up_evidence_gets_anything(
    k8s_cas: RunningCas, cluster: Cluster, legitimate: tuple[CasSession, dict[str, Any]]
) -> None:
    outsider = Outsider(k8s_cas)
    for name, evidence in made_up_evidence(k8s_cas, cluster).items():
        response = outsider.attest(evidence)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    for secret in secrets_of(legitimate[1]):
        assert not any(secret in answer for answer in outsider.answers)


def test_each_forged_token_is_refused_by_name(k8s_cas: RunningCas, cluster: Cluster) -> None:
    expected = {
        "token of another key": "signature does not verify",
        "token of an EC key": "does not match the issuer's key",
        "alg none": "algorithm is not allowed",
        "HS256 with the public key": "algorithm is not allowed",
        "expired": "expired",
        "not yet valid": "not valid yet",
        "wrong audience": "audience is not this CAS",
        "the API server's audience too": "audience must be this CAS alone",
        "wrong namespace": "namespace is not the pinned one",
        "wrong account": "service account is not the pinned one",
        "wrong issuer": "issuer is not the pinned one",
        "no pod binding": "not bound to a pod",
        "a year long": "lives longer than 3600 s",
        "insecure software": "does not accept insecure-software-evidence",
    }
    outsider = Outsider(k8s_cas)
    evidence = made_up_evidence(k8s_cas, cluster)
    for name, reason in expected.items():
        response = outsider.attest(evidence[name])
        assert response.status_code == 403, name
        assert reason in response.json()["error"], (name, response.json())


def test_a_captured_request_cannot_be_replayed(k8s_cas: RunningCas, cluster: Cluster) -> None:
    """The legitimate pod's whole request, token and nonce included, sent again by someone else."""
    outsider = Outsider(k8s_cas)
    nonce = outsider.nonce()
    token = {"kind": "kubernetes", "token": cluster.token(audience_of(k8s_cas.ca))}
    first = outsider.attest(token, nonce)
    assert first.status_code == 200  # the pod itself (its token is its own)
    replay = outsider.attest(token, nonce)
    assert replay.status_code == 401
    assert "used already" in replay.json()["error"]
    forged_nonce = outsider.attest(token, "00" * 40)
    assert forged_nonce.status_code == 401


def test_a_credential_without_its_key_opens_nothing(
    k8s_cas: RunningCas, legitimate: tuple[CasSession, dict[str, Any]]
) -> None:
    credential = legitimate[1]["credential"]
    outsider = Outsider(k8s_cas)
    path = "/v1/volumes/V1/state"
    swap = json.dumps(
        {"expected": {"generation": 0, "tag": None}, "new": {"generation": 9, "tag": "00" * 16}}
    )
    attempts: list[dict[str, str]] = [
        {"authorization": f"Bearer {credential}"},
        {"authorization": f"Bearer {credential}", "sconify-signature": "00" * 64},
        {
            "authorization": f"Bearer {credential}",
            "sconify-signature": outsider.key.sign(
                request_signing_input("POST", path, swap.encode(), credential)
            ).hex(),
        },
        {"authorization": "Bearer c1.e30.AAAA", "sconify-signature": "00" * 64},
    ]
    for headers in attempts:
        response = outsider.http.post(path, content=swap.encode(), headers=headers)
        assert response.status_code == 401, (headers.keys(), response.text)
        assert outsider.http.get(path, headers=headers).status_code == 401
    # The legitimate runtime still holds generation 0: nothing moved.
    assert VolumeAnchor(legitimate[0]).current("V1") is None


def test_the_client_api_gives_an_outsider_nothing(
    k8s_cas: RunningCas, legitimate: tuple[CasSession, dict[str, Any]], tmp_path: Path
) -> None:
    stranger = identity(tmp_path, "stranger")
    with k8s_cas.client(stranger) as client:
        for request in (
            lambda: client.read_session("ns-1/python-session"),
            lambda: client.read_session("ns-1"),
            lambda: client.public_values("ns-1/python-session"),
        ):
            with pytest.raises(Exception) as caught:
                request()
            assert getattr(caught.value, "status", None) == 404
            assert not any(secret in str(caught.value) for secret in secrets_of(legitimate[1]))
        # The attestation API is not on the client port, whatever identity asks.
        for path in ("/v1/attest", "/v1/attest/nonce", "/v1/volumes/V1/state"):
            response = client._http.post(path, json={"config_id": CONFIG_ID})
            assert response.status_code == 404
            assert not any(secret in response.text for secret in secrets_of(legitimate[1]))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{k8s_cas.address}/v1/sessions/ns-1", verify=pinned_context(k8s_cas.ca))


def test_the_pod_with_its_token_attests(
    legitimate: tuple[CasSession, dict[str, Any]], k8s_cas: RunningCas
) -> None:
    runtime, grant = legitimate
    assert grant["evidence"] == "kubernetes"
    assert runtime.evidence_kind == "kubernetes"
    assert VolumeAnchor(runtime).current("V1") is None


def test_a_token_for_another_cas_is_refused(k8s_cas: RunningCas, cluster: Cluster, tmp_path: Path) -> None:
    other = RunningCas(tmp_path / "other-cas").start()
    try:
        token_file = tmp_path / "token"
        token_file.write_text(cluster.token(audience_of(other.ca)))  # meant for the other CAS
        with pytest.raises(CasError) as caught:
            k8s_cas.runtime(token_file=token_file).attest()
    finally:
        other.stop()
    assert "audience is not this CAS" in caught.value.reason
