"""In-place, deterministic protection of image regions (what the sconifier adds as a layer)."""

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
    verify_tree,
)
from pulumi_sconify.engine.fspf.observation import observe
from pulumi_sconify.engine.fspf.tree import normalise_regions, protect_in_place
from tests.support.fspf_trees import SECRET_CODE, build_source

REGIONS = [
    Region("/code", Protection.ENCRYPTED),
    Region("/usr", Protection.AUTHENTICATED),
    Region("/usr/tmp", Protection.NOT_PROTECTED),
]


def image_from(source: Path, fspf: Path, target: Path) -> Path:
    """The image as a container sees it: the source minus /code's content, plus /fspf."""
    shutil.copytree(source, target, symlinks=True)
    shutil.rmtree(target / "code")
    (target / "code").mkdir()
    shutil.copytree(fspf / "fspf", target / "fspf")
    return target


def test_protected_image_verifies_and_decrypts(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    result = protect_in_place(source, tmp_path / "layer", key, REGIONS)
    assert sorted(p.name for p in (tmp_path / "layer").iterdir()) == ["fspf"]  # only /fspf is produced
    image = image_from(source, tmp_path / "layer", tmp_path / "image")
    verify_tree(image, key, result.tag)
    decrypt_tree(image, tmp_path / "plain", key, result.tag)
    assert (tmp_path / "plain" / "code" / "app.py").read_bytes() == SECRET_CODE
    everything = b"".join(p.read_bytes() for p in (tmp_path / "layer").rglob("*") if p.is_file())
    assert b"7f3a9c" not in everything


def test_same_tree_and_key_give_identical_output(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    first = protect_in_place(source, tmp_path / "a", key, REGIONS)
    second = protect_in_place(source, tmp_path / "b", key, REGIONS)
    assert first.tag == second.tag
    files_a = {
        p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()
    }
    files_b = {
        p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()
    }
    assert files_a == files_b
    assert protect_in_place(source, tmp_path / "c", generate_key(), REGIONS).tag != first.tag


def test_changed_content_changes_the_state(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    first = protect_in_place(source, tmp_path / "a", key, REGIONS)
    (source / "code" / "app.py").write_text("print('v2')\n")
    second = protect_in_place(source, tmp_path / "b", key, REGIONS)
    assert first.tag != second.tag
    image = image_from(source, tmp_path / "a", tmp_path / "image")  # old metadata with new files
    (image / "usr" / "bin" / "helper").write_text("changed\n")
    with pytest.raises(IntegrityError, match="/usr/bin/helper"):
        verify_tree(image, key, first.tag)


def test_missing_region_is_a_usage_error(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    with pytest.raises(UsageError, match="/app: no such file or directory in the image"):
        protect_in_place(source, tmp_path / "out", generate_key(), [Region("/app", Protection.ENCRYPTED)])


def test_verification_can_use_what_a_walk_saw_a_moment_ago(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    result = protect_in_place(source, tmp_path / "layer", key, REGIONS)
    image = image_from(source, tmp_path / "layer", tmp_path / "image")
    regions = result.manifest.regions
    verify_tree(image, key, result.tag, observation=observe(image, regions))
    # A file changed after it was protected: what the walk saw of it is not the sealed content.
    helper = image / "usr" / "bin" / "helper"
    helper.write_bytes(helper.read_bytes().replace(b"helper", b"HELPER"))  # same size
    with pytest.raises(IntegrityError, match="/usr/bin/helper failed: its content is not the protected one"):
        verify_tree(image, key, result.tag, observation=observe(image, regions))
    helper.write_bytes(helper.read_bytes().replace(b"HELPER", b"helper"))
    # An entry added to an authenticated region, and plaintext left in an encrypted one, are in the walk.
    (image / "usr" / "bin" / "added").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(IntegrityError, match="/usr/bin/added failed: unexpected entry in authenticated"):
        verify_tree(image, key, result.tag, observation=observe(image, regions))
    (image / "usr" / "bin" / "added").unlink()
    (image / "code" / "app.py").write_bytes(b"print('plain')\n")
    with pytest.raises(IntegrityError, match=r"/code/app\.py failed: unexpected entry in encrypted"):
        decrypt_tree(image, tmp_path / "plain", key, result.tag, observation=observe(image, regions))


def test_an_observation_of_other_regions_is_not_used(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    key = generate_key()
    result = protect_in_place(source, tmp_path / "layer", key, REGIONS)
    image = image_from(source, tmp_path / "layer", tmp_path / "image")
    stale = observe(image, normalise_regions([Region("/usr", Protection.AUTHENTICATED)]))
    (image / "code" / "app.py").write_bytes(b"print('plain')\n")  # not seen by a walk of /usr only
    with pytest.raises(IntegrityError, match=r"/code/app\.py failed: unexpected entry in encrypted"):
        verify_tree(image, key, result.tag, observation=stale)


def test_a_special_file_in_an_authenticated_region_is_not_read(tmp_path: Path) -> None:
    source = build_source(tmp_path / "src")
    os.mkfifo(source / "usr" / "bin" / "pipe")  # reading it would block for ever
    with pytest.raises(ValueError, match="/usr/bin/pipe: a special file in authenticated region"):
        observe(source, normalise_regions(REGIONS))
