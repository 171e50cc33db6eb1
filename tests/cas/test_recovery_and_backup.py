"""Keys that outlive the CAS, and backups that never roll a volume back silently — on both stores.

Recovery: the master key sealed to an owner's recovery key; the CAS deleted, data directory and all, and
rebuilt from the recovery key alone (and, where the database went with it, a backup). Backups: taken while
the CAS serves, verified end to end, restored on a fresh store; one older than the latest commit refused
unless the rollback is allowed — and then audit-logged."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.fspf import AnchorState
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas, backup
from tests.support.policies import FSPF_KEY, counter, namespace, text
from tests.support.postgres import query, store_location, store_option
from tests.support.processes import sconify, sconify_output


def tag(generation: int) -> bytes:
    return generation.to_bytes(16, "big")


def serving_counter(cas: RunningCas, owner: ClientIdentity, generations: int) -> tuple[str, VolumeAnchor]:
    """The counter's policy in ``cas`` and its volume committed up to ``generations``; returns the
    volume's key and an anchor to go on with."""
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    runtime = cas.runtime()
    key = runtime.attest()["configuration"]["volumes"][0]["key"]
    anchor = VolumeAnchor(runtime)
    for generation in range(1, generations + 1):
        previous = AnchorState(generation - 1, tag(generation - 1)) if generation > 1 else None
        anchor.compare_and_swap("V1", previous, AnchorState(generation, tag(generation)))
    return key, anchor


def volume_seen_by(cas: RunningCas) -> tuple[str, AnchorState | None]:
    runtime = cas.runtime()
    key = runtime.attest()["configuration"]["volumes"][0]["key"]
    return key, VolumeAnchor(runtime).current("V1")


def test_a_cas_deleted_is_rebuilt_from_the_recovery_key_alone(
    tmp_path: Path, owner: ClientIdentity, store_backend: str
) -> None:
    sconify_output("cas", "recovery-key", "create", "--out", str(tmp_path / "owner-keys"))
    cas = RunningCas(
        tmp_path / "cas", options=["--recovery-key", str(tmp_path / "owner-keys" / "recovery-key.pub.pem")]
    ).start()
    key, _ = serving_counter(cas, owner, generations=3)
    backup(cas, tmp_path / "b")
    pinned = tmp_path / "pinned-ca.pem"  # the CA its clients pin outlives it
    pinned.write_bytes(cas.ca.read_bytes())
    cas.stop()
    shutil.rmtree(cas.data_dir)  # the master key, the TLS files — and with SQLite the database — are gone

    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    private = str(tmp_path / "owner-keys" / "recovery-key.pem")
    if store_backend == "postgresql":  # the database outlived the CAS: recover straight from it
        source = ["--data-dir", str(rebuilt), *store_option(cas)]
    else:  # it went with the data directory: recover from the backup, then restore it
        source = ["--backup", str(tmp_path / "b")]
    sconify_output(
        "cas", "recover", "--recovery-key", private, *source, "--out", str(tmp_path / "master.key"),
        "--cas-ca", str(pinned),
    )  # fmt: skip
    if store_backend != "postgresql":
        restored = sconify_output(
            "cas", "backup", "restore", str(tmp_path / "b"), "--data-dir", str(rebuilt),
            "--master-key-file", str(tmp_path / "master.key"), "--allow-rollback",
        )  # fmt: skip
        assert "(a rollback, allowed and audit-logged)" in restored
    again = RunningCas(
        rebuilt, database=cas.database, options=["--master-key-file", str(tmp_path / "master.key")]
    ).start()
    try:
        assert volume_seen_by(again) == (key, AnchorState(3, tag(3)))
    finally:
        again.stop()


def test_recovery_needs_the_matching_private_key(tmp_path: Path, owner: ClientIdentity) -> None:
    sconify_output("cas", "recovery-key", "create", "--out", str(tmp_path / "held"))
    sconify_output("cas", "recovery-key", "create", "--out", str(tmp_path / "other"))
    cas = RunningCas(
        tmp_path / "cas", options=["--recovery-key", str(tmp_path / "held/recovery-key.pub.pem")]
    )
    cas.start()
    backup(cas, tmp_path / "b")
    cas.stop()
    refused = sconify(
        "cas", "recover", "--recovery-key", str(tmp_path / "other/recovery-key.pem"),
        "--backup", str(tmp_path / "b"), "--out", str(tmp_path / "master.key"), "--cas-ca", str(cas.ca),
    )  # fmt: skip
    assert refused.returncode != 0 and "holds no master key sealed to recovery key" in refused.stderr
    assert not (tmp_path / "master.key").exists()


