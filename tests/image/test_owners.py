"""Owners and extended attributes from image layers: recorded from the tar headers as a container runtime
applies them, sealed by the sconifier for every authenticated entry, and checked against the image."""

from __future__ import annotations

import os
import struct
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import IntegrityError, generate_key, verify_tree
from pulumi_sconify.engine.fspf.attributes import CAPABILITY, ROOT_OWNED, Attributes, read_attributes
from pulumi_sconify.engine.fspf.tree import open_metadata
from pulumi_sconify.engine.image.layers import read_layer
from pulumi_sconify.engine.image.reference import parse_reference
from pulumi_sconify.engine.image.rootfs import RootFilesystem
from pulumi_sconify.engine.image.sconify import SconifyOptions, sconify
from tests.support.images.counter import unpack_layout
from tests.support.images.layers import APP_LAYER, BASE_LAYER, Entry, tar_bytes, write_layout

UNCOMPRESSED = "application/vnd.oci.image.layer.v1.tar"
BIND_SERVICE = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def pax_xattrs(**values: bytes) -> dict[str, object]:
    """Tar header fields carrying extended attributes, as GNU tar and container builders write them."""
    records = {
        "SCHILY.xattr." + name.replace("__", "."): value.decode("utf-8", "surrogateescape")
        for name, value in values.items()
    }
    return {"pax_headers": records}


def owned(uid: int, gid: int, **xattrs: bytes) -> dict[str, object]:
    return {"uid": uid, "gid": gid, **(pax_xattrs(**xattrs) if xattrs else {})}


def apply(rootfs: RootFilesystem, *layers: list[Entry]) -> None:
    for index, layer in enumerate(layers):
        rootfs.apply(read_layer(iter([tar_bytes(layer)]), UNCOMPRESSED, f"layer {index}"))
    rootfs.finish()


def test_the_filesystem_records_what_each_header_declares(tmp_path: Path) -> None:
    rootfs = RootFilesystem(tmp_path / "rootfs")
    apply(
        rootfs,
        [
            Entry("usr/", kind=tarfile.DIRTYPE, mode=0o755),
            Entry("usr/lib/", kind=tarfile.DIRTYPE, mode=0o755, extra=owned(5, 6)),
            Entry("lib", kind=tarfile.SYMTYPE, linkname="usr/lib", mode=0o777),
            Entry(
                "usr/lib/server",
                b"binary",
                mode=0o755,
                extra=owned(1000, 1001, security__capability=BIND_SERVICE, user__origin=b"build 7"),
            ),
            # A label the build host's SELinux gave the file: not the image's to declare.
            Entry(
                "usr/lib/labelled", b"x", extra=pax_xattrs(security__selinux=b"system_u:object_r:bin_t:s0")
            ),
            Entry("usr/share/", kind=tarfile.DIRTYPE, mode=0o755, extra=owned(9, 9)),
            Entry("usr/share/doc", b"doc", extra=owned(9, 9)),
        ],
        [
            # Through the /lib link: the entry lands on /usr/lib/more.
            Entry("lib/more", b"more", extra=owned(42, 43)),
            # A hard link: a runtime gives its header's owner to the inode both names share.
            Entry("usr/lib/alias", kind=tarfile.LNKTYPE, linkname="usr/lib/server", extra=owned(7, 7)),
            # Whiteout of a directory, then a file in a directory of that name that no header declares.
            Entry("usr/.wh.share", b""),
            Entry("usr/share/new", b"new", extra=owned(3, 3)),
        ],
    )
    assert rootfs.attributes("/usr/lib") == Attributes(5, 6)
    assert rootfs.attributes("/usr/lib/more") == Attributes(42, 43)
    # (as podman unpacks it: the owner changed, so the kernel dropped the capability; the mode is the link's)
    assert rootfs.attributes("/usr/lib/alias") == Attributes(7, 7, (("user.origin", b"build 7"),))
    assert rootfs.attributes("/usr/lib/server") == rootfs.attributes("/usr/lib/alias")
    assert rootfs.attributes("/usr/lib/labelled") == ROOT_OWNED
    assert rootfs.attributes("/usr/share") == ROOT_OWNED  # implied by /usr/share/new only: root's
    assert rootfs.attributes("/usr/share/new") == Attributes(3, 3)
    assert rootfs.attributes("/usr/share/doc") == ROOT_OWNED  # removed with its directory
    assert not (rootfs.root / "usr/share/doc").exists()
    assert (rootfs.root / "usr/lib/server").stat().st_mode & 0o7777 == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="applying owners takes root")
