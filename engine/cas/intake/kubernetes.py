"""Kubernetes workload identity: a pod's projected service-account token, checked against the issuer's
published keys (its JWKS), as the API server's OIDC discovery serves them at ``/openid/v1/jwks``.

A token proves "a pod running as this service account, in this namespace, of this cluster" — and nothing
about the code in it (the measurement does that much, self-reported). It stops everyone who cannot run a
pod as that service account; it does not stop the cluster's administrators or root on the node.

The key set is loaded at start and refreshed in a background thread (every minute, and soon after a
token names a key id the set lacks), so an attestation never waits for the network.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from ...errors import SconifyError
from ...policy import KubernetesIdentity

ALGORITHMS = ("RS256", "ES256", "ES384")
"""What the API server signs service-account tokens with (RSA or ECDSA keys); nothing else is accepted —
``none`` and the HMAC family least of all."""
MAX_TOKEN_LIFETIME = 3600
"""Seconds from ``iat`` to ``exp`` at most: the chart asks for tokens of one hour."""
CLOCK_SKEW = 30
"""Seconds of leeway for ``exp``, ``nbf`` and ``iat``."""
REFRESH_INTERVAL = 60.0
"""Seconds between refreshes of the key set."""
MIN_REFRESH_INTERVAL = 5.0
"""Seconds at least between two refreshes asked for by unknown key ids."""
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_BYTES = 16 * 1024
IN_CLUSTER_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class TokenRefusedError(SconifyError):
    """The token does not prove the pinned identity; the message names the check that failed."""


@dataclass(frozen=True)
class JwksSource:
    """Where a cluster's key set is read: a file, or an https URL (with a CA and a bearer token file,
    as the CAS reaches its own API server from inside the cluster)."""

    location: str
    ca_file: Path | None = None
    token_file: Path | None = None

    def read(self) -> bytes:
        if not self.location.startswith("https://"):
            return Path(self.location).read_bytes()[: MAX_JWKS_BYTES + 1]
        headers = {}
        if self.token_file is not None:
            headers["authorization"] = "Bearer " + self.token_file.read_text().strip()
        verify: Any = str(self.ca_file) if self.ca_file is not None else True
        with httpx.Client(verify=verify, timeout=10.0) as client:
            response = client.get(self.location, headers=headers)
            response.raise_for_status()
            return response.content[: MAX_JWKS_BYTES + 1]


def in_cluster_source(issuer: str) -> JwksSource:
    """The key set as a pod reaches its own API server: the issuer's ``/openid/v1/jwks``, with the pod's
    CA and token when it has them."""
    return JwksSource(
        issuer.rstrip("/") + "/openid/v1/jwks",
        IN_CLUSTER_CA if IN_CLUSTER_CA.exists() else None,
        IN_CLUSTER_TOKEN if IN_CLUSTER_TOKEN.exists() else None,
    )


def parse_jwks(data: bytes) -> dict[str, jwt.PyJWK]:
    """Signing keys by key id; keys of other uses or algorithms are left out."""
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError("the key set is larger than 1 MiB")
    document = json.loads(data)
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            continue
        keys[str(entry.get("kid", ""))] = key
    if not keys:
        raise ValueError("the key set holds no signing key")
    return keys


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read to choose the key. The library reads it again when it verifies (and
    refuses what it cannot read); reading it here once, rather than with ``jwt.get_unverified_header``,
    halves the library's base64 checking, which is most of an attestation's cost."""
    encoded = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise TokenRefusedError("the token is not a JWT")
    return header


