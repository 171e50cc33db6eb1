"""Where images come from and go to: registries, OCI layouts, docker archives.

A source resolves a reference (following an index to the wanted platform) to a manifest and config,
and streams blobs checked against their digests. A destination takes blobs (skipping those it has)
and a manifest, and names the result by digest.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from .oci import (
    ACCEPT,
    DOCKER_CONFIG,
    INDEXES,
    MAX_CONFIG_BYTES,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    ImageError,
    Manifest,
    Platform,
    load_json,
    parse_manifest,
    select_platform,
)
from .reference import ImageReference, Transport
from .registry import CHUNK, Credentials, RegistryClient, RegistryError, credentials_for, sha256_digest

MAX_INDEX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedImage:
    """A source image, pinned: the digest of its (platform) manifest, the manifest and the config."""

    reference: ImageReference
    manifest_digest: str
    manifest: Manifest
    config_bytes: bytes

    @property
    def config(self) -> dict[str, Any]:
        return load_json(self.config_bytes, "image config")


class _Endpoint:
    """An image's end (where it is read, or written): its reference, closed on leaving a ``with`` block."""

    def __init__(self, reference: ImageReference) -> None:
        self.reference = reference

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        return None


class ImageSource(_Endpoint):
    """Base of the sources; subclasses implement the raw fetches."""

    def _manifest(self, reference: str) -> tuple[bytes, str, str]:
        raise NotImplementedError

    def _raw_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        raise NotImplementedError

    def resolve(self, platform: Platform) -> ResolvedImage:
        data, media_type, digest = self._manifest(self.reference.reference)
        document = load_json(data, "manifest")
        if str(document.get("mediaType") or media_type) in INDEXES:
            chosen = select_platform(data, platform)
            data, media_type, digest = self._manifest(chosen.digest)
            if digest != chosen.digest:
                raise ImageError("the platform manifest does not match the index's digest")
        manifest = parse_manifest(data, media_type)
        if manifest.config.size > MAX_CONFIG_BYTES:
            raise ImageError(f"image config larger than {MAX_CONFIG_BYTES} bytes")
        config = b"".join(self.blob(manifest.config))
        return ResolvedImage(self.reference.with_digest(digest), digest, manifest, config)

    def blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        """The blob's bytes, streamed; raises :class:`ImageError` if size or digest do not match."""
        hasher = hashlib.sha256()
        received = 0
        try:
            for chunk in self._raw_blob(descriptor):
                received += len(chunk)
                if received > descriptor.size:
                    raise ImageError(f"blob {descriptor.digest}: larger than its descriptor says")
                hasher.update(chunk)
                yield chunk
        except RegistryError as error:
            raise ImageError(str(error)) from None
        if received != descriptor.size:
            raise ImageError(f"blob {descriptor.digest}: truncated ({received} of {descriptor.size} bytes)")
        if "sha256:" + hasher.hexdigest() != descriptor.digest:
            raise ImageError(f"blob {descriptor.digest}: content does not match its digest")


class RegistrySource(ImageSource):
    def __init__(self, reference: ImageReference, client: RegistryClient) -> None:
        super().__init__(reference)
        self.client = client

    def close(self) -> None:
        self.client.close()

    def _manifest(self, reference: str) -> tuple[bytes, str, str]:
        try:
            return self.client.get_manifest(self.reference.repository, reference, ACCEPT)
        except RegistryError as error:
            raise ImageError(str(error)) from None

    def _raw_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        # The client checks digest and size too; the base class checks again for every transport.
        yield from self.client.blob_chunks(self.reference.repository, descriptor.digest, descriptor.size)


def _file_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


class OciLayoutSource(ImageSource):
    """An OCI image layout directory; the tag is matched against ``org.opencontainers.image.ref.name``."""

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if (
            algorithm != "sha256"
            or len(hexdigest) != 64
            or not all(c in "0123456789abcdef" for c in hexdigest)
        ):
            raise ImageError(f"{digest}: not a sha256 digest")
        return Path(self.reference.path) / "blobs" / "sha256" / hexdigest

    def _manifest(self, reference: str) -> tuple[bytes, str, str]:
        if reference.startswith("sha256:"):
            data = self._blob_path(reference).read_bytes()
            return data, str(load_json(data, "manifest").get("mediaType", OCI_MANIFEST)), sha256_digest(data)
        try:
            index = load_json(
                (Path(self.reference.path) / "index.json").read_bytes()[:MAX_INDEX_BYTES], "index.json"
            )
        except OSError:
            raise ImageError(f"{self.reference.path}: not an OCI layout (no index.json)") from None
        entries = index.get("manifests") or []
        wanted = self.reference.tag
        matches = [
            e
            for e in entries
            if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == wanted
        ]
        if wanted is None and len(entries) == 1:
            matches = entries
        if len(matches) != 1:
            raise ImageError(f"{self.reference}: no single image with that tag in the layout")
        descriptor = Descriptor.from_json(matches[0], "index.json entry")
        data = b"".join(self.blob(descriptor))
        return data, descriptor.media_type, descriptor.digest

    def _raw_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        try:
            with self._blob_path(descriptor.digest).open("rb") as stream:
                yield from _file_chunks(stream)
        except FileNotFoundError:
            raise ImageError(f"{self.reference.path}: blob {descriptor.digest} is missing") from None


