"""The sconify transform, registry to registry, with a real registry and skopeo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import decrypt_tree, generate_key, verify_tree
from pulumi_sconify.engine.image.layers import read_layer
from pulumi_sconify.engine.image.oci import ImageError, Platform
from pulumi_sconify.engine.image.reference import parse_reference
from pulumi_sconify.engine.image.rootfs import RootFilesystem
from pulumi_sconify.engine.image.sconify import SconifyOptions, SconifyResult, sconify
from pulumi_sconify.engine.image.transport import RegistryOptions, open_source
from tests.support.images.layers import (
    APP_LAYER,
    BASE_LAYER,
    HELPER,
    SECRET,
    layer_files,
    push_layout,
    skopeo,
    write_layout,
)
from tests.support.registry import Registry


def options(server: Registry, key: bytes, **changes: object) -> SconifyOptions:
    values: dict[str, object] = {
        "source": parse_reference(f"docker://{server.host}/native/counter:1"),
        "destination": parse_reference(f"docker://{server.host}/confidential/counter:1"),
        "command": "python3 /code/app.py",
        "fspf_key": key,
        "service": "python-service",
        "dirs": ("/code",),
        "volumes": (("V1", "/V1"),),
        "config_id": "ns/python-session/python-service",
        "cas_attestation_address": "cas.local:18765",
        "cas_ca_certificate": b"-----BEGIN CERTIFICATE-----\nPIN\n-----END CERTIFICATE-----\n",
    }
    values.update(changes)
    return SconifyOptions(**values)  # type: ignore[arg-type]


@pytest.fixture
def native(registry: Registry, tmp_path: Path) -> Registry:
    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    push_layout(tmp_path / "native", "1", registry.host, "native/counter")
    return registry


def run(registry: Registry, key: bytes, **changes: object) -> SconifyResult:
    return sconify(options(registry, key, **changes))


def unpacked(result: SconifyResult, directory: Path) -> RootFilesystem:
    """The confidential image's root file system, as a container runtime would lay it out."""
    with open_source(result.image, RegistryOptions()) as source:
        resolved = source.resolve(Platform())
        rootfs = RootFilesystem(directory)
        for index, layer in enumerate(resolved.manifest.layers):
            rootfs.apply(read_layer(source.blob(layer), layer.media_type, f"layer {index}"))
    rootfs.finish()
    return rootfs


def test_confidential_image_in_the_registry(native: Registry, tmp_path: Path) -> None:
    key = generate_key()
    result = run(native, key)
    assert result.image.digest and result.native.digest
    assert result.binary == "/usr/bin/python3.11"
    assert len(result.mrenclave) == 64 and len(result.fspf_tag) == 32

    inspected = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{native.host}/confidential/counter:1").stdout
    )
    assert inspected["Digest"] == result.image.digest
    assert inspected["Labels"]["io.sconify.mrenclave"] == result.mrenclave
    assert inspected["Labels"]["io.sconify.native-image"] == result.native.pinned
    config = json.loads(
        skopeo(
            "inspect", "--tls-verify=false", "--config", f"docker://{native.host}/confidential/counter:1"
        ).stdout
    )
    assert config["config"]["Entrypoint"] == ["/sconify/bin/sconify-run"]
    assert "SCONE_CONFIG_ID=ns/python-session/python-service" in config["config"]["Env"]
    assert "SCONE_CAS_ADDR=cas.local:18765" in config["config"]["Env"]
    assert [m.to_json() for m in result.mounts] == [
        {"path": "/sconify/volumes/V1", "kind": "ciphertext-volume", "volume": "V1"},
        {"path": "/V1", "kind": "tmpfs", "volume": "V1"},
        {"path": "/code", "kind": "tmpfs", "volume": None},
    ]


def test_no_blob_holds_the_plaintext_of_code(native: Registry, tmp_path: Path) -> None:
    run(native, generate_key())
    blobs = layer_files(native.host, "confidential/counter:1", tmp_path / "pulled")
    everything = b"".join(blobs.values())
    assert b"5e1f9c0d" not in everything
    assert b"b7d41a02" not in everything
    assert b"fake libc" in everything  # the base layer is there, untouched


