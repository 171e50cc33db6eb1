"""What one identity or one address can take of the CAS: sessions and bytes per identity, requests per
second per client — each refused by name, the refusals audited in aggregate."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulumi_sconify.engine.cas.server.ratelimit import RateLimiter
from pulumi_sconify.engine.cas.server.service import CasService
from pulumi_sconify.engine.cas.state.quotas import Quotas
from pulumi_sconify.engine.cas.state.store import Store
from pulumi_sconify.engine.errors import CasError
from pulumi_sconify.engine.policy import namespace_session, render_session
from tests.support.cas import RunningCas, identity, second_upload_refused
from tests.support.postgres import query, store_location

OWNER = "0a" * 32


def namespace(name: str) -> bytes:
    return render_session(namespace_session(name)).encode()


def test_an_identity_owns_a_bounded_number_of_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pulumi_sconify.engine.cas.state.quotas.SESSIONS_PER_IDENTITY", 3)
    cas = CasService(Store(store_location(tmp_path), b"\x07" * 32))
    for index in range(3):
        cas.post_session(namespace(f"ns-{index}"), OWNER)
    with pytest.raises(CasError, match="quota: an identity may own 3 sessions") as refused:
        cas.post_session(namespace("ns-3"), OWNER)
    assert refused.value.status == 403
    cas.post_session(namespace("ns-3"), "0b" * 32)  # another identity has its own quota


def test_an_identity_holds_a_bounded_number_of_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "pulumi_sconify.engine.cas.state.quotas.BYTES_PER_IDENTITY", 3 * len(namespace("ns-0"))
    )
    cas = CasService(Store(store_location(tmp_path), b"\x07" * 32))
    cas.post_session(namespace("ns-0"), OWNER)
    cas.post_session(namespace("ns-1"), OWNER)
    with pytest.raises(CasError, match="quota: the sessions of one identity may hold"):
        cas.post_session(namespace("ns-2"), OWNER)


def test_many_identities_together_cannot_pass_the_cas_wide_bound(tmp_path: Path) -> None:
    """Identities cost nothing to make: a thousand of them, each far inside its own quota, still find
    the CAS full at its bound — and nothing of a refused upload is stored."""
    store = Store(store_location(tmp_path), b"\x07" * 32)
    for index in range(5):
        CasService(store).post_session(namespace(f"ns-{index:04}"), f"{index:064x}")
    bound = store.stored_bytes()  # five sessions' worth, as stored (encrypted)
    cas = CasService(store, quotas=Quotas(stored_bytes=bound))
    audited = len(store.audit_entries())
    for index in range(5, 1000):
        with pytest.raises(CasError, match="quota: this CAS holds at most 0 MiB of policies, and it is full"):
            cas.post_session(namespace(f"ns-{index:04}"), f"{index:064x}")
    assert store.stored_bytes() == bound
    assert len(store.audit_entries()) == audited


def test_the_cas_wide_bound_is_an_option_of_cas_serve(tmp_path: Path) -> None:
    cas = RunningCas(tmp_path / "cas", options=["--max-stored-mib", "1"]).start()
    try:
        refused = second_upload_refused(cas, tmp_path)
        assert refused.status == 403 and "at most 1 MiB of policies" in refused.message
    finally:
        cas.stop()


def test_the_rate_limiter_refuses_beyond_the_burst_and_reports_per_minute() -> None:
    now = [0.0]
    reports: list[tuple[str, int, float]] = []
    limiter = RateLimiter(2, 4, lambda *report: reports.append(report), clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(6)] == [True] * 4 + [False] * 2
    assert limiter.allow("b")  # each client its own bucket
    now[0] = 1.0
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]  # two tokens a second
    assert reports == []
    now[0] = 61.0
    assert limiter.allow("a")
    assert reports == [("a", 3, 61.0)]  # one report for the minute's three refusals
    assert RateLimiter(0, 0, lambda *_: None).allow("anyone")  # 0: no limit


def test_a_client_beyond_its_rate_gets_429_and_one_audit_entry(tmp_path: Path) -> None:
    cas = RunningCas(tmp_path / "cas", options=["--client-rate", "2"]).start()
    try:
        owner = identity(tmp_path, "owner")
        statuses = []
        with cas.client(owner) as client:
            for _ in range(12):
                try:
                    client.public_values("ns-none")
                except CasError as error:
                    statuses.append(error.status)
        assert 429 in statuses and set(statuses) <= {403, 404, 429}
        with cas.attestation() as attestation:  # health is never limited
            assert all(attestation.request("GET", "/health") == {"status": "ok"} for _ in range(20))
    finally:
        cas.stop()
    rows = [row[0] for row in query(cas.database, "SELECT details FROM audit WHERE event = 'rate_limited'")]
    assert len(rows) == 1 and '"api":"client"' in rows[0]
