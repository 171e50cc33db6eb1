"""Refused attestations cannot grow the audit log at the attacker's pace: the first of each kind is written at
once, the rest counted, and a window writes at most ``2 * MAX_KEYS + 1`` entries whatever is sent."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings, strategies as st

from pulumi_sconify.engine.cas.clients.identity import ClientIdentity
from pulumi_sconify.engine.cas.server.refusals import WINDOW as REFUSAL_WINDOW, RefusalLog
from tests.support.cas import RunningCas
from tests.support.policies import RUNTIME_KEY, counter, namespace, text
from tests.support.postgres import query


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(key: tuple[str | None, str, str]) -> dict[str, Any]:
    return {"config_id": key[0], "evidence": key[1], "reason": key[2]}


def test_the_first_refusal_is_written_at_once_and_the_rest_as_a_count() -> None:
    clock, written = Clock(), list[dict[str, Any]]()
    log = RefusalLog(written.extend, clock, window=60.0, max_keys=4)
    key = ("ns/s/svc", "kubernetes", "measurement not permitted by the policy")
    for _ in range(1000):
        log.refused(key, entry(key))
    assert written == [entry(key)]
    log.flush()
    assert len(written) == 1  # the window is still open
    clock.now = 61.0
    log.flush()
    assert written[1] == {
        "config_id": "ns/s/svc",
        "evidence": "kubernetes",
        "reason": "measurement not permitted by the policy",
        "count": 999,
        "seconds": 61,
    }
    clock.now = 200.0
    log.flush()
    assert len(written) == 2  # nothing new: nothing to write


def test_keys_beyond_the_bound_are_counted_together() -> None:
    clock, written = Clock(), list[dict[str, Any]]()
    log = RefusalLog(written.extend, clock, window=60.0, max_keys=4)
    for index in range(10):
        key = (f"ns/s/svc{index}", "kubernetes", "no")
        log.refused(key, entry(key))
    assert len(written) == 4
    log.flush(force=True)
    assert written[4:] == [{"other_refusals": 6, "seconds": 0}]


@settings(max_examples=60, deadline=None)
@example(  # found by hypothesis: the last refusal's window ends where float sums fall short of 60.0
    [(0, "kubernetes", 0, pause) for pause in (21.110694217567836, 26.726867023621644, 6.147505734017861)]
    + [(0, "kubernetes", 0, pause) for pause in (14.187738444572613, 0.0)]
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # which configuration id (0: one that names no service)
            st.sampled_from(["kubernetes", "sev-snp", "unknown"]),
            st.integers(0, 5),  # which reason
            st.floats(0, 30),  # seconds since the previous refusal
        ),
        max_size=400,
    )
)
def test_a_window_never_writes_more_than_its_bound_and_every_refusal_is_counted(
    refusals: list[tuple[int, str, int, float]],
) -> None:
    max_keys = 8
    clock, batches = Clock(), []
    log = RefusalLog(
        lambda entries: batches.append((clock.now, entries)), clock, window=60.0, max_keys=max_keys
    )
    for which, kind, reason, pause in refusals:
        clock.now += pause
        key = (f"ns/s/svc{which}" if which else None, kind, f"reason {reason}")
        log.refused(key, {**entry(key), "count": 1})
    # Past the window: a clock advanced by exactly 60.0 may, in floats, end a hair short of it (hypothesis
    # found 68.13… + 60.0 - 68.13… < 60.0), and the window then rightly stays open.
    clock.now += 61.0
    log.flush()
    written = [details for _, entries in batches for details in entries]
    counted = sum(details.get("count", 0) + details.get("other_refusals", 0) for details in written)
    assert counted == len(refusals)
    windows: dict[int, int] = {}
    for moment, entries in batches:
        windows[int(moment // 60)] = windows.get(int(moment // 60), 0) + len(entries)
    # Windows start at a refusal, not on the minute: any 60 s hold at most two windows' entries.
    assert all(count <= 2 * (2 * max_keys + 1) for count in windows.values())


def test_thousands_of_refusals_from_outside_write_a_handful_of_entries(
    cas: RunningCas, owner: ClientIdentity
) -> None:
    """No credential: refusals naming configuration ids that name nothing, and a real service. The audit
    log gets one entry at once for each kind of refusal and one count per kind at shutdown; the database
    does not grow with what was sent (one entry per refusal grew it by ~300 bytes each)."""
    with cas.client(owner) as client:
        client.post_session(namespace())
        client.post_session(text(counter()))
    before = _audited(cas.database)
    size_before = _size(cas.database)
    refused = 0
    started = time.monotonic()
    with cas.attestation() as attestation:
        for index in range(1_000):
            for config_id in (f"ns-1/stranger-{index}/svc", "ns-1/python-session/python-service"):
                body = {
                    "config_id": config_id,
                    "measurement": hashlib.sha256(str(index).encode()).hexdigest(),
                    "nonce": "00" * 40,
                    "runtime_key": RUNTIME_KEY,
                    "evidence": {"kind": "insecure-software-evidence"},
                }
                response = attestation._http.post("/v1/attest", content=json.dumps(body).encode())
                assert response.status_code in (401, 429), response.text
                refused += response.status_code == 401  # a 429 is the rate limit's, counted apart
    # Two kinds of refusal: the first of each at once, then one count of each per minute (a slow machine
    # may take more than one) and at shutdown.
    windows = 1 + int((time.monotonic() - started) // REFUSAL_WINDOW)
    assert 2 <= len(_audited(cas.database)) - len(before) <= 4 * windows - 2
    cas.stop()
    new = [
        details for event, details in _audited(cas.database)[len(before) :] if event == "attestation.refused"
    ]
    assert 4 <= len(new) <= 4 * windows
    assert refused > 1000 and sum(details.get("count", 1) for details in new) == refused
    assert _size(cas.database) - size_before < 64 * 1024


def _audited(database: Path | str) -> list[tuple[str, dict[str, Any]]]:
    rows = query(database, "SELECT event, details FROM audit ORDER BY seq")
    return [(event, json.loads(details)) for event, details in rows]


def _size(database: Path | str) -> int:
    """What the audit log takes on disk."""
    if isinstance(database, str):
        return int(query(database, "SELECT pg_total_relation_size('audit')")[0][0])
    return sum(path.stat().st_size for path in database.parent.glob(database.name + "*"))