def test_protected_regions_verify_in_the_assembled_image(native: Registry, tmp_path: Path) -> None:

    key = generate_key()
    result = run(native, key)
    rootfs = unpacked(result, tmp_path / "rootfs")
    assert sorted(p.name for p in (rootfs.root / "code").iterdir()) == []  # only the mount point
    tag = bytes.fromhex(result.fspf_tag)
    verify_tree(rootfs.root, key, tag)
    decrypt_tree(rootfs.root, tmp_path / "plain", key, tag)
    assert (tmp_path / "plain/code/app.py").read_bytes() == SECRET
    assert (tmp_path / "plain/code/lib/helper.py").read_bytes() == HELPER
    assert (rootfs.root / "sconify/cas-ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (rootfs.root / "V1").is_dir() and (rootfs.root / "sconify/volumes/V1").is_dir()


def test_same_inputs_and_key_give_the_same_digest(native: Registry) -> None:
    key = generate_key()
    first = run(native, key)
    second = run(native, key)
    assert second.image.digest == first.image.digest
    assert second.mrenclave == first.mrenclave
    assert second.blobs_uploaded == 0  # everything was there: only digests were compared
    third = run(native, generate_key())
    assert third.image.digest != first.image.digest
    assert third.mrenclave == first.mrenclave  # the measurement does not depend on the FSPF key


def test_dry_run_writes_nothing(native: Registry) -> None:
    result = run(native, generate_key(), dry_run=True)
    assert result.image.digest
    with pytest.raises(subprocess.CalledProcessError) as missing:
        skopeo("inspect", "--tls-verify=false", f"docker://{native.host}/confidential/counter:1")
    assert "manifest unknown" in missing.value.stderr


def test_to_an_oci_layout(native: Registry, tmp_path: Path) -> None:
    result = run(native, generate_key(), destination=parse_reference(f"oci:{tmp_path / 'out'}:v1"))
    inspected = json.loads(skopeo("inspect", f"oci:{tmp_path / 'out'}:v1").stdout)
    assert inspected["Digest"] == result.image.digest


def test_missing_dir_and_binary_are_clear_errors(native: Registry) -> None:
    with pytest.raises(ImageError, match="--dir /app: not a directory in the image"):
        run(native, generate_key(), dirs=("/app",))
    with pytest.raises(ImageError, match="ruby: not found in the image"):
        run(native, generate_key(), command="ruby /code/app.rb")
    with pytest.raises(ImageError, match="overlaps a path the confidential image reserves"):
        run(native, generate_key(), dirs=("/fspf",))


def test_volume_names_follow_the_one_rule_that_charts_and_components_follow(native: Registry) -> None:
    """``data_1`` used to sconify and then fail when the chart was made: it is refused here, by name."""
    with pytest.raises(ImageError, match="--volume data_1: a volume's name is a letter"):
        run(native, generate_key(), volumes=(("data_1", "/data"),))
    with pytest.raises(ImageError, match="differ only in case are one volume"):
        run(native, generate_key(), volumes=(("V1", "/V1"), ("v1", "/v1")))


def test_remembered_result_needs_every_blob_at_the_destination(native: Registry, tmp_path: Path) -> None:
    key = generate_key()
    first = run(native, key, destination=parse_reference(f"oci:{tmp_path / 'a'}:1"))
    assert first.blobs_uploaded > 0
    again = run(native, key, destination=parse_reference(f"oci:{tmp_path / 'a'}:1"))
    assert (again.blobs_uploaded, again.image.digest) == (0, first.image.digest)
    elsewhere = run(
        native, key, destination=parse_reference(f"oci:{tmp_path / 'b'}:1")
    )  # an empty destination
    assert elsewhere.blobs_uploaded == first.blobs_uploaded
    assert elsewhere.image.digest == first.image.digest
    changed = run(native, key, destination=parse_reference(f"oci:{tmp_path / 'a'}:1"), heap="512M")
    assert changed.image.digest != first.image.digest and changed.mrenclave != first.mrenclave


def test_from_a_docker_archive(tmp_path: Path) -> None:
    """A `docker save` tarball (manifest.json, config, uncompressed layer tars) as the source."""
    import hashlib
    import io
    import tarfile as tar_module

    from tests.support.images.layers import tar_bytes

    layers = [tar_bytes(BASE_LAYER), tar_bytes(APP_LAYER)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["python3", "/code/app.py"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers],
            },
        }
    ).encode()
    files = {
        "config.json": config,
        "base/layer.tar": layers[0],
        "app/layer.tar": layers[1],
        "manifest.json": json.dumps(
            [
                {
                    "Config": "config.json",
                    "RepoTags": ["counter:1"],
                    "Layers": ["base/layer.tar", "app/layer.tar"],
                }
            ]
        ).encode(),
    }
    archive_path = tmp_path / "counter.tar"
    with tar_module.open(archive_path, "w") as archive:
        for name, data in files.items():
            member = tar_module.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    key = generate_key()
    result = sconify(
        SconifyOptions(
            source=parse_reference(f"docker-archive:{archive_path}"),
            destination=parse_reference(f"oci:{tmp_path / 'out'}:1"),
            command="python3 /code/app.py",
            fspf_key=key,
            dirs=("/code",),
        )
    )
    inspected = json.loads(skopeo("inspect", f"oci:{tmp_path / 'out'}:1").stdout)
    assert inspected["Digest"] == result.image.digest
    assert len(inspected["Layers"]) == 3