class DockerArchiveSource(ImageSource):
    """A ``docker save`` tarball (one image)."""

    def __init__(self, reference: ImageReference) -> None:
        super().__init__(reference)
        try:
            self._tar = tarfile.open(reference.path, "r:")  # noqa: SIM115 - closed in close()
        except (OSError, tarfile.TarError):
            raise ImageError(f"{reference.path}: not a readable docker archive") from None
        self._names: dict[str, str] = {}

    def close(self) -> None:
        self._tar.close()

    def _member(self, name: str) -> IO[bytes]:
        try:
            stream = self._tar.extractfile(name)
        except KeyError:
            stream = None
        if stream is None:
            raise ImageError(f"{self.reference.path}: {name} is missing or not a file")
        return stream

    def _manifest(self, reference: str) -> tuple[bytes, str, str]:
        entries = json.loads(self._member("manifest.json").read(MAX_INDEX_BYTES))
        if not isinstance(entries, list) or len(entries) != 1:
            raise ImageError(f"{self.reference.path}: expected exactly one image in the archive")
        entry = entries[0]
        config = self._member(entry["Config"]).read(MAX_CONFIG_BYTES + 1)
        layers = []
        for name in entry["Layers"]:
            digest = hashlib.sha256()
            size = 0
            for chunk in _file_chunks(self._member(name)):
                digest.update(chunk)
                size += len(chunk)
            descriptor = Descriptor(OCI_LAYER, "sha256:" + digest.hexdigest(), size)
            self._names[descriptor.digest] = name
            layers.append(descriptor.to_json())
        config_descriptor = Descriptor(DOCKER_CONFIG, sha256_digest(config), len(config))
        self._names[config_descriptor.digest] = entry["Config"]
        data = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor.to_json(),
                "layers": layers,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return data, OCI_MANIFEST, sha256_digest(data)

    def _raw_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        if descriptor.digest not in self._names:
            raise ImageError(f"{self.reference.path}: no blob {descriptor.digest}")
        yield from _file_chunks(self._member(self._names[descriptor.digest]))


class ImageDestination(_Endpoint):
    """Base of the destinations."""

    def has_blob(self, digest: str) -> bool:
        raise NotImplementedError

    def put_blob(self, descriptor: Descriptor, path: Path) -> None:
        raise NotImplementedError

    def has_manifest(self, digest: str) -> bool:
        raise NotImplementedError

    def put_manifest(self, data: bytes, media_type: str) -> ImageReference:
        raise NotImplementedError


class RegistryDestination(ImageDestination):
    def __init__(self, reference: ImageReference, client: RegistryClient) -> None:
        super().__init__(reference)
        self.client = client

    def close(self) -> None:
        self.client.close()

    def has_blob(self, digest: str) -> bool:
        return self.client.has_blob(self.reference.repository, digest)

    def has_manifest(self, digest: str) -> bool:
        return self.client.has_manifest(self.reference.repository, digest, ACCEPT)

    def put_blob(self, descriptor: Descriptor, path: Path) -> None:
        with path.open("rb") as stream:
            self.client.upload_blob(self.reference.repository, descriptor.digest, stream, descriptor.size)

    def put_manifest(self, data: bytes, media_type: str) -> ImageReference:
        digest = self.client.put_manifest(
            self.reference.repository, self.reference.tag or "latest", data, media_type
        )
        return self.reference.with_digest(digest)


class OciLayoutDestination(ImageDestination):
    def __init__(self, reference: ImageReference) -> None:
        super().__init__(reference)
        self.root = Path(reference.path)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            layout.write_text('{"imageLayoutVersion":"1.0.0"}')

    def _path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def has_manifest(self, digest: str) -> bool:
        return self.has_blob(digest)

    def put_blob(self, descriptor: Descriptor, path: Path) -> None:
        target = self._path(descriptor.digest)
        temporary = target.with_suffix(".partial")
        with path.open("rb") as source, temporary.open("wb") as sink:
            for chunk in _file_chunks(source):
                sink.write(chunk)
        temporary.replace(target)

    def put_manifest(self, data: bytes, media_type: str) -> ImageReference:
        digest = sha256_digest(data)
        self._path(digest).write_bytes(data)
        index_path = self.root / "index.json"
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        if index_path.exists():
            index = load_json(index_path.read_bytes(), "index.json")
        tag = self.reference.tag or "latest"
        kept = [
            m
            for m in index.get("manifests", [])
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag
        ]
        kept.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(data),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
        index["manifests"] = kept
        index_path.write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
        return self.reference.with_digest(digest)


@dataclass(frozen=True)
class RegistryOptions:
    insecure: frozenset[str] = frozenset()
    auth_file: Path | None = None
    ca_file: Path | None = None


def _client(reference: ImageReference, options: RegistryOptions) -> RegistryClient:
    credentials: Credentials | None = credentials_for(reference.registry, options.auth_file)
    return RegistryClient(
        reference.registry,
        insecure=reference.registry in options.insecure,
        credentials=credentials,
        ca_file=options.ca_file,
    )


def open_source(reference: ImageReference, options: RegistryOptions) -> ImageSource:
    if reference.transport is Transport.DOCKER:
        return RegistrySource(reference, _client(reference, options))
    if reference.transport is Transport.OCI:
        return OciLayoutSource(reference)
    return DockerArchiveSource(reference)


def open_destination(reference: ImageReference, options: RegistryOptions) -> ImageDestination:
    if reference.transport is Transport.DOCKER:
        if reference.digest:
            raise ImageError(f"{reference}: a destination is named by tag; the digest is the result")
        return RegistryDestination(reference, _client(reference, options))
    if reference.transport is Transport.OCI:
        return OciLayoutDestination(reference)
    raise ImageError("docker-archive: is a source only; write to docker:// or oci:")
