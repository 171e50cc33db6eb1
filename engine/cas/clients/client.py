"""Clients of the CAS: the client API (sessions) and the attestation API (runtimes, volume freshness).

Both pin the CAS's CA certificate (``cas-ca.pem``) and trust nothing else; the client API presents a
client identity. Built on httpx; a client object is cheap and holds one connection pool, so build one
per task (Pulumi providers build one per call).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ...errors import CasError, CasNotTrustedError
from ...http import OwnsHttpClient
from ...vocabulary import ATTESTATION_PORT, CLIENT_PORT, cas_host_and_port, url_host
from .identity import ClientIdentity


def base_url(address: str, default_port: int) -> str:
    """``host``, ``host:port`` or ``https://host:port`` → ``https://host:port``."""
    if address.startswith("https://"):
        return address.rstrip("/")
    if address.startswith("http://"):
        raise ValueError("the CAS is reached over TLS only: use https:// or host:port")
    host, port = cas_host_and_port(address, default_port)
    return f"https://{url_host(host)}:{port}"


def pinned_context(ca_certificate: Path, identity: ClientIdentity | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_certificate))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity is not None:
        context.load_cert_chain(str(identity.certificate), str(identity.key))
    return context


def _verification_failure(error: BaseException) -> str | None:
    """Why TLS verification failed, if that is what ended the request (httpx wraps ssl's error)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or "certificate verify failed")
        seen = seen.__cause__ or seen.__context__
    return None


class _Http(OwnsHttpClient):
    def __init__(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        self._http = httpx.Client(base_url=url, verify=context, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            refused = _verification_failure(error)
            if refused is not None:
                raise CasNotTrustedError(str(self._http.base_url.netloc.decode()), refused) from None
            raise CasError(0, f"{type(error).__name__} at {self._http.base_url}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            details = (
                {key: value for key, value in body.items() if key != "error"}
                if isinstance(body, dict)
                else {}
            )
            raise CasError(response.status_code, str(body.get("error", response.reason_phrase)), **details)
        return body if isinstance(body, dict) else {}


class CasClient(_Http):
    """The client API: create, update, read and delete sessions."""

    def __init__(
        self, address: str, ca_certificate: Path, identity: ClientIdentity, timeout: float = 15.0
    ) -> None:
        super().__init__(base_url(address, CLIENT_PORT), pinned_context(ca_certificate, identity), timeout)

    def post_session(self, text: str) -> str:
        """Create or update (with ``predecessor``) a session; returns its hash."""
        return str(self.request("POST", "/v1/sessions", content=text.encode("utf-8"))["hash"])

    def read_session(self, name: str, digest: str | None = None) -> tuple[str, str]:
        params = {"hash": digest} if digest else None
        body = self.request("GET", f"/v1/sessions/{quote(name, safe='/')}", params=params)
        return str(body["session"]), str(body["hash"])

    def delete_session(self, name: str, digest: str) -> None:
        self.request("DELETE", f"/v1/sessions/{quote(name, safe='/')}", params={"hash": digest})

    def public_values(self, name: str) -> dict[str, str]:
        return dict(self.request("GET", f"/v1/values/session={quote(name, safe='/')}")["values"])

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/v1/version")


class AttestationClient(_Http):
    """The attestation API without a runtime's key: health and version checks, and plain requests (the
    runtime's own client, with its key and evidence, is :class:`~..runtime.cas.CasSession`)."""

    def __init__(self, address: str, ca_certificate: Path, timeout: float = 15.0) -> None:
        super().__init__(base_url(address, ATTESTATION_PORT), pinned_context(ca_certificate), timeout)