class KubernetesIssuer:
    """One cluster's issuer and its key set, kept fresh; verifies tokens for this CAS's audience."""

    def __init__(
        self,
        issuer: str,
        source: JwksSource,
        audience: str,
        clock: Callable[[], float] = time.time,
        log: Callable[..., None] | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._source = source
        self._clock = clock
        self._log = log or (lambda *_, **__: None)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._wake = threading.Event()
        self._last_refresh = 0.0
        self._stop = threading.Event()

    # -- the key set ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Load the key set now (also used once, synchronously, at start). Failures are logged and the
        previous set is kept."""
        self._last_refresh = time.monotonic()
        try:
            keys = parse_jwks(self._source.read())
        except (OSError, ValueError, httpx.HTTPError) as error:
            self._log("jwks_refresh_failed", issuer=self.issuer, error=type(error).__name__)
            return
        if keys.keys() != self._keys.keys():
            self._log("jwks_loaded", issuer=self.issuer, keys=len(keys))
        self._keys = keys

    def start(self) -> None:
        """Load now, then keep refreshing in a daemon thread."""
        self.refresh()
        threading.Thread(target=self._refresh_forever, name="jwks-refresh", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _refresh_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(REFRESH_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = MIN_REFRESH_INTERVAL - (time.monotonic() - self._last_refresh)
            if wait > 0:
                time.sleep(wait)
            self.refresh()

    # -- tokens -----------------------------------------------------------------------------------

    def verify(self, token: object, pinned: KubernetesIdentity) -> Mapping[str, Any]:
        """The token's claims if it proves ``pinned``; raises :class:`TokenRefusedError`."""
        if pinned.issuer != self.issuer:
            raise TokenRefusedError("the policy pins another issuer than the cluster this CAS trusts")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenRefusedError("evidence.token: expected a service-account token (a JWT)")
        header = _header(token)
        if header.get("alg") not in ALGORITHMS:
            raise TokenRefusedError(
                f"the token's algorithm is not allowed (allowed: {', '.join(ALGORITHMS)})"
            )
        key = self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefusedError("the token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefusedError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenRefusedError("the token's audience is not this CAS") from None
        except jwt.InvalidIssuerError:
            raise TokenRefusedError("the token's issuer is not the pinned one") from None
        except jwt.InvalidAlgorithmError:
            raise TokenRefusedError("the token's algorithm does not match the issuer's key") from None
        except jwt.InvalidSignatureError:
            raise TokenRefusedError("the token's signature does not verify with the issuer's keys") from None
        except jwt.PyJWTError as error:
            raise TokenRefusedError(f"the token is not valid: {type(error).__name__}") from None
        if claims.get("aud") not in (self.audience, [self.audience]):
            # PyJWT accepts a list holding ours among others: a token meant also for the API server (or
            # another CAS) would pass here, and could be presented there too. Ours alone, as documented.
            raise TokenRefusedError("the token's audience must be this CAS alone, not a list of several")
        self._check_claims(claims, pinned)
        return claims

    def _key(self, kid: object) -> jwt.PyJWK:
        keys = self._keys
        if not keys:
            self._wake.set()
            raise TokenRefusedError("the CAS has not loaded the issuer's key set yet; retry")
        if isinstance(kid, str) and kid in keys:
            return keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        self._wake.set()  # perhaps the issuer rotated its keys: look again soon
        raise TokenRefusedError("the token is signed by a key the issuer does not publish")

    def _check_claims(self, claims: Mapping[str, Any], pinned: KubernetesIdentity) -> None:
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise TokenRefusedError("the token's iat and exp must be numbers")
        if expires - issued > MAX_TOKEN_LIFETIME:
            raise TokenRefusedError(f"the token lives longer than {MAX_TOKEN_LIFETIME} s (expirationSeconds)")
        if issued > self._clock() + CLOCK_SKEW:
            raise TokenRefusedError("the token was issued in the future")
        details = claims.get("kubernetes.io")
        if not isinstance(details, dict):
            raise TokenRefusedError("the token has no kubernetes.io claims (not a service-account token)")
        account = details.get("serviceaccount")
        pod = details.get("pod")
        if details.get("namespace") != pinned.namespace:
            raise TokenRefusedError("the token's namespace is not the pinned one")
        if not isinstance(account, dict) or account.get("name") != pinned.service_account:
            raise TokenRefusedError("the token's service account is not the pinned one")
        if claims["sub"] != f"system:serviceaccount:{pinned.namespace}:{pinned.service_account}":
            raise TokenRefusedError("the token's subject is not the pinned service account")
        if not isinstance(pod, dict) or not pod.get("name") or not pod.get("uid"):
            raise TokenRefusedError("the token is not bound to a pod (mount a projected token)")
