"""Encrypted, rollback-protected volumes: the counter works, and every attack on storage is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pulumi_sconify.engine.fspf import (
    AnchorConflictError,
    AnchorState,
    InMemoryAnchor,
    IntegrityError,
    RollbackError,
    UsageError,
    Volume,
    generate_key,
    metadata as metadata_module,
)
from pulumi_sconify.engine.fspf.volume import DATA
from tests.support.fspf_trees import Counter


@pytest.fixture
def counter(tmp_path: Path) -> Counter:
    return Counter(tmp_path)


def test_counter_counts_across_runs(counter: Counter) -> None:
    assert [counter.run() for _ in range(3)] == [0, 1, 2]
    state = counter.anchor.current(counter.name)
    assert state is not None
    assert state.generation == 3


def test_storage_holds_only_ciphertext_and_one_state(counter: Counter) -> None:
    volume = counter.open()
    (volume.workdir / "num").write_text("secret-counter-value-4242\n")
    (volume.workdir / "sub").mkdir()
    (volume.workdir / "sub" / "link").symlink_to("../num")
    volume.commit()
    files = [p for p in counter.storage.rglob("*") if p.is_file()]
    assert b"4242" not in b"".join(p.read_bytes() for p in files)
    assert len([p for p in counter.storage.iterdir() if p.name.startswith("state.")]) == 1
    reopened = counter.open()
    assert (reopened.workdir / "sub" / "link").readlink() == Path("../num")
    assert (reopened.workdir / "num").read_text() == "secret-counter-value-4242\n"


def test_unchanged_state_is_not_committed_again(counter: Counter) -> None:
    counter.run()
    volume = counter.open()
    before = counter.anchor.current(counter.name)
    assert volume.commit() == before
    assert counter.anchor.current(counter.name) == before


def test_unchanged_files_keep_their_ciphertext(counter: Counter) -> None:
    volume = counter.open()
    (volume.workdir / "big").write_bytes(b"x" * 200_000)
    (volume.workdir / "num").write_text("0\n")
    volume.commit()
    big_blobs = counter.blobs()
    counter.run()
    assert len(counter.blobs() & big_blobs) == 1  # "big" kept its ciphertext, "num" got new ciphertext
    assert len(counter.blobs()) == 2


def test_a_file_changed_in_place_at_the_same_size_gets_new_ciphertext(counter: Counter) -> None:
    volume = counter.open()
    content = bytearray(b"x" * 200_000)
    (volume.workdir / "big").write_bytes(content)
    volume.commit()
    first = counter.blobs()
    content[150_000] ^= 1  # one bit, in the third chunk: the same size, other content
    (volume.workdir / "big").write_bytes(content)
    volume.commit()
    assert counter.blobs().isdisjoint(first)
    assert (counter.open().workdir / "big").read_bytes() == bytes(content)


def test_old_ciphertext_is_removed_after_commit(counter: Counter) -> None:
    counter.run()
    first = counter.blobs()
    counter.run()
    assert counter.blobs().isdisjoint(first)


# -- the attacks: each must be refused, naming what failed, and change nothing -----------------------


def refused_open(counter: Counter, error: type[Exception] = IntegrityError) -> str:
    anchor_before = counter.anchor.current(counter.name)
    listing_before = sorted(p.name for p in counter.storage.rglob("*"))
    with pytest.raises(error) as caught:
        counter.open()
    assert counter.anchor.current(counter.name) == anchor_before
    assert sorted(p.name for p in counter.storage.rglob("*")) == listing_before
    return str(caught.value)


def the_blob(counter: Counter) -> Path:
    (blob,) = (counter.storage / DATA).iterdir()
    return blob


def test_changed_content_is_detected(counter: Counter) -> None:
    counter.run()
    blob = the_blob(counter)
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    assert refused_open(counter) == "Verification of file chunk 0 (bytes 0 to 1) of file /V1/num failed"


def test_one_file_restored_from_an_older_generation_is_detected(counter: Counter) -> None:
    counter.run()
    old_ciphertext = the_blob(counter).read_bytes()
    counter.run()
    the_blob(counter).write_bytes(old_ciphertext)  # same size: "1\n" then "2\n"
    assert refused_open(counter) == "Verification of file chunk 0 (bytes 0 to 1) of file /V1/num failed"


def test_whole_volume_restored_from_an_older_copy_is_detected(counter: Counter) -> None:
    counter.run()
    snapshot = counter.snapshot("gen1")
    counter.run()
    counter.restore(snapshot)
    message = refused_open(counter, RollbackError)
    assert message == (
        "volume ns/counter/V1: committed state 2 is missing "
        "(the volume was deleted or replaced by an older copy)"
    )


def test_older_state_renamed_as_the_committed_one_is_detected(counter: Counter) -> None:
    counter.run()
    snapshot = counter.snapshot("gen1")
    counter.run()
    (current,) = [p for p in counter.storage.iterdir() if p.name.startswith("state.")]
    (older,) = [p for p in snapshot.iterdir() if p.name.startswith("state.")]
    shutil.copyfile(older, current)
    assert "state 2 on disk is not the committed one (rolled back or replaced)" in refused_open(
        counter, RollbackError
    )


def test_deleted_file_is_detected(counter: Counter) -> None:
    counter.run()
    the_blob(counter).unlink()
    assert refused_open(counter) == "Verification of file /V1/num failed: its encrypted content is missing"


def test_deleted_volume_is_not_silently_reinitialised(counter: Counter) -> None:
    counter.run()
    shutil.rmtree(counter.storage)
    counter.storage.mkdir()
    assert "committed state 1 is missing" in refused_open(counter, RollbackError)


def test_files_swapped_between_paths_are_detected(counter: Counter) -> None:
    volume = counter.open()
    (volume.workdir / "num").write_text("7\n")
    (volume.workdir / "max").write_text("9\n")
    volume.commit()
    a, b = sorted((counter.storage / DATA).iterdir())
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    assert "Verification of file chunk 0 (bytes 0 to 1) of file /V1/" in refused_open(counter)


def test_files_swapped_between_volumes_are_detected(tmp_path: Path) -> None:
    anchor = InMemoryAnchor()
    key = generate_key()  # even under the same key (the CAS gives each volume its own)
    first, second = Counter(tmp_path, "ns/a/V1", key, anchor), Counter(tmp_path, "ns/b/V1", key, anchor)
    first.run()
    second.run()
    shutil.copyfile(the_blob(second), the_blob(first))
    assert "of file /V1/num failed" in refused_open(first)


def test_whole_state_of_another_volume_is_detected(tmp_path: Path) -> None:
    anchor = InMemoryAnchor()
    key = generate_key()
    first, second = Counter(tmp_path, "ns/a/V1", key, anchor), Counter(tmp_path, "ns/b/V1", key, anchor)
    first.run()
    second.run()
    # Replace the first volume's storage with the second's, renamed to the tag the anchor expects.
    expected = anchor.current(first.name)
    assert expected is not None
    shutil.rmtree(first.storage)
    shutil.copytree(second.storage, first.storage)
    (state,) = [p for p in first.storage.iterdir() if p.name.startswith("state.")]
    state.rename(first.storage / f"state.1.{expected.tag.hex()}.fspf")
    assert "is not the committed one" in refused_open(first, RollbackError)


def test_volume_of_another_key_is_detected(counter: Counter) -> None:
    counter.run()
    counter.key = generate_key()
    assert "wrong key, or the file was changed" in refused_open(counter)


def test_program_cannot_be_pointed_at_an_unprotected_copy(counter: Counter, tmp_path: Path) -> None:
    """The storage never holds plaintext, so `-v /tmp/num` style redirection finds nothing to use."""
    counter.run()
    assert not any(p.read_bytes().strip() == b"1" for p in counter.storage.rglob("*") if p.is_file())


# -- concurrency and failures -------------------------------------------------------------------------


def test_second_writer_conflicts_and_leaves_nothing_behind(counter: Counter) -> None:
    counter.run()
    first, second = counter.open(), counter.open()
    (first.workdir / "num").write_text("100\n")
    (second.workdir / "num").write_text("200\n")
    first.commit()
    listing = sorted(p.name for p in counter.storage.rglob("*"))
    with pytest.raises(AnchorConflictError):
        second.commit()
    assert sorted(p.name for p in counter.storage.rglob("*")) == listing
    assert (counter.open().workdir / "num").read_text() == "100\n"


class FlakyAnchor(InMemoryAnchor):
    """Applies the swap, then (while ``lose_answers``) loses the answer: the caller cannot know."""

    lose_answers = True

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        super().compare_and_swap(volume, expected, new)
        if self.lose_answers:
            raise ConnectionError("connection reset")


def test_unknown_commit_outcome_keeps_both_states_and_the_anchor_decides(tmp_path: Path) -> None:
    anchor = FlakyAnchor()
    counter = Counter(tmp_path, anchor=anchor)
    volume = counter.open()
    (volume.workdir / "num").write_text("1\n")
    with pytest.raises(ConnectionError):
        volume.commit()
    anchor.lose_answers = False
    assert (counter.open().workdir / "num").read_text() == "1\n"  # it had committed
    assert counter.run() == 1


def first_commit_lost(tmp_path: Path, anchor: InMemoryAnchor) -> tuple[Counter, Volume]:
    """A volume whose first commit (``1``) failed with no answer from ``anchor``."""
    counter = Counter(tmp_path, anchor=anchor)
    volume = counter.open()
    (volume.workdir / "num").write_text("1\n")
    with pytest.raises(ConnectionError):
        volume.commit()
    return counter, volume


def test_the_next_commit_learns_that_a_lost_swap_happened(tmp_path: Path) -> None:
    anchor = FlakyAnchor()
    counter, volume = first_commit_lost(tmp_path, anchor)
    anchor.lose_answers = False
    (volume.workdir / "num").write_text("2\n")
    assert volume.commit() == anchor.current(counter.name)
    assert volume.generation == 2
    assert (counter.open().workdir / "num").read_text() == "2\n"


class DroppingAnchor(InMemoryAnchor):
    """Loses the request itself (while ``drop``): the swap never happens, and the caller cannot know."""

    drop = True

    def compare_and_swap(self, volume: str, expected: AnchorState | None, new: AnchorState) -> None:
        if self.drop:
            raise ConnectionError("connection reset")
        super().compare_and_swap(volume, expected, new)


def test_the_next_commit_learns_that_a_lost_swap_did_not_happen(tmp_path: Path) -> None:
    anchor = DroppingAnchor()
    counter, volume = first_commit_lost(tmp_path, anchor)
    anchor.drop = False
    (volume.workdir / "num").write_text("2\n")
    volume.commit()
    assert volume.generation == 1
    assert (counter.open().workdir / "num").read_text() == "2\n"


def test_a_lost_swap_then_another_writer_is_a_conflict(tmp_path: Path) -> None:
    anchor = DroppingAnchor()
    counter, volume = first_commit_lost(tmp_path, anchor)
    anchor.drop = False
    anchor.compare_and_swap(counter.name, None, AnchorState(1, b"\x01" * 16))  # someone else
    with pytest.raises(AnchorConflictError, match="another state was committed"):
        volume.commit()


def test_working_directory_must_be_empty(counter: Counter, tmp_path: Path) -> None:
    workdir = tmp_path / "dirty"
    workdir.mkdir()
    (workdir / "leftover").write_text("x")
    with pytest.raises(UsageError, match="must be an empty directory"):
        Volume.open(counter.storage, workdir, name=counter.name, key=counter.key, anchor=counter.anchor)


def test_special_files_cannot_be_committed(counter: Counter) -> None:
    import os

    volume = counter.open()
    os.mkfifo(volume.workdir / "pipe")
    with pytest.raises(UsageError, match="/V1/pipe is not a file"):
        volume.commit()
    assert counter.anchor.current(counter.name) is None


def test_repr_hides_the_key(counter: Counter) -> None:
    assert counter.key.hex() not in repr(counter.open())


def test_open_only_reads_the_storage(counter: Counter) -> None:
    counter.run()
    volume = counter.open()
    (volume.workdir / "num").write_text("99\n")
    volume.commit(observer=lambda step: None)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in counter.storage.rglob("*")}
    counter.open()
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in counter.storage.rglob("*")} == before


def test_states_of_format_1_still_open(counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 2 added owners for image entries; a volume committed before it holds the service's data and
    must stay readable (and the next commit writes format 2)."""

    def versions() -> set[int]:
        states = [p for p in counter.storage.iterdir() if p.is_file()]
        return {int.from_bytes(state.read_bytes()[12:14], "big") for state in states}

    monkeypatch.setattr(metadata_module, "FORMAT_VERSION", 1)
    assert [counter.run() for _ in range(2)] == [0, 1]
    assert versions() == {1}
    monkeypatch.undo()
    assert counter.run() == 2
    assert counter.run() == 3
    assert 2 in versions()
