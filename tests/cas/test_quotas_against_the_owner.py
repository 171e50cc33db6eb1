"""Quotas an outsider cannot turn against the owner (issue #31): self-made identities fill only their own
pool, never the room of identities the operator granted; and an update that does not grow its session —
above all one that revokes a measurement — is never refused for a full CAS."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.clients.identity import certificate_key_hash
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.quotas import Quotas
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import namespace_session, render_session
from tests.support.cas import RunningCas, identity, second_upload_refused
from tests.support.policies import MEASUREMENT, counter, large_namespace, namespace, text
from tests.support.postgres import store_location
from tests.support.processes import sconify_executable

OWNER = "0a" * 32
CONFIG_ID = "ns-1/python-session/python-service"
REVOKED = "c0" * 32  # (not the FSPF key's bytes: test_durability looks for those on disk)
INSECURE = {"kind": "insecure-software-evidence"}


def accepting(*measurements: str, predecessor: str | None = None) -> bytes:
    session = counter(predecessor=predecessor)
    service = dataclasses.replace(session.services[0], mrenclaves=measurements)
    return text(dataclasses.replace(session, services=(service,))).encode()


def attests(cas: CasService, measurement: str) -> bool:
    nonce = cas.nonce(CONFIG_ID)["nonce"]
    try:
        cas.attest(CONFIG_ID, measurement, nonce, b"\x01" * 32, INSECURE)
    except CasError as refusal:
        assert refusal.status == 403
        return False
    return True


def fill(cas: CasService, store: Store, prefix: str) -> int:
    """Self-made identities upload namespaces until the CAS refuses them; returns how many it took."""
    for index in range(10_000):
        try:
            cas.post_session(
                render_session(namespace_session(f"{prefix}-{index}")).encode(), f"{index + 1:064x}"
            )
        except CasError as refusal:
            assert refusal.status == 403 and "quota" in refusal.message
            return index
    raise AssertionError("the CAS never filled")


def test_self_made_identities_fill_only_their_pool(tmp_path: Path) -> None:
    store = Store(store_location(tmp_path), b"\x07" * 32)
    one = len(render_session(namespace_session("ns-x-0000")).encode()) + 64
    cas = CasService(
        store, quotas=Quotas(stored_bytes=40 * one, self_made_bytes=10 * one, granted=frozenset({OWNER}))
    )
    assert fill(cas, store, "ns-x") >= 5
    assert store.stored_bytes() <= 10 * one  # the pool's bound, and no more
    # the granted owner still has the rest: a namespace, a service, and updates
    cas.post_session(namespace().encode(), OWNER)
    first = cas.post_session(accepting(MEASUREMENT, REVOKED), OWNER)
    cas.post_session(accepting(MEASUREMENT, predecessor=first), OWNER)
    assert not attests(cas, REVOKED)


def test_a_revocation_is_never_refused_for_a_full_cas(tmp_path: Path) -> None:
    """No grant at all (a CAS run with defaults): the owner shares the pool with every self-made identity,
    the attackers fill it — and the owner's revocation still goes through, without growing the store."""
    store = Store(store_location(tmp_path), b"\x07" * 32)
    owner = CasService(store)
    owner.post_session(namespace().encode(), OWNER)
    first = owner.post_session(accepting(MEASUREMENT, REVOKED), OWNER)
    second = owner.post_session(
        accepting(MEASUREMENT, REVOKED, predecessor=first).replace(b"/code", b"/data"), OWNER
    )
    bound = store.stored_bytes() + 3 * 1024
    cas = CasService(store, quotas=Quotas(stored_bytes=bound, self_made_bytes=bound))
    fill(cas, store, "ns-x")
    assert attests(cas, REVOKED)
    full = store.stored_bytes()

    growing = accepting(MEASUREMENT, REVOKED, "ee" * 32, predecessor=second)
    with pytest.raises(CasError, match="quota: this CAS holds at most"):
        cas.post_session(growing, OWNER)
    revocation = cas.post_session(accepting(MEASUREMENT, predecessor=second), OWNER)
    assert not attests(cas, REVOKED) and attests(cas, MEASUREMENT)
    assert store.stored_bytes() <= full  # the earlier versions made the room
    assert store.version("ns-1/python-session", first) is None
    assert store.active("ns-1/python-session").hash == revocation  # type: ignore[union-attr]
    updated = [e for e in store.audit_entries() if e["event"] == "session.updated"][-1]
    assert updated["hash"] == revocation and updated["pruned"] == 2
    assert store.verify_audit()


def test_grants_and_the_pool_are_options_of_cas_serve(tmp_path: Path) -> None:
    owner = identity(tmp_path, "owner")
    owner_hash = certificate_key_hash(owner.certificate.read_text())
    cas = RunningCas(
        tmp_path / "cas", options=["--self-made-mib", "1", "--grant-identity", owner_hash]
    ).start()
    try:
        refused = second_upload_refused(cas, tmp_path)
        assert refused.status == 403 and "--grant-identity" in refused.message
        with cas.client(owner) as client:
            client.post_session(large_namespace("ns-owner"))
    finally:
        cas.stop()


def test_a_grant_that_is_no_key_hash_is_refused_by_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sconify_executable(),
            "cas",
            "serve",
            "--data-dir",
            str(tmp_path / "cas"),
            "--grant-identity",
            "owner",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "--grant-identity: 'owner': expected an identity's key hash" in result.stderr
    assert not (tmp_path / "cas").exists()
