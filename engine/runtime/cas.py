"""A runtime's side of the CAS, in Python: attestation, and volume freshness with the credential it grants.

The engine's own client of the attestation API (``sconify evidence``, the CAS's tests); what images run is
the Go runtime's (``runtime/internal/cas``), which speaks the same protocol. The CAS's identity is pinned:
only its CA certificate is trusted, and the host name is checked.

A running service must not lose work to the CAS: :class:`CasSession` re-attests before its credential
expires and whenever the CAS answers 401 (a restarted CAS, an expired credential), retries a CAS it
cannot reach with bounded backoff for ``patience`` seconds, and settles a swap whose answer it never saw
by reading the volume's state.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import CasError
from ..fspf import AnchorConflictError, AnchorState
from ..layout import KUBERNETES_TOKEN
from ..vocabulary import (
    ATTESTATION_PORT,
    HARDWARE_KINDS,
    INSECURE_SOFTWARE_EVIDENCE,
    KUBERNETES,
    cas_host_and_port,
)
from .hardware import HardwareEvidenceError, HardwareSources
from .protocol import (
    ATTEST_PATH,
    NONCE_PATH,
    SIGNATURE_HEADER,
    VOLUME_STATE_PATH,
    evidence_binding,
    request_signing_input,
)

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_PATIENCE = 300.0
"""Seconds the runtime keeps trying a CAS it cannot reach before it gives up on a step."""
RENEW_AT = 2 / 3
"""Fraction of a credential's lifetime after which it is renewed."""
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0


