"""The registry client against a real registry: push, pull, digests, auth, TLS, tampering."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from pulumi_sconify.engine.image.registry import (
    RegistryClient,
    RegistryError,
    credentials_for,
    sha256_digest,
)
from tests.support.registry import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push_image(client: RegistryClient, repository: str, tag: str, layer: bytes) -> tuple[str, str]:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
            "config": {},
        }
    ).encode()
    for blob in (layer, config):
        client.upload_blob(repository, sha256_digest(blob), io.BytesIO(blob), len(blob))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return client.put_manifest(repository, tag, manifest, OCI_MANIFEST), sha256_digest(layer)


def test_push_and_pull(registry: Registry) -> None:
    layer = os.urandom(3 * 1024 * 1024 + 17)
    with RegistryClient(registry.host) as client:
        manifest_digest, layer_digest = push_image(client, "test/app", "v1", layer)
        data, media_type, digest = client.get_manifest("test/app", "v1", (OCI_MANIFEST,))
        assert (media_type, digest) == (OCI_MANIFEST, manifest_digest)
        assert client.get_manifest("test/app", manifest_digest, (OCI_MANIFEST,))[0] == data
        assert client.has_blob("test/app", layer_digest)
        assert not client.has_blob("test/app", sha256_digest(b"other"))
        assert b"".join(client.blob_chunks("test/app", layer_digest, len(layer))) == layer


def test_tampered_blob_is_detected(registry: Registry) -> None:
    layer = os.urandom(100_000)
    with RegistryClient(registry.host) as client:
        _, layer_digest = push_image(client, "test/app", "v1", layer)
        stored = next(registry.storage.rglob(f"{layer_digest.removeprefix('sha256:')}/data"))
        tampered = bytearray(stored.read_bytes())
        tampered[500] ^= 1
        stored.write_bytes(bytes(tampered))
        with pytest.raises(RegistryError, match="does not match its digest"):
            b"".join(client.blob_chunks("test/app", layer_digest, len(layer)))
        with pytest.raises(RegistryError, match="larger than its manifest says"):
            b"".join(client.blob_chunks("test/app", layer_digest, 10))


def test_missing_image_is_a_clear_error(registry: Registry) -> None:
    with RegistryClient(registry.host) as client, pytest.raises(RegistryError, match="HTTP 404"):
        client.get_manifest("test/nothing", "v1", (OCI_MANIFEST,))


def test_tls_and_basic_auth_from_docker_config(secure_registry: Registry) -> None:
    credentials = credentials_for(secure_registry.host, secure_registry.auth_file())
    assert credentials is not None and credentials.username == "alice"
    assert "s3cret" not in repr(credentials)
    with RegistryClient(
        secure_registry.host, credentials=credentials, ca_file=secure_registry.certificate
    ) as client:
        digest, _ = push_image(client, "private/app", "v1", b"layer-bytes")
        assert client.get_manifest("private/app", "v1", (OCI_MANIFEST,))[2] == digest


def test_wrong_password_and_untrusted_certificate(secure_registry: Registry, tmp_path: Path) -> None:
    from pulumi_sconify.engine.image.registry import Credentials

    with (
        RegistryClient(
            secure_registry.host,
            credentials=Credentials("alice", "wrong"),
            ca_file=secure_registry.certificate,
        ) as client,
        pytest.raises(RegistryError, match="401"),
    ):
        client.get_manifest("private/app", "v1", (OCI_MANIFEST,))
    with (
        RegistryClient(secure_registry.host) as client,
        pytest.raises(RegistryError, match="TLS certificate is not trusted"),
    ):
        client.get_manifest("private/app", "v1", (OCI_MANIFEST,))
