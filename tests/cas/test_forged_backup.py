"""Backups and recovery that know which CAS they belong to (issue #31), on both stores.

The attacker holds everything public: the owner's recovery *public* key, the CAS's CA certificate, and — as
whoever keeps backups or administers the database — the files and rows. It runs a CAS of its own sealed to
the owner's public recovery key, makes the owner's session names with its own identity and writes a backup;
or it replaces the sealed copy of the master key in the owner's store. Each is refused, by name, and what
was refused changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from tests.support.cas import RunningCas, audit_verify, backup, identity
from tests.support.policies import counter, namespace, text
from tests.support.postgres import query, store_option
from tests.support.processes import sconify


class World:
    """The owner's CAS (with a recovery key), the attacker's CAS sealed to the same public key, and a
    backup of each; both CASes stopped."""

    def __init__(self, tmp_path: Path, owner: ClientIdentity) -> None:
        keys = tmp_path / "owner-keys"
        assert sconify("cas", "recovery-key", "create", "--out", str(keys)).returncode == 0
        self.private = keys / "recovery-key.pem"
        public = ["--recovery-key", str(keys / "recovery-key.pub.pem")]
        self.owner_cas = RunningCas(tmp_path / "owner-cas", options=public).start()
        self.attacker_cas = RunningCas(tmp_path / "attacker-cas", options=public).start()
        for cas, who in ((self.owner_cas, owner), (self.attacker_cas, identity(tmp_path, "attacker"))):
            with cas.client(who) as client:
                client.post_session(namespace())
                client.post_session(text(counter()))
            cas.stop()
        self.pinned = self.owner_cas.ca  # what the owner's clients pin
        self.genuine, self.forged = tmp_path / "genuine.backup", tmp_path / "forged.backup"
        for cas, out in ((self.owner_cas, self.genuine), (self.attacker_cas, self.forged)):
            backup(cas, out)
        self.out = tmp_path / "recovered.key"

    def recover(self, *source: str) -> subprocess.CompletedProcess[str]:
        return sconify(
            "cas", "recover", "--recovery-key", str(self.private), *source,
            "--out", str(self.out), "--cas-ca", str(self.pinned),
        )  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, owner: ClientIdentity) -> World:
    return World(tmp_path, owner)


def test_the_genuine_backup_and_store_recover(world: World) -> None:
    recovered = world.recover("--backup", str(world.genuine))
    assert recovered.returncode == 0, recovered.stderr
    assert world.out.read_text() == (world.owner_cas.data_dir / "master.key").read_text()
    world.out.unlink()
    from_store = world.recover("--data-dir", str(world.owner_cas.data_dir), *store_option(world.owner_cas))
    assert from_store.returncode == 0, from_store.stderr


def test_a_backup_of_the_attackers_cas_is_refused_by_recover(world: World) -> None:
    refused = world.recover("--backup", str(world.forged))
    assert refused.returncode != 0
    assert "not signed by the pinned CA: it was written by another CAS" in refused.stderr
    assert not world.out.exists()


def test_recover_requires_the_pinned_ca(world: World) -> None:
    unpinned = sconify(
        "cas", "recover", "--recovery-key", str(world.private), "--backup", str(world.forged), "--out",
        str(world.out),
    )  # fmt: skip
    assert unpinned.returncode != 0 and "--cas-ca" in unpinned.stderr
    assert not world.out.exists()


def test_the_attackers_backup_with_the_owners_origin_copied_in_is_refused(world: World) -> None:
    """The origin statement is public (every backup's header has it): copied into the attacker's store,
    it names the owner's master key, which the attacker's sealed copy does not yield."""
    ((statement,),) = query(world.owner_cas.database, "SELECT value FROM meta WHERE name = 'origin'")
    query(world.attacker_cas.database, "UPDATE meta SET value = ? WHERE name = 'origin'", (statement,))
    forged = world.forged.with_name("forged-with-origin.backup")
    backup(world.attacker_cas, forged)
    refused = world.recover("--backup", str(forged))
    assert refused.returncode != 0
    assert "the master key it yields is not the one the pinned CA vouched for" in refused.stderr


def test_verify_and_restore_refuse_a_backup_of_another_cas(world: World) -> None:
    cas = world.owner_cas
    before = query(cas.database, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    for command in (
        ["verify", str(world.forged), "--data-dir", str(cas.data_dir)],
        [
            "restore",
            str(world.forged),
            "--data-dir",
            str(cas.data_dir),
            *store_option(cas),
            "--allow-rollback",
        ],
    ):
        unpinned = sconify("cas", "backup", *command)
        assert unpinned.returncode != 0 and "a backup of another CAS" in unpinned.stderr
        pinned = sconify("cas", "backup", *command, "--cas-ca", str(world.pinned))
        assert pinned.returncode != 0 and "not a backup of the CAS whose CA you pinned" in pinned.stderr
    assert query(cas.database, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") == before
    verified = sconify(
        "cas",
        "backup",
        "verify",
        str(world.genuine),
        "--data-dir",
        str(cas.data_dir),
        "--cas-ca",
        str(world.pinned),
    )
    assert verified.returncode == 0, verified.stderr


def test_a_sealed_copy_replaced_by_the_database_administrator_is_caught(world: World) -> None:
    """The attacker's sealed copy (to the same recovery key) put in the owner's store: the audit check and
    the CAS's start name it, and recovery from that store refuses the key it would yield."""
    ((name, forged),) = query(
        world.attacker_cas.database, "SELECT name, value FROM meta WHERE name LIKE ?", ("recovery:%",)
    )
    query(world.owner_cas.database, "UPDATE meta SET value = ? WHERE name = ?", (forged, name))
    checked = audit_verify(world.owner_cas)
    assert checked.returncode != 0
    assert "its sealed copy of the master key was not written by this CAS" in checked.stderr
    with pytest.raises(RuntimeError, match="its sealed copy of the master key was not written by this CAS"):
        world.owner_cas.start()
    refused = world.recover("--data-dir", str(world.owner_cas.data_dir), *store_option(world.owner_cas))
    assert refused.returncode != 0
    assert "the master key it yields is not the one the pinned CA vouched for" in refused.stderr


def test_a_sealed_copy_removed_is_caught(world: World) -> None:
    query(world.owner_cas.database, "DELETE FROM meta WHERE name LIKE ?", ("recovery:%",))
    checked = audit_verify(world.owner_cas)
    assert checked.returncode != 0
    assert "the audit log has its sealed copy, the database has none" in checked.stderr
