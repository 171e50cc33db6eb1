"""OCI and Docker image manifests: media types, descriptors, platform selection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import SconifyError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = (*MANIFESTS, *INDEXES)
GZIP_LAYERS = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP)
LAYERS = (*GZIP_LAYERS, OCI_LAYER)
MAX_CONFIG_BYTES = 8 * 1024 * 1024


class ImageError(SconifyError):
    """An image that cannot be used: malformed, unsupported, or not what its digests say."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, data: Any, what: str) -> Descriptor:
        try:
            descriptor = cls(str(data["mediaType"]), str(data["digest"]), int(data["size"]))
        except (KeyError, TypeError, ValueError):
            raise ImageError(f"{what}: not a valid descriptor") from None
        if not descriptor.digest.startswith("sha256:") or len(descriptor.digest) != 71 or descriptor.size < 0:
            raise ImageError(f"{what}: only sha256 digests of non-negative size are supported")
        return descriptor


DEFAULT_ARCHITECTURE = "amd64"
"""The architecture of an image whose configuration names none."""
DEFAULT_PLATFORM = f"linux/{DEFAULT_ARCHITECTURE}"
"""The platform taken from a multi-platform image when none is named (CLI, resources, components)."""


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = DEFAULT_ARCHITECTURE
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(f"{text}: a platform is os/architecture[/variant], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class Manifest:
    """An image manifest: its config and layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise ImageError(f"{what}: not a JSON object")
    return value


def parse_manifest(data: bytes, media_type: str) -> Manifest:
    document = load_json(data, "manifest")
    media_type = str(document.get("mediaType") or media_type)
    if media_type not in MANIFESTS:
        raise ImageError(f"manifest: unsupported media type {media_type!r}")
    config = Descriptor.from_json(document.get("config"), "manifest config")
    layers = tuple(
        Descriptor.from_json(layer, f"layer {i}") for i, layer in enumerate(document.get("layers") or [])
    )
    for index, layer in enumerate(layers):
        if layer.media_type not in LAYERS:
            raise ImageError(
                f"layer {index}: unsupported media type {layer.media_type!r} (gzip or plain tar)"
            )
    return Manifest(media_type, config, layers)


def select_platform(data: bytes, platform: Platform) -> Descriptor:
    """The manifest for ``platform`` in an image index (manifest list)."""
    document = load_json(data, "image index")
    available = []
    for entry in document.get("manifests") or []:
        wanted = entry.get("platform") or {}
        candidate = Platform(
            str(wanted.get("os", "")), str(wanted.get("architecture", "")), wanted.get("variant")
        )
        available.append(str(candidate))
        if (candidate.os, candidate.architecture) == (platform.os, platform.architecture) and (
            platform.variant is None or candidate.variant == platform.variant
        ):
            return Descriptor.from_json(entry, f"index entry for {platform}")
    raise ImageError(f"no image for {platform} in the index (it has: {', '.join(available) or 'nothing'})")


def manifest_json(
    config: Descriptor, layers: list[Descriptor], annotations: dict[str, str] | None = None
) -> bytes:
    """A canonical OCI manifest (sorted keys, no white space): the same content, the same digest."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        document["annotations"] = annotations
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
