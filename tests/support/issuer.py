"""A stand-in for a Kubernetes cluster's service-account issuer: its signing key, its key set (JWKS, as the
API server publishes it at ``/openid/v1/jwks``) and projected tokens shaped as the kubelet writes them.
Kubernetes itself cannot run here; the CAS verifies these tokens with the same code as real ones."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pulumi_sconify.engine.cas.clients.identity import cas_audience
from pulumi_sconify.engine.policy import KubernetesIdentity

ISSUER = "https://kubernetes.default.svc.cluster.local"
WORKLOAD = KubernetesIdentity(ISSUER, "default", "counter")


class Cluster:
    """One issuer with an RSA signing key (as kube-apiserver's default)."""

    def __init__(self, issuer: str = ISSUER, kid: str = "cluster-key-1") -> None:
        self.issuer = issuer
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**entry, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def claims(
        self, audience: str, identity: KubernetesIdentity = WORKLOAD, lifetime: int = 3600, **changes: Any
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": [audience],
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{identity.namespace}:{identity.service_account}",
            "kubernetes.io": {
                "namespace": identity.namespace,
                "pod": {"name": "counter-0", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": identity.service_account, "uid": str(uuid.uuid4())},
            },
        }
        claims.update(changes)
        return claims

    def token(self, audience: str, identity: KubernetesIdentity = WORKLOAD, **changes: Any) -> str:
        return jwt.encode(self.claims(audience, identity, **changes), self.key, "RS256", {"kid": self.kid})


def audience_of(ca_file: Path) -> str:
    return cas_audience(ca_file.read_bytes())


def elliptic_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
