"""Volume credentials: what an attestation grants, bound to the runtime's key, kept by nobody.

A credential is its own claims (session, service, volumes, the runtime's public key, expiry) and a MAC
over them under a key derived from the CAS's master key. The CAS keeps no table of them, so they
survive a CAS restart (and are valid on every replica that shares the master key), and no number of
attestations fills the CAS's memory. A credential is not enough on its own: every request that uses it
must be signed by the runtime key it names (:func:`~..runtime.protocol.request_signing_input`).

A credential names the session's *lineage* — a random id made when the session was created, kept by its
updates — so a session deleted and created again under the same name (even with the same policy) is another
session: credentials of the first open nothing of the
second. (Sessions created before lineages were recorded have none, until deleted.)

Runtime keys and signatures are checked strictly (libsodium, through PyNaCl): a public key of small order or
not in canonical form is refused when it is offered, and a signature whose R is of small order or whose S is
not reduced does not verify. OpenSSL's Ed25519 accepts an all-zero key, with which a "signature" made
without any private key verifies for about a quarter of messages.

A credential cannot be revoked before it expires; its lifetime (15 minutes by default, ``sconify cas
serve --credential-lifetime``) bounds how long a runtime whose policy changed may still commit. The runtime
renews it by attesting again, which applies the policy as it is then.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ...errors import SconifyError
from ...runtime.protocol import RUNTIME_KEY_BYTES, request_signing_input

CREDENTIAL_LIFETIME = 900.0
"""Seconds a credential from one attestation stays valid, by default."""
_VERSION = "c1"


class CredentialError(SconifyError):
    """A credential (or its signature) that does not authorise the request; the message says why."""


@dataclass(frozen=True)
class Credential:
    """What an attestation grants: volume-freshness operations for one service of one session."""

    session: str
    service: str
    volumes: frozenset[str]
    runtime_key: bytes
    expires: float
    lineage: str | None = None
    """A random id made when the session was created, kept by its updates (None: created before lineages
    were kept)."""


class CredentialAuthority:
    """Issues credentials and checks them (with the request's signature)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, credential: Credential) -> str:
        claims = {
            "session": credential.session,
            "service": credential.service,
            "volumes": sorted(credential.volumes),
            "key": credential.runtime_key.hex(),
            "expires": credential.expires,
            "lineage": credential.lineage,
        }
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{_VERSION}.{body}.{_b64(self._mac(body))}"

    def check(
        self, token: str, signature: str, method: str, path: str, body: bytes, now: float
    ) -> Credential:
        """The credential, if ``token`` is one of ours, unexpired, and ``signature`` is its key's over
        this request. Raises :class:`CredentialError`."""
        version, _, rest = token.partition(".")
        claims_text, _, mac = rest.partition(".")
        if version != _VERSION or not hmac.compare_digest(_b64(self._mac(claims_text)), mac):
            raise CredentialError("not a credential of this CAS: attest first")
        claims = json.loads(base64.urlsafe_b64decode(claims_text + "=" * (-len(claims_text) % 4)))
        credential = Credential(
            session=claims["session"],
            service=claims["service"],
            volumes=frozenset(claims["volumes"]),
            runtime_key=bytes.fromhex(claims["key"]),
            expires=float(claims["expires"]),
            lineage=claims.get("lineage"),
        )
        if credential.expires < now:
            raise CredentialError("the credential expired: attest again")
        try:
            raw_signature = bytes.fromhex(signature)
        except ValueError:
            raw_signature = b""
        try:
            VerifyKey(credential.runtime_key).verify(
                request_signing_input(method, path, body, token), raw_signature
            )
        except (BadSignatureError, ValueError):
            raise CredentialError("the request is not signed by the key the credential is bound to") from None
        return credential

    def _mac(self, text: str) -> bytes:
        return hmac.new(self._key, f"{_VERSION}.{text}".encode(), hashlib.sha256).digest()


def runtime_key(text: object) -> bytes:
    """A runtime's public key from its hex form; raises :class:`ValueError` for anything else, and for a
    key of small order or not in canonical form (see the module's documentation)."""
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != RUNTIME_KEY_BYTES:
        raise ValueError(f"runtime_key: expected an Ed25519 public key, {RUNTIME_KEY_BYTES * 2} hex")
    if not crypto_core_ed25519_is_valid_point(raw):
        raise ValueError("runtime_key: not a usable Ed25519 public key (of small order, or not canonical)")
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
