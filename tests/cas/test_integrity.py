"""Someone who can write the CAS's database but has no master key: every edit that would let a revoked
policy, an older volume state or a shortened audit log pass is refused by name, at start and on read — on
both stores."""

from __future__ import annotations

import dataclasses

import pytest

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.fspf import AnchorState
from pulumi_sconify.engine.policy import render_session
from pulumi_sconify.engine.runtime.cas import VolumeAnchor
from tests.support.cas import RunningCas, audit_verify
from tests.support.policies import MEASUREMENT, counter, namespace, text
from tests.support.postgres import query

REVOKED = "cd" * 32
"""A measurement the first version of the policy accepts and the second revokes."""
SESSION = "ns-1/python-session"


def accepting(*measurements: str, predecessor: str | None = None) -> str:
    """The counter's policy accepting exactly ``measurements``."""
    session = counter(predecessor=predecessor)
    service = dataclasses.replace(session.services[0], mrenclaves=measurements)
    return render_session(dataclasses.replace(session, services=(service,)))


def refused_start(cas: RunningCas) -> str:
    """The reason the CAS gives for not starting (it must not start)."""
    with pytest.raises(RuntimeError) as failed:
        cas.start()
    return str(failed.value)


@pytest.fixture
def revoked(cas: RunningCas, owner: ClientIdentity) -> tuple[str, str]:
    """A session whose first version accepted :data:`REVOKED` and whose second does not; the CAS stopped.
    Returns the two versions' hashes."""
    with cas.client(owner) as client:
        client.post_session(namespace())
        first = client.post_session(accepting(MEASUREMENT, REVOKED))
        second = client.post_session(accepting(MEASUREMENT, predecessor=first))
    cas.runtime().attest()  # makes the volume (and the audit log has more after the session's versions)
    cas.stop()
    return first, second


def active_row(cas: RunningCas) -> tuple[str, str, int]:
    """The session's active row as the CAS wrote it (all of it that an older copy would hold)."""
    ((digest, mac, seq),) = query(
        cas.database, "SELECT hash, mac, seq FROM active_sessions WHERE name = ?", (SESSION,)
    )
    return digest, mac, seq


def test_a_session_pointed_back_at_a_revoked_policy_is_refused(
    cas: RunningCas, revoked: tuple[str, str]
) -> None:
    first, _ = revoked
    query(cas.database, "UPDATE active_sessions SET hash = ? WHERE name = ?", (first, SESSION))
    reason = refused_start(cas)
    assert f"session {SESSION}: its active version was not set by this CAS" in reason
    assert "changed behind the CAS's back" in reason


def test_an_old_row_put_back_with_its_own_valid_mac_is_refused(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    """The row from an older copy of the database carries a MAC the CAS wrote: the audit log's later
    entries still tell it from the current one."""
    with cas.client(owner) as client:
        client.post_session(namespace())
        first = client.post_session(accepting(MEASUREMENT, REVOKED))
        old_row = active_row(cas)
        client.post_session(accepting(MEASUREMENT, predecessor=first))
    cas.stop()
    query(
        cas.database,
        "UPDATE active_sessions SET hash = ?, mac = ?, seq = ? WHERE name = ?",
        (*old_row, SESSION),
    )
    assert f"session {SESSION}: the database's active version is not the audit log's latest" in refused_start(
        cas
    )


def test_a_volume_set_back_to_an_earlier_generation_is_refused(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    runtime = cas.runtime()
    runtime.attest()
    anchor = VolumeAnchor(runtime)
    tags = [bytes([n]) * 16 for n in range(1, 4)]
    state = None
    snapshots = []
    for generation, tag in enumerate(tags, start=1):
        new = AnchorState(generation, tag)
        anchor.compare_and_swap("V1", state, new)
        state = new
        snapshots.append(
            query(cas.database, "SELECT generation, tag, mac, seq FROM volumes WHERE name = 'V1'")[0]
        )
    cas.stop()

    generation, tag, mac, seq = snapshots[0]  # generation 1, exactly as the CAS once wrote it
    query(
        cas.database,
        "UPDATE volumes SET generation = ?, tag = ?, mac = ?, seq = ? WHERE name = 'V1'",
        (generation, tag, mac, seq),
    )
    reason = refused_start(cas)
    assert "volume V1 of session ns-1/python-session: the database has generation 1" in reason
    assert "the audit log's latest swap 3" in reason

    query(cas.database, "UPDATE volumes SET generation = 1, tag = ? WHERE name = 'V1'", (tags[0].hex(),))
    query(cas.database, "UPDATE volumes SET mac = ? WHERE name = 'V1'", ("00" * 32,))
    assert "volume V1 of session ns-1/python-session: its state was not set by this CAS" in refused_start(cas)


def test_removing_the_last_audit_entries_is_refused(cas: RunningCas, revoked: tuple[str, str]) -> None:
    ((last,),) = query(cas.database, "SELECT MAX(seq) FROM audit")
    query(cas.database, "DELETE FROM audit WHERE seq > ?", (last - 4,))  # the chain still links up
    result = audit_verify(cas)
    assert result.returncode == 1
    assert (
        f"the audit log ends at entry {last - 4} but was sealed at entry {last}: entries were removed"
        in result.stderr
    )
    assert "entries were removed" in refused_start(cas)


def test_removing_the_seal_too_is_refused(cas: RunningCas, revoked: tuple[str, str]) -> None:
    """Without its head the log would look like one from before seals existed: but it says it was sealed."""
    ((last,),) = query(cas.database, "SELECT MAX(seq) FROM audit")
    query(cas.database, "DELETE FROM audit WHERE seq > ?", (last - 4,))
    query(cas.database, "DELETE FROM meta WHERE name = 'audit_head'")
    assert "the audit log's seal was removed" in refused_start(cas)


def test_an_edit_while_the_cas_runs_is_refused_on_read(cas: RunningCas, owner: ClientIdentity) -> None:
    with cas.client(owner) as client:
        client.post_session(namespace())
        first = client.post_session(accepting(MEASUREMENT, REVOKED))
        client.post_session(accepting(MEASUREMENT, predecessor=first))
        query(cas.database, "UPDATE active_sessions SET hash = ? WHERE name = ?", (first, SESSION))
        with pytest.raises(CasError) as refused:
            client.read_session(SESSION)
        assert refused.value.status == 500 and "state does not verify" in refused.value.message
    with pytest.raises(CasError):
        cas.runtime(measurement=REVOKED).attest()  # the revoked measurement gets nothing either
    tampered = [line for line in cas.log_lines() if line.get("event") == "state_tampered"]
    assert tampered and f"session {SESSION}: its active version was not set by this CAS" in str(
        tampered[0]["reason"]
    )
