"""Image references, by transport, as skopeo writes them.

- ``docker://host[:port]/repository[:tag|@sha256:<64 hex>]`` — a registry (HTTPS; plain HTTP for
  localhost, 127.0.0.1 and registries named with ``--insecure-registry``);
- ``oci:DIR[:tag]`` — an OCI image layout on disk;
- ``docker-archive:FILE`` — a ``docker save`` tarball.

A registry host is what comes before the first ``/`` when it has a dot or a colon or is ``localhost``
(Docker's rule); otherwise the reference is on Docker Hub (``docker.io``, ``library/`` for one-part names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ..errors import SconifyError


class ImageReferenceError(SconifyError, ValueError):
    """A reference that cannot be parsed; the message says which part is wrong."""


class Transport(StrEnum):
    DOCKER = "docker"
    OCI = "oci"
    DOCKER_ARCHIVE = "docker-archive"


DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# The distribution specification's grammar.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?"
)


@dataclass(frozen=True)
class ImageReference:
    """Where an image is. For registries: host, repository and a tag or digest."""

    transport: Transport
    path: str = ""
    """OCI layout directory or archive file."""
    registry: str = ""
    repository: str = ""
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask a registry or layout for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> ImageReference:
        """The same image pinned by digest (the tag is kept for display only)."""
        return ImageReference(self.transport, self.path, self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        if self.transport is Transport.DOCKER:
            suffix = f"@{self.digest}" if self.digest else f":{self.tag or DEFAULT_TAG}"
            return f"docker://{self.registry}/{self.repository}{suffix}"
        if self.transport is Transport.OCI:
            return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")
        return f"docker-archive:{self.path}"

    @property
    def pinned(self) -> str:
        """``host/repository@sha256:...`` (what Kubernetes and charts use)."""
        if self.digest is None:
            raise ImageReferenceError(f"{self}: not pinned by digest")
        return f"{self.registry}/{self.repository}@{self.digest}"


def parse_reference(text: str) -> ImageReference:
    """Parse a transport-qualified reference; a bare ``host/repo:tag`` is taken as ``docker://``."""
    if text.startswith("docker://"):
        return _parse_docker(text[len("docker://") :], text)
    if text.startswith("oci:"):
        body = text[len("oci:") :]
        directory, separator, tag = body.rpartition(":") if ":" in body.rsplit("/", 1)[-1] else (body, "", "")
        if not directory:
            raise ImageReferenceError(f"{text}: expected oci:DIRECTORY[:tag]")
        if separator and not _TAG.fullmatch(tag):
            raise ImageReferenceError(f"{text}: invalid tag")
        return ImageReference(Transport.OCI, path=directory, tag=tag or None)
    if text.startswith("docker-archive:"):
        path = text[len("docker-archive:") :]
        if not path:
            raise ImageReferenceError(f"{text}: expected docker-archive:FILE")
        return ImageReference(Transport.DOCKER_ARCHIVE, path=path)
    if "://" in text or text.split(":", 1)[0] in {"dir", "containers-storage", "docker-daemon"}:
        raise ImageReferenceError(f"{text}: unsupported transport (use docker://, oci: or docker-archive:)")
    return _parse_docker(text, text)


def _parse_docker(body: str, original: str) -> ImageReference:
    name, at, digest = body.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageReferenceError(f"{original}: a digest is sha256: and 64 lower-case hex characters")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, remainder = first, rest
        if not _HOST.fullmatch(registry):
            raise ImageReferenceError(f"{original}: invalid registry host")
    else:
        registry, remainder = DEFAULT_REGISTRY, name
    repository, colon, tag = (
        remainder.rpartition(":") if ":" in remainder.rsplit("/", 1)[-1] else (remainder, "", "")
    )
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise ImageReferenceError(
            f"{original}: invalid repository name (lower-case letters, digits, . _ - and /)"
        )
    if colon and not _TAG.fullmatch(tag):
        raise ImageReferenceError(f"{original}: invalid tag")
    return ImageReference(
        Transport.DOCKER,
        registry=registry,
        repository=repository,
        tag=tag or (None if at else DEFAULT_TAG),
        digest=digest or None,
    )