def test_private_registry_with_tls_and_credentials(secure_registry: Registry, tmp_path: Path) -> None:
    from pulumi_sconify.engine.image.transport import RegistryOptions

    write_layout(tmp_path / "native", "1", [BASE_LAYER, APP_LAYER])
    auth = secure_registry.auth_file()
    skopeo(
        "copy",
        "--dest-cert-dir",
        str(tmp_path / "certs"),
        "--dest-tls-verify=false",
        "--dest-authfile",
        str(auth),
        f"oci:{tmp_path / 'native'}:1",
        f"docker://{secure_registry.host}/native/counter:1",
    )
    access = RegistryOptions(auth_file=auth, ca_file=secure_registry.certificate)
    result = sconify(
        options(
            secure_registry,
            generate_key(),
            registry=access,
            destination=parse_reference(f"docker://{secure_registry.host}/confidential/counter:1"),
        )
    )
    inspected = json.loads(
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--authfile",
            str(auth),
            f"docker://{secure_registry.host}/confidential/counter:1",
        ).stdout
    )
    assert inspected["Digest"] == result.image.digest


def test_the_runtime_recomputes_the_measurement(native: Registry, tmp_path: Path) -> None:
    """The measurement can be recomputed from the image's files alone (before the FSPF key is known),
    and any change to the program, its libraries or the measurement plan changes it."""
    from pulumi_sconify.engine.runtime.measure import measure_root

    result = run(native, generate_key(), heap="256M")
    rootfs = unpacked(result, tmp_path / "rootfs")
    root = rootfs.root
    assert measure_root(root) == result.mrenclave
    (root / "V1" / "scratch").write_text("volumes and unprotected paths do not count\n")
    assert measure_root(root) == result.mrenclave
    library = root / "usr/lib/python3.11/click.py"
    original = library.read_bytes()
    library.write_bytes(b"# patched click\n")
    assert measure_root(root) != result.mrenclave
    library.write_bytes(original)
    plan = root / "sconify/measure.json"
    plan.write_text(plan.read_text().replace('"256M"', '"1G"'))
    assert measure_root(root) != result.mrenclave


def test_the_whole_root_is_authenticated_but_what_is_left_writable(native: Registry, tmp_path: Path) -> None:
    """Outside the program's directories too: a file added under /etc is refused; the scratch directories,
    the container runtime's files and a path named writable change nothing."""
    from pulumi_sconify.engine.fspf import IntegrityError
    from pulumi_sconify.engine.runtime.measure import measure_root

    key = generate_key()
    result = run(native, key, writable=("/srv/state",))
    rootfs = unpacked(result, tmp_path / "rootfs")
    root, tag = rootfs.root, bytes.fromhex(result.fspf_tag)
    for made in ("proc", "run", "var/run", "var/tmp", "dev", "sys"):  # mount points, made in the new layer
        assert (root / made).is_dir(), made
    assert (root / "srv" / "state").is_dir()  # made in the new layer, as a volume's path is
    (root / "srv" / "state" / "written").write_text("the program's\n")
    (root / "tmp" / "scratch").write_text("anyone's\n")
    (root / "etc" / "hostname").write_text("the container runtime's\n")
    verify_tree(root, key, tag)
    assert measure_root(root) == result.mrenclave
    (root / "etc" / "ld.so.preload").write_text("/tmp/evil.so\n")
    with pytest.raises(
        IntegrityError, match=r"/etc/ld\.so\.preload failed: unexpected entry in authenticated region /"
    ):
        verify_tree(root, key, tag)
    assert measure_root(root) != result.mrenclave