class CasConnection:
    """The attestation API of one CAS, reached over TLS with its CA pinned, on one kept-alive connection
    (a runtime attests, renews and commits on it without a TLS handshake each time)."""

    def __init__(self, address: str, ca_certificate: Path, timeout: float = 30.0) -> None:
        self.host, self.port = cas_host_and_port(address, ATTESTATION_PORT)
        self.timeout = timeout
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_certificate))
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._connection: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One request. A kept-alive connection that the CAS closed meanwhile is replaced once — but only
        for a request that may be repeated: a volume swap whose connection broke is reported (status 0)
        for the caller to settle by reading the state, never sent twice."""
        reused = self._connection is not None
        try:
            return self._exchange(method, path, body, headers)
        except CasError as error:
            repeatable = method == "GET" or path in (NONCE_PATH, ATTEST_PATH)
            if error.status != 0 or not reused or not repeatable:
                raise
        return self._exchange(method, path, body, headers)

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> dict[str, Any]:
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        try:
            self._connection.request(
                method, path, body=body, headers={"content-type": "application/json", **(headers or {})}
            )
            response = self._connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise CasError(0, f"{type(error).__name__}: {error}") from None
        if response.will_close or len(data) > MAX_RESPONSE_BYTES:
            self.close()
        if len(data) > MAX_RESPONSE_BYTES:
            raise CasError(response.status, "response too large")
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            raise CasError(response.status, "response is not JSON") from None
        if response.status >= 400:
            reason = document.get("error", response.reason) if isinstance(document, dict) else response.reason
            raise CasError(response.status, str(reason))
        if not isinstance(document, dict):
            raise CasError(response.status, "response is not a JSON object")
        return document


def _encode(body: dict[str, Any] | None) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() if body is not None else b""


def warn(message: str) -> None:
    print(f"[SCONIFY|WARNING] {message}", file=sys.stderr, flush=True)


class CasSession:
    """One runtime's standing with the CAS: its key for this run, its credential, renewed as needed."""

    def __init__(
        self,
        connection: CasConnection,
        config_id: str,
        measurement: str,
        patience: float = DEFAULT_PATIENCE,
        token_file: Path = Path(KUBERNETES_TOKEN),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        hardware: HardwareSources | None = None,
    ) -> None:
        self.connection = connection
        self.config_id = config_id
        self.measurement = measurement
        self.patience = patience
        self.token_file = token_file
        self.hardware = hardware or HardwareSources()
        self.evidence_kind = ""
        self._clock = clock
        self._sleep = sleep
        self._key = Ed25519PrivateKey.generate()
        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._credential: str | None = None
        self._renew_at = self._expires_at = 0.0

    def __repr__(self) -> str:  # the credential and the key are secrets
        return f"CasSession({self.connection.host}:{self.connection.port}, {self.config_id})"

    def deadline(self) -> float:
        """When a step that starts now must give up on an unreachable CAS (on this session's clock)."""
        return self._clock() + self.patience

    def past(self, deadline: float) -> bool:
        return self._clock() >= deadline

    # -- attestation ------------------------------------------------------------------------------

    def attest(self) -> dict[str, Any]:
        """Attest (retrying an unreachable CAS and a stale nonce); returns the CAS's grant, whose
        ``configuration`` the runtime runs. Raises :class:`CasError` for a refusal."""
        return self._patiently(self._attest_once, retry_unauthorized=True)

    def _attest_once(self) -> dict[str, Any]:
        offer = self.connection.request("POST", NONCE_PATH, _encode({"config_id": self.config_id}))
        kind = self._choose(list(offer.get("accepts") or []))
        nonce = str(offer["nonce"])
        started = self._clock()
        grant = self.connection.request(
            "POST",
            ATTEST_PATH,
            _encode(
                {
                    "config_id": self.config_id,
                    "measurement": self.measurement,
                    "nonce": nonce,
                    "runtime_key": self._public.hex(),
                    "evidence": self._evidence(kind, nonce),
                }
            ),
        )
        lifetime = float(grant["credential_expires_in"])
        self._credential = str(grant["credential"])
        self._renew_at = started + lifetime * RENEW_AT
        self._expires_at = started + lifetime
        if kind != self.evidence_kind and kind == INSECURE_SOFTWARE_EVIDENCE:
            warn(
                f"attested with {INSECURE_SOFTWARE_EVIDENCE}: the CAS released this service's keys on "
                "the runtime's own word, which anyone who reaches the CAS can give (development only)"
            )
        self.evidence_kind = kind
        return grant

    def _available(self, accepts: list[str]) -> list[str]:
        """What this runtime can give, strongest first (the node's TEE asked only when it matters)."""
        hardware = self.hardware.available() if set(accepts) & set(HARDWARE_KINDS) else []
        kinds = [KUBERNETES] if self.token_file.is_file() else []
        return [*hardware, *kinds, INSECURE_SOFTWARE_EVIDENCE]

    def _choose(self, accepts: list[str]) -> str:
        available = self._available(accepts)
        for kind in accepts:
            if kind in available:
                return kind
        if not accepts:
            raise CasError(
                403,
                "the policy accepts no evidence for this service: pin a Kubernetes workload identity "
                f"(services[].kubernetes) or tolerate {INSECURE_SOFTWARE_EVIDENCE}",
            )
        hint = f" (no service-account token at {self.token_file})" if KUBERNETES in accepts else ""
        raise CasError(
            403,
            f"the policy accepts {', '.join(accepts)} evidence; this runtime can give "
            f"{', '.join(available)}{hint}",
        )

    def _evidence(self, kind: str, nonce: str) -> dict[str, Any]:
        # The token is read every time: the kubelet rotates the file before the token expires.
        if kind == KUBERNETES:
            return {"kind": KUBERNETES, "token": self.token_file.read_text().strip()}
        if kind in HARDWARE_KINDS:
            try:
                evidence = self.hardware.collect(kind, evidence_binding(nonce, self._public))
            except HardwareEvidenceError as error:
                raise CasError(403, f"cannot collect {kind} evidence on this node: {error}") from None
            if self.token_file.is_file():
                # A service that pins its workload identity needs both: the VM, and who runs in it.
                evidence["token"] = self.token_file.read_text().strip()
            return evidence
        return {"kind": INSECURE_SOFTWARE_EVIDENCE}

    # -- volume requests --------------------------------------------------------------------------

    def volume_request(self, method: str, volume: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One signed volume request, renewing the credential when due and re-attesting on a 401; a CAS
        that cannot be reached is retried for ``patience`` seconds when the request is a read."""
        if method == "GET":
            return self._patiently(lambda: self._signed(method, volume, body), retry_unauthorized=False)
        return self._signed(method, volume, body)

    def _signed(self, method: str, volume: str, body: dict[str, Any] | None) -> dict[str, Any]:
        self._renew_if_due()
        try:
            return self._send_signed(method, volume, body)
        except CasError as error:
            if error.status != 401:
                raise
        self._patiently(self._attest_once, retry_unauthorized=True)  # restarted CAS, expired credential
        return self._send_signed(method, volume, body)

    def sign(self, method: str, path: str, body: bytes) -> str:
        """This runtime key's signature (hex) of one volume request under the current credential."""
        assert self._credential is not None, "attest first"
        return self._key.sign(request_signing_input(method, path, body, self._credential)).hex()

    def _send_signed(self, method: str, volume: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert self._credential is not None, "attest first"
        path = VOLUME_STATE_PATH.format(volume=quote(volume, safe=""))
        payload = _encode(body)
        return self.connection.request(
            method,
            path,
            payload or None,
            {
                "authorization": f"Bearer {self._credential}",
                SIGNATURE_HEADER: self.sign(method, path, payload),
            },
        )

    @property
    def credential(self) -> str | None:
        """The current credential (secret; worth nothing without this session's key)."""
        return self._credential

    def _renew_if_due(self) -> None:
        if self._credential is None or self._clock() < self._renew_at:
            return
        try:
            self._attest_once()
        except CasError as error:
            # A credential that is still valid keeps working while the CAS is away; a refusal (the
            # policy changed) is final.
            if error.status != 0 or self._clock() >= self._expires_at:
                raise

    def _patiently(
        self, attempt: Callable[[], dict[str, Any]], *, retry_unauthorized: bool
    ) -> dict[str, Any]:
        """``attempt`` until it succeeds, retrying an unreachable CAS (and a 401, once per try, when
        asked) with backoff for at most ``patience`` seconds."""
        deadline = self.deadline()
        delay = _BACKOFF_FIRST
        while True:
            try:
                return attempt()
            except CasError as error:
                retryable = error.status == 0 or (retry_unauthorized and error.status == 401)
                if not retryable or self.past(deadline - delay):
                    raise
            self._sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)


def patience_from_environment() -> float:
    """``SCONIFY_CAS_PATIENCE`` (seconds), else :data:`DEFAULT_PATIENCE`. Only availability depends on it,
    so the container's environment may set it."""
    try:
        value = float(os.environ.get("SCONIFY_CAS_PATIENCE", DEFAULT_PATIENCE))
    except ValueError:
        return DEFAULT_PATIENCE
    return value if value >= 0 else DEFAULT_PATIENCE


class VolumeAnchor:
    """The CAS as a volume :class:`~pulumi_sconify.engine.fspf.FreshnessAnchor`, through an attested
    :class:`CasSession` (whose credential covers the volumes of that service only)."""

    def __init__(self, session: CasSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"VolumeAnchor({self._session!r})"

    def current(self, volume: str) -> AnchorState | None:
        body = self._session.volume_request("GET", volume)
        if body.get("tag") is None:
            return None
        return AnchorState(int(body["generation"]), bytes.fromhex(body["tag"]))

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        """The swap; when its answer is lost, the volume's state says whether it happened (retried for
        the session's patience). Raises :class:`AnchorConflictError` if another state is current."""
        expected_json = (
            {"generation": expected.generation, "tag": expected.tag.hex()}
            if expected
            else {"generation": 0, "tag": None}
        )
        body = {"expected": expected_json, "new": {"generation": new.generation, "tag": new.tag.hex()}}
        session = self._session
        deadline = session.deadline()
        while True:
            try:
                session.volume_request("POST", volume, body)
                return
            except CasError as error:
                if error.status == 409:
                    raise AnchorConflictError(f"volume {volume}: {error.reason}") from None
                if error.status != 0 or session.past(deadline):
                    raise
            current = self.current(volume)  # retried while the CAS is away
            if current == new:
                return  # the lost answer was a success
            if current != expected:
                raise AnchorConflictError(f"volume {volume}: another state was committed meanwhile")