def test_applied_owners_and_attributes_are_the_recorded_ones(tmp_path: Path) -> None:
    rootfs = RootFilesystem(tmp_path / "rootfs", apply_owners=True)
    apply(
        rootfs,
        [
            Entry("bin/", kind=tarfile.DIRTYPE, mode=0o755, extra=owned(2, 2)),
            Entry("bin/ping", b"ping", mode=0o4755, extra=owned(0, 0, security__capability=BIND_SERVICE)),
            Entry("bin/tool", b"tool", mode=0o2755, extra=owned(1000, 50, user__origin=b"x")),
        ],
    )
    for path in ("/bin", "/bin/ping", "/bin/tool"):
        location = rootfs.root / path.lstrip("/")
        assert read_attributes(location, location.lstat()) == rootfs.attributes(path)
    # The mode comes after the owner, so a change of owner has not cleared set-user-ID or set-group-ID.
    assert (rootfs.root / "bin/ping").stat().st_mode & 0o7777 == 0o4755
    assert (rootfs.root / "bin/tool").stat().st_mode & 0o7777 == 0o2755


def sconified_with_owners(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """The test image with a library owned by an application user and a capability on the interpreter,
    sconified into an OCI layout; returns (layout, FSPF key, tag)."""
    special = {
        "usr/lib/python3.11/click.py": owned(1000, 1001, user__origin=b"wheel"),
        "usr/bin/python3.11": owned(0, 0, security__capability=BIND_SERVICE),
    }
    base = [replace(entry, extra=special.get(entry.path, {})) for entry in BASE_LAYER]
    write_layout(tmp_path / "native", "1", [base, APP_LAYER])
    key = generate_key()
    result = sconify(
        SconifyOptions(
            source=parse_reference(f"oci:{tmp_path / 'native'}:1"),
            destination=parse_reference(f"oci:{tmp_path / 'out'}:1"),
            command="python3 /code/app.py",
            fspf_key=key,
            service="python-service",
            dirs=("/code",),
            config_id="ns/python-session/python-service",
            cas_attestation_address="cas.local:18765",
        )
    )
    return tmp_path / "out", key, bytes.fromhex(result.fspf_tag)


def test_the_sconifier_seals_the_owners_the_layers_give(tmp_path: Path) -> None:
    """The sconifier runs without privilege: what it seals comes from the tar headers, not from the
    files it extracted as itself — and its own layer's entries are root's, as that layer says."""
    layout, key, tag = sconified_with_owners(tmp_path)
    entries = open_metadata(unpack_layout(layout, tmp_path / "rootfs", "1"), key, tag).entry_map()
    assert entries["/usr/lib/python3.11/click.py"].attributes == Attributes(
        1000, 1001, (("user.origin", b"wheel"),)
    )
    assert entries["/usr/bin/python3.11"].attributes == Attributes(0, 0, ((CAPABILITY, BIND_SERVICE),))
    assert entries["/usr/lib"].attributes == ROOT_OWNED
    assert entries["/sconify/measure.json"].attributes == ROOT_OWNED


@pytest.mark.skipif(os.geteuid() != 0, reason="applying owners takes root")
def test_the_image_unpacked_as_a_runtime_does_verifies_and_a_changed_owner_does_not(tmp_path: Path) -> None:
    layout, key, tag = sconified_with_owners(tmp_path)
    root = unpack_layout(layout, tmp_path / "rootfs", "1", apply_owners=True)
    verify_tree(root, key, tag)
    os.chown(root / "usr/lib/python3.11/click.py", 0, 0)
    with pytest.raises(IntegrityError, match=r"click.py failed: the file's owner changed \(sealed 1000:1001"):
        verify_tree(root, key, tag)
