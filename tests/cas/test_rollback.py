"""A database administrator who puts back rows from an older copy of the CAS's database (issue #31), on both
stores: some row sets — the audit log's tail, its seal, the session's and the volume's rows, all as the CAS
once wrote them — are named at start and the CAS does not serve; the whole database put back passes only
where no anchor is configured, and with one (``--anchor``) it is refused too; the running CAS refuses a log
that went back under it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.fspf import AnchorState
from pulumi_sconify.engine.policy import render_session
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas, audit_verify, backup
from tests.support.policies import MEASUREMENT, counter, namespace
from tests.support.postgres import query, store_option
from tests.support.processes import sconify_output

REVOKED = "c0" * 32  # (not the FSPF key's bytes: test_durability looks for those on disk)
SESSION = "ns-1/python-session"
TABLES = (
    "session_versions",
    "active_sessions",
    "generated_secrets",
    "volumes",
    "audit",
    "meta",
    "used_nonces",
)


def accepting(*measurements: str, predecessor: str | None = None) -> str:
    session = counter(predecessor=predecessor)
    service = dataclasses.replace(session.services[0], mrenclaves=measurements)
    return render_session(dataclasses.replace(session, services=(service,)))


def tag(generation: int) -> bytes:
    return bytes([generation]) * 16


def snapshot(database: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the CAS's database, as a copy of it taken now would hold them."""
    return {table: query(database, f"SELECT * FROM {table}") for table in TABLES}


def put_back(database: Path | str, copy: dict[str, list[tuple[Any, ...]]], tables: tuple[str, ...]) -> None:
    """Replace ``tables`` with what ``copy`` holds of them."""
    for table in tables:
        query(database, f"DELETE FROM {table}")
        for row in copy[table]:
            marks = ", ".join("?" for _ in row)
            query(database, f"INSERT INTO {table} VALUES ({marks})", row)


class Revoked:
    """The counter's session accepting REVOKED with its volume at generation 1 — copied then — and later
    an update that revokes it and two more commits of the volume."""

    def __init__(self, cas: RunningCas, owner: ClientIdentity) -> None:
        with cas.client(owner) as client:
            client.post_session(namespace())
            first = client.post_session(accepting(MEASUREMENT, REVOKED))
        runtime = cas.runtime()
        runtime.attest()
        anchor = VolumeAnchor(runtime)
        anchor.compare_and_swap("V1", None, AnchorState(1, tag(1)))
        self.copy = snapshot(cas.database)
        with cas.client(owner) as client:
            client.post_session(accepting(MEASUREMENT, predecessor=first))
        for generation in (2, 3):
            anchor.compare_and_swap(
                "V1",
                AnchorState(generation - 1, tag(generation - 1)),
                AnchorState(generation, tag(generation)),
            )
        cas.stop()


def refused_start(cas: RunningCas) -> str:
    with pytest.raises(RuntimeError) as failed:
        cas.start()
    return str(failed.value)


def revoked_measurement_attests(cas: RunningCas) -> bool:
    try:
        cas.runtime(measurement=REVOKED).attest()
    except CasError:
        return False
    return True


def test_four_row_sets_put_back_are_named(cas: RunningCas, owner: ClientIdentity) -> None:
    """The finding: the audit tail, the old seal (both in ``audit``/``meta``), the session's row and the
    volume's row from the copy. The revoking version, written since, is still there, bound to an entry the
    log no longer has."""
    world = Revoked(cas, owner)
    put_back(cas.database, world.copy, ("audit", "active_sessions", "volumes"))
    ((head,),) = [row[1:2] for row in world.copy["meta"] if row[0] == "audit_head"]
    query(cas.database, "UPDATE meta SET value = ? WHERE name = 'audit_head'", (head,))
    reason = refused_start(cas)
    assert f"a version of {SESSION}: written at audit entry" in reason and "the log was cut back" in reason
    verify = audit_verify(cas)
    assert verify.returncode != 0 and "the log was cut back" in verify.stderr


def test_a_row_unbound_to_dodge_the_check_is_refused(cas: RunningCas, owner: ClientIdentity) -> None:
    """The same, with the newer version's entry and MAC removed, as if written before rows were bound."""
    world = Revoked(cas, owner)
    put_back(cas.database, world.copy, ("audit", "active_sessions", "volumes"))
    ((head,),) = [row[1:2] for row in world.copy["meta"] if row[0] == "audit_head"]
    query(cas.database, "UPDATE meta SET value = ? WHERE name = 'audit_head'", (head,))
    query(cas.database, "UPDATE session_versions SET seq = NULL, mac = NULL")
    assert "bound to no audit entry" in refused_start(cas)


def test_the_whole_database_put_back_passes_without_an_anchor(cas: RunningCas, owner: ClientIdentity) -> None:
    """The residual, shown so that the docs' claim is checked: nothing inside the database can tell."""
    world = Revoked(cas, owner)
    put_back(cas.database, world.copy, TABLES)
    cas.start()
    try:
        assert revoked_measurement_attests(cas)
    finally:
        cas.stop()


def test_an_anchor_refuses_the_whole_database_put_back(tmp_path: Path, owner: ClientIdentity) -> None:
    anchor = tmp_path / "elsewhere" / "anchor.db"
    anchor.parent.mkdir()
    cas = RunningCas(tmp_path / "cas", options=["--anchor", str(anchor)]).start()
    world = Revoked(cas, owner)
    put_back(cas.database, world.copy, TABLES)
    reason = refused_start(cas)
    assert "the database is older than its anchor" in reason and "rolled back as a whole" in reason
    # Nor can the anchor be set back by someone without the master key.
    query(anchor, "UPDATE anchor SET seq = 1")
    assert "the anchored audit head was not written by this CAS" in refused_start(cas)


def test_a_restore_allowed_to_roll_back_moves_the_anchor_back(tmp_path: Path, owner: ClientIdentity) -> None:
    anchor = tmp_path / "anchor.db"
    cas = RunningCas(tmp_path / "cas", options=["--anchor", str(anchor)]).start()
    with cas.client(owner) as client:
        client.post_session(namespace())
    backup(cas, tmp_path / "b")
    with cas.client(owner) as client:
        client.post_session(render_session(counter()))
    cas.stop()
    restore = (
        "cas", "backup", "restore", str(tmp_path / "b"), "--data-dir", str(cas.data_dir), *store_option(cas),
        "--allow-rollback",
    )  # fmt: skip
    sconify_output(*restore)  # without the anchor: it stays ahead, and the CAS says what to do
    assert "if a backup was restored on purpose, restore it with --anchor" in refused_start(cas)
    sconify_output(*restore, "--anchor", str(anchor))
    cas.start()  # the anchor went back with the allowed restore, and the log says so
    cas.stop()
    events = [row[0] for row in query(cas.database, "SELECT event FROM audit ORDER BY seq")]
    assert events.count("store.restored") == 1  # (the first restore's entry went with the second)


def test_a_log_that_goes_back_under_a_running_cas_is_refused(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        copy = snapshot(cas.database)
        client.post_session(accepting(MEASUREMENT, REVOKED))
        put_back(cas.database, copy, TABLES)  # the whole database, under the running CAS
        with pytest.raises(CasError) as refused:
            client.post_session(namespace("ns-2"))
    assert refused.value.status == 500
    assert any(
        line.get("event") == "state_tampered" and "went back" in str(line.get("reason"))
        for line in cas.log_lines()
    )
