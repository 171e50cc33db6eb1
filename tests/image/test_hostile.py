"""Hostile native images end with a clear error, and nothing is written to the destination."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import generate_key
from pulumi_sconify.engine.image.oci import ImageError
from pulumi_sconify.engine.image.reference import parse_reference
from pulumi_sconify.engine.image.sconify import SconifyOptions, sconify
from tests.support.images.layers import APP_LAYER, BASE_LAYER, Entry, gz, push_layout, tar_bytes, write_layout
from tests.support.registry import Registry


def attempt(tmp_path: Path, **layout: object) -> str:
    write_layout(tmp_path / "native", "1", **layout)  # type: ignore[arg-type]
    destination = tmp_path / "out"
    options = SconifyOptions(
        source=parse_reference(f"oci:{tmp_path / 'native'}:1"),
        destination=parse_reference(f"oci:{destination}:1"),
        command="python3 /code/app.py",
        fspf_key=generate_key(),
        dirs=("/code",),
    )
    with pytest.raises(ImageError) as caught:
        sconify(options)
    assert not destination.exists(), "nothing may be written to the destination"
    return str(caught.value)


HOSTILE_ENTRIES: dict[str, tuple[Entry, str]] = {
    "dot-dot": (Entry("code/../../etc/passwd", b"x"), "climbs out of the tree"),
    "absolute": (Entry("/etc/shadow", b"x"), "absolute entry name"),
    "link-escape": (
        Entry("code/up", kind=tarfile.SYMTYPE, linkname="../../../../etc"),
        "points outside the tree",
    ),
    "char-device": (
        Entry("dev-null", kind=tarfile.CHRTYPE, extra={"devmajor": 1, "devminor": 3}),
        "device file",
    ),
    "block-device": (
        Entry("disk", kind=tarfile.BLKTYPE, extra={"devmajor": 8, "devminor": 0}),
        "device file",
    ),
    "fifo": (Entry("pipe", kind=tarfile.FIFOTYPE), "FIFO"),
    "dangling-hardlink": (
        Entry("code/hard", kind=tarfile.LNKTYPE, linkname="etc/nothing"),
        "not a file in the tree",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_ENTRIES))
def test_hostile_entries(tmp_path: Path, case: str) -> None:
    entry, message = HOSTILE_ENTRIES[case]
    assert message in attempt(tmp_path, layers=[BASE_LAYER, [*APP_LAYER, entry]])


def test_duplicate_entries(tmp_path: Path) -> None:
    assert "appears twice in one layer" in attempt(tmp_path, layers=[BASE_LAYER, [*APP_LAYER, APP_LAYER[1]]])


def test_truncated_layer(tmp_path: Path) -> None:
    good = gz(tar_bytes(BASE_LAYER))
    message = attempt(tmp_path, layers=[BASE_LAYER], compressed_layers=[good[: len(good) // 2]])
    assert "not a valid layer" in message


def test_layer_larger_than_declared(tmp_path: Path) -> None:
    good = gz(tar_bytes(BASE_LAYER))
    message = attempt(tmp_path, layers=[BASE_LAYER], declared_sizes=[len(good) - 10])
    assert "larger than its descriptor says" in message


def test_link_into_the_encrypted_directory_is_refused(tmp_path: Path) -> None:
    layers = [
        BASE_LAYER,
        [*APP_LAYER, Entry("etc/copy-of-app", kind=tarfile.LNKTYPE, linkname="code/app.py")],
    ]
    assert "hard link into encrypted directory" in attempt(tmp_path, layers=layers)


def test_tampered_blob_in_the_registry(registry: Registry, tmp_path: Path) -> None:
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", registry.host, "native/counter")
    app_layer = gz(tar_bytes(APP_LAYER))
    blob = next(p for p in registry.storage.rglob("data") if p.read_bytes() == app_layer)
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0xFF
    blob.write_bytes(bytes(data))
    options = SconifyOptions(
        source=parse_reference(f"docker://{registry.host}/native/counter:1"),
        destination=parse_reference(f"oci:{tmp_path / 'out'}:1"),
        command="python3 /code/app.py",
        fspf_key=generate_key(),
        dirs=("/code",),
    )
    with pytest.raises(ImageError, match=r"does not match its digest|not a valid layer"):
        sconify(options)
    assert not (tmp_path / "out").exists()


def test_platform_selection(tmp_path: Path) -> None:
    from pulumi_sconify.engine.image.oci import Platform

    layout = tmp_path / "multi"
    write_layout(layout, "1", [BASE_LAYER, APP_LAYER], architecture="arm64")
    # An index listing only arm64: asking for the default linux/amd64 must say what there is.
    import json

    index = json.loads((layout / "index.json").read_text())
    index_blob = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index["manifests"],
        }
    ).encode()
    import hashlib

    index_digest = "sha256:" + hashlib.sha256(index_blob).hexdigest()
    (layout / "blobs" / "sha256" / index_digest.removeprefix("sha256:")).write_bytes(index_blob)
    index["manifests"] = [
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": len(index_blob),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }
    ]
    (layout / "index.json").write_text(json.dumps(index))
    base = {
        "source": parse_reference(f"oci:{layout}:multi"),
        "destination": parse_reference(f"oci:{tmp_path / 'o'}:1"),
        "command": "python3 /code/app.py",
        "fspf_key": generate_key(),
        "dirs": ("/code",),
    }
    with pytest.raises(ImageError, match="no image for linux/amd64 in the index \\(it has: linux/arm64\\)"):
        sconify(SconifyOptions(**base))  # type: ignore[arg-type]
    result = sconify(SconifyOptions(**base, platform=Platform.parse("linux/arm64")))  # type: ignore[arg-type]
    assert result.image.digest
