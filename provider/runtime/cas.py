"""The runtime's side of the CAS: attestation, and volume freshness with the credential it grants.

Standard library only (``http.client`` and ``ssl``), because this runs on the image's own Python. The
CAS's identity is pinned: only its CA certificate is trusted, and the host name is checked.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..fspf import AnchorConflictError, AnchorState

DEFAULT_ATTESTATION_PORT = 18765
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class CasError(Exception):
    """The CAS refused (``status`` is its HTTP status) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"CAS refused ({status}): {reason}" if status else f"CAS unreachable: {reason}")
        self.status = status
        self.reason = reason


class CasConnection:
    """The attestation API of one CAS, reached over TLS with its CA pinned."""

    def __init__(self, address: str, ca_certificate: Path, timeout: float = 30.0) -> None:
        host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
        self.host = host or address
        self.port = int(port) if port else DEFAULT_ATTESTATION_PORT
        self.timeout = timeout
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_certificate))
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, credential: str | None = None
    ) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if credential is not None:
            headers["authorization"] = f"Bearer {credential}"
        connection = http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=self.context
        )
        try:
            connection.request(
                method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers
            )
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            raise CasError(0, f"{type(error).__name__}: {error}") from None
        finally:
            connection.close()
        if len(data) > MAX_RESPONSE_BYTES:
            raise CasError(response.status, "response too large")
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            raise CasError(response.status, "response is not JSON") from None
        if response.status >= 400:
            raise CasError(response.status, str(document.get("error", response.reason)))
        if not isinstance(document, dict):
            raise CasError(response.status, "response is not a JSON object")
        return document

    def attest(self, config_id: str, measurement: str, evidence: dict[str, Any]) -> dict[str, Any]:
        """The service's configuration and a volume credential, if the CAS accepts this runtime."""
        return self.request(
            "POST", "/v1/attest", {"config_id": config_id, "measurement": measurement, "evidence": evidence}
        )


class VolumeAnchor:
    """The CAS as a volume :class:`~pulumi_sconify.provider.fspf.FreshnessAnchor`, with an attestation's
    credential (which covers the volumes of that service only)."""

    def __init__(self, connection: CasConnection, credential: str) -> None:
        self._connection = connection
        self._credential = credential

    def __repr__(self) -> str:  # the credential is a secret
        return f"VolumeAnchor({self._connection.host}:{self._connection.port})"

    def current(self, volume: str) -> AnchorState | None:
        body = self._connection.request(
            "GET", f"/v1/volumes/{quote(volume, safe='')}/state", credential=self._credential
        )
        if body.get("tag") is None:
            return None
        return AnchorState(int(body["generation"]), bytes.fromhex(body["tag"]))

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        expected_json = (
            {"generation": expected.generation, "tag": expected.tag.hex()}
            if expected
            else {"generation": 0, "tag": None}
        )
        try:
            self._connection.request(
                "POST",
                f"/v1/volumes/{quote(volume, safe='')}/state",
                {"expected": expected_json, "new": {"generation": new.generation, "tag": new.tag.hex()}},
                credential=self._credential,
            )
        except CasError as error:
            if error.status == 409:
                raise AnchorConflictError(f"volume {volume}: {error.reason}") from None
            raise