def test_a_backup_taken_under_load_restores_on_a_fresh_store(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    _, anchor = serving_counter(cas, owner, generations=1)
    stop, swapped = threading.Event(), [1]

    def swap() -> None:
        while not stop.is_set():
            generation = swapped[-1]
            anchor.compare_and_swap(
                "V1",
                AnchorState(generation, tag(generation)),
                AnchorState(generation + 1, tag(generation + 1)),
            )
            swapped.append(generation + 1)

    worker = threading.Thread(target=swap)
    worker.start()
    try:
        backup(cas, tmp_path / "b")
    finally:
        stop.set()
        worker.join()
    assert len(swapped) > 1  # the CAS was committing while the backup was read
    verified = sconify_output("cas", "backup", "verify", str(tmp_path / "b"), "--data-dir", str(cas.data_dir))
    assert "verified" in verified
    assert FSPF_KEY.encode() not in (tmp_path / "b").read_bytes()

    fresh = RunningCas(tmp_path / "fresh", database=store_location(tmp_path / "fresh-store"))
    fresh.data_dir.mkdir()
    shutil.copy(cas.data_dir / "master.key", fresh.data_dir / "master.key")
    empty = sconify(
        "cas",
        "backup",
        "restore",
        str(tmp_path / "b"),
        "--data-dir",
        str(fresh.data_dir),
        *store_option(fresh),
    )
    assert (
        empty.returncode != 0
        and "the store is empty, so nothing tells whether commits were made" in empty.stderr
    )
    sconify_output(
        "cas",
        "backup",
        "restore",
        str(tmp_path / "b"),
        "--data-dir",
        str(fresh.data_dir),
        *store_option(fresh),
        "--allow-rollback",
    )
    fresh.start()
    try:
        _, state = volume_seen_by(fresh)
        assert state is not None and 1 <= state.generation <= swapped[-1]
    finally:
        fresh.stop()


def test_a_restore_older_than_the_latest_commit_is_refused_unless_allowed(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path
) -> None:
    _, anchor = serving_counter(cas, owner, generations=1)
    backup(cas, tmp_path / "b")
    anchor.compare_and_swap("V1", AnchorState(1, tag(1)), AnchorState(2, tag(2)))
    cas.stop()
    restore = [
        "cas",
        "backup",
        "restore",
        str(tmp_path / "b"),
        "--data-dir",
        str(cas.data_dir),
        *store_option(cas),
    ]
    refused = sconify(*restore)
    assert refused.returncode != 0
    assert (
        "the store went on past this backup" in refused.stderr and "roll back every volume" in refused.stderr
    )
    cas.start()
    assert volume_seen_by(cas)[1] == AnchorState(2, tag(2))  # nothing changed
    cas.stop()

    sconify_output(*restore, "--allow-rollback")
    cas.start()
    assert volume_seen_by(cas)[1] == AnchorState(1, tag(1))
    cas.stop()
    events = [
        row[0] for row in query(cas.database, "SELECT details FROM audit WHERE event = 'store.restored'")
    ]
    assert len(events) == 1 and '"rollback_allowed":true' in events[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-1], "cut off"),
        (lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], "does not verify"),
        (lambda data: data.replace(b'"seq": ', b'"seq": 1', 1), "does not verify"),
        (lambda data: data + b"\x00\x00\x00\x00", "data after its last chunk"),
    ],
    ids=["truncated", "flipped byte", "header edited", "appended"],
)
def test_a_damaged_backup_is_refused_by_verify_and_restore(
    cas: RunningCas, owner: ClientIdentity, tmp_path: Path, damage: object, message: str
) -> None:
    serving_counter(cas, owner, generations=1)
    backup(cas, tmp_path / "b")
    cas.stop()
    damaged = tmp_path / "b"
    damaged.write_bytes(damage(damaged.read_bytes()))  # type: ignore[operator]
    verified = sconify("cas", "backup", "verify", str(damaged), "--data-dir", str(cas.data_dir))
    assert verified.returncode != 0 and message in verified.stderr
    restored = sconify(
        "cas",
        "backup",
        "restore",
        str(damaged),
        "--data-dir",
        str(cas.data_dir),
        *store_option(cas),
        "--allow-rollback",
    )
    assert restored.returncode != 0 and message in restored.stderr


def test_a_backup_never_overwrites_a_file(cas: RunningCas, tmp_path: Path) -> None:
    backup(cas, tmp_path / "b")
    first = (tmp_path / "b").read_bytes()
    again = sconify(
        "cas",
        "backup",
        "create",
        "--data-dir",
        str(cas.data_dir),
        *store_option(cas),
        "--out",
        str(tmp_path / "b"),
    )
    assert again.returncode != 0 and "exists; refusing to overwrite it" in again.stderr
    assert (tmp_path / "b").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b")) == ["b"]  # no partial left
