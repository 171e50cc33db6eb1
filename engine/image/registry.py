"""A client of the OCI distribution API (registries), with no Docker daemon.

Blobs stream through in bounded chunks and are checked against their digest as they arrive; manifests
are bounded in size and checked too. Authentication follows the registry's ``WWW-Authenticate``
challenge: a bearer token from its token service, or basic credentials, taken from a docker
``config.json``. HTTPS always, except for localhost and 127.0.0.1 and registries explicitly named
insecure, which may also be reached over plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ..errors import SconifyError
from ..http import OwnsHttpClient

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(SconifyError):
    """A registry refused, failed, or sent something that does not verify."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def docker_config_path() -> Path:
    if "REGISTRY_AUTH_FILE" in os.environ:
        return Path(os.environ["REGISTRY_AUTH_FILE"])
    if "DOCKER_CONFIG" in os.environ:
        return Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    return Path.home() / ".docker" / "config.json"


def credentials_for(registry: str, config: Path | None = None) -> Credentials | None:
    """Credentials for ``registry`` from a docker ``config.json`` (``auths`` entries), if any."""
    path = config or docker_config_path()
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        raise RegistryError(f"{path}: not a readable docker config.json") from None
    for key in (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(
                    f"{path}: the auth entry for {registry} is not base64 user:password"
                ) from None
            return Credentials(username, password)
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def _certificate_rejected(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the certificate did not verify (never fall back then)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient(OwnsHttpClient):
    """One registry. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        ca_file: Path | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.registry = registry
        host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
        self._plain_allowed = insecure or host in _LOCAL_HOSTS
        self._credentials = credentials
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._http = httpx.Client(verify=context, timeout=timeout, follow_redirects=True)
        self._base: str | None = None
        self._tokens: dict[str, str] = {}

    # -- transport --------------------------------------------------------------------------------

    def _base_url(self) -> str:
        if self._base is None:
            try:
                self._http.get(f"https://{self.registry}/v2/")
                self._base = f"https://{self.registry}"
            except httpx.TransportError as error:
                if _certificate_rejected(error):
                    raise RegistryError(f"{self.registry}: its TLS certificate is not trusted") from None
                if not self._plain_allowed:
                    raise RegistryError(
                        f"{self.registry}: cannot reach over HTTPS ({type(error).__name__})"
                    ) from None
                self._base = f"http://{self.registry}"  # a local or insecure registry that speaks no TLS
        return self._base

    def _authorize(self, response: httpx.Response, scope: str) -> dict[str, str]:
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self._credentials is None:
                raise RegistryError(f"{self.registry}: authentication required and no credentials found")
            token = base64.b64encode(
                f"{self._credentials.username}:{self._credentials.password}".encode()
            ).decode()
            self._tokens[scope] = f"Basic {token}"
            return {"authorization": self._tokens[scope]}
        if scheme != "bearer":
            raise RegistryError(f"{self.registry}: unsupported authentication challenge")
        parameters = dict(_CHALLENGE.findall(challenge))
        realm = parameters.get("realm")
        if not realm:
            raise RegistryError(f"{self.registry}: bearer challenge without a realm")
        query = {"service": parameters.get("service", ""), "scope": parameters.get("scope", scope)}
        auth = (self._credentials.username, self._credentials.password) if self._credentials else None
        try:
            answer = self._http.get(realm, params=query, auth=auth)
        except httpx.HTTPError as error:
            raise RegistryError(
                f"{self.registry}: token service unreachable ({type(error).__name__})"
            ) from None
        if answer.status_code != 200:
            raise RegistryError(f"{self.registry}: token service refused ({answer.status_code})")
        token = answer.json().get("token") or answer.json().get("access_token")
        if not token:
            raise RegistryError(f"{self.registry}: token service sent no token")
        self._tokens[scope] = f"Bearer {token}"
        return {"authorization": self._tokens[scope]}

    def _send(
        self, method: str, url: str, scope: str, *, stream: bool = False, **kwargs: object
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        # A known authorization first: a streamed body cannot be sent twice after a 401.
        known = self._tokens.get(scope) or self._tokens.get(scope.replace(":pull,push", ":pull"))
        if known is None and any(value.startswith("Basic ") for value in self._tokens.values()):
            known = next(value for value in self._tokens.values() if value.startswith("Basic "))
        if known is not None:
            headers["authorization"] = known
        target = url if url.startswith("http") else self._base_url() + url
        for attempt in range(2):
            try:
                request = self._http.build_request(method, target, headers=headers, **kwargs)  # type: ignore[arg-type]
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as error:
                raise RegistryError(f"{self.registry}: {method} failed ({type(error).__name__})") from None
            if response.status_code != 401 or attempt:
                return response
            response.close()
            headers.update(self._authorize(response, scope))
        raise AssertionError("unreachable")

    @staticmethod
    def _scope(repository: str, push: bool) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    def _fail(self, response: httpx.Response, what: str) -> RegistryError:
        try:
            errors = response.json().get("errors", [])
            detail = "; ".join(str(e.get("code", "")) for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            detail = ""
        return RegistryError(
            f"{self.registry}: {what}: HTTP {response.status_code}" + (f" ({detail})" if detail else "")
        )

    # -- manifests --------------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...]
    ) -> tuple[bytes, str, str]:
        """``(manifest bytes, media type, digest)``; with a digest reference, the bytes must match it."""
        response = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            self._scope(repository, False),
            headers={"accept": ", ".join(accept)},
            stream=True,
        )
        try:
            if response.status_code != 200:
                response.read()
                raise self._fail(response, f"manifest {repository}:{reference}")
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_MANIFEST_BYTES:
                    raise RegistryError(
                        f"{self.registry}: manifest {repository}:{reference} larger than "
                        f"{MAX_MANIFEST_BYTES} bytes"
                    )
        finally:
            response.close()
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"{self.registry}: manifest {repository}@{reference} does not match its digest"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return data, media_type, digest

    def has_manifest(self, repository: str, digest: str, accept: tuple[str, ...]) -> bool:
        response = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{digest}",
            self._scope(repository, False),
            headers={"accept": ", ".join(accept)},
        )
        return response.status_code == 200

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            self._scope(repository, True),
            headers={"content-type": media_type},
            content=data,
        )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"pushing manifest {repository}:{reference}")
        return sha256_digest(data)

    # -- blobs ------------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._send("HEAD", f"/v2/{repository}/blobs/{digest}", self._scope(repository, True))
        return response.status_code == 200

    def blob_chunks(self, repository: str, digest: str, size: int | None) -> Iterator[bytes]:
        """Stream a blob; raise :class:`RegistryError` at the end if its digest or size is wrong."""
        response = self._send(
            "GET", f"/v2/{repository}/blobs/{digest}", self._scope(repository, False), stream=True
        )
        try:
            if response.status_code != 200:
                response.read()
                raise self._fail(response, f"blob {digest}")
            hasher = hashlib.sha256()
            received = 0
            for chunk in response.iter_bytes(CHUNK):
                received += len(chunk)
                if size is not None and received > size:
                    raise RegistryError(f"{self.registry}: blob {digest} is larger than its manifest says")
                hasher.update(chunk)
                yield chunk
        finally:
            response.close()
        if size is not None and received != size:
            raise RegistryError(f"{self.registry}: blob {digest} is truncated ({received} of {size} bytes)")
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"{self.registry}: blob {digest} does not match its digest")

    def upload_blob(self, repository: str, digest: str, stream: IO[bytes], size: int) -> None:
        """Upload a blob from a file object in one streamed PUT (the registry checks the digest)."""
        response = self._send("POST", f"/v2/{repository}/blobs/uploads/", self._scope(repository, True))
        if response.status_code != 202 or "location" not in response.headers:
            raise self._fail(response, "starting an upload")
        location = str(response.url.join(response.headers["location"]))
        separator = "&" if "?" in location else "?"

        def body() -> Iterator[bytes]:
            while chunk := stream.read(CHUNK):
                yield chunk

        response = self._send(
            "PUT",
            f"{location}{separator}digest={digest}",
            self._scope(repository, True),
            headers={"content-type": "application/octet-stream", "content-length": str(size)},
            content=body(),
        )
        if response.status_code != 201:
            raise self._fail(response, f"uploading blob {digest}")
