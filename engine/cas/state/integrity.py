"""State that cannot be edited behind the CAS's back.

Someone who can write the database but does not hold the master key — a backup operator, a database
administrator, whoever gets the disk — must not be able to point a session back at an older policy, set a
volume back to an earlier generation, or drop audit entries, unnoticed. Three things see to it:

- **Row MACs.** Each active-session row (name, version, creator, lineage) and each volume row (session, name,
  generation, tag) carries an HMAC under a key derived from the master key, checked whenever the row is
  read: a value never written by the CAS is refused at once.
- **A sealed audit head.** The audit chain already binds every entry to the one before it; the store also
  keeps the MAC of the chain's last entry, updated in the same transaction as the entry. Removing entries
  from the end, which leaves a chain that verifies, no longer matches the seal.
- **Rows bound to their entry.** Each of those rows, and each stored policy version, is written together
  with the audit entry that records it (the store enforces it) and its MAC binds that entry's sequence
  number. So rows put back from an older copy — even with the log's tail and its seal put back too — are
  named, as long as any row written since is still there: a version, a volume, another session, each newer
  than the log's last entry. Only a rollback of *everything* written since passes, which is the whole
  database.
- **Replay at start.** The audit log records every change of state (``session.created``,
  ``session.updated``, ``session.deleted``, ``volume.created``, ``volume.swapped``). At start the store
  replays it and requires the rows to be exactly its result: a row put back from an older copy of the
  database — carrying its old, valid MAC — disagrees with the log's later entries and is named.

The master key's sealed copies for recovery keys (:mod:`.recovery`) carry MACs too, and the set of them must
be the one the log's ``recovery_key.added`` and ``removed`` entries replay to.

What this cannot catch is the *whole* database put back to an earlier moment (a disk snapshot): every
row, the log and its seal then agree with each other. Detecting that needs a witness outside the database:
:mod:`.anchor`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
BEFORE_THE_LOG = 0
"""The entry a row is bound to when the log never recorded what set it (written before it did)."""
STATE_EVENTS = frozenset(
    {
        "session.created",
        "session.updated",
        "session.deleted",
        "volume.created",
        "volume.swapped",
        "recovery_key.added",
        "recovery_key.removed",
    }
)


class StateKeys:
    """The MACs of rows and of the audit head, under keys derived from the master key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, label: str, *fields: object) -> str:
        record = json.dumps([label, *fields], separators=(",", ":"))
        return hmac.new(self._key, record.encode("utf-8"), hashlib.sha256).hexdigest()

    def session(
        self, name: str, digest: str, creator: str, lineage: str | None = None, seq: int | None = None
    ) -> str:
        if seq is None:  # a row from before rows were bound to their entry: its MAC as it was written
            if lineage is None:
                return self._mac("active-session", name, digest, creator)
            return self._mac("active-session", name, digest, creator, lineage)
        return self._mac("active-session/2", name, digest, creator, lineage, seq)

    def volume(
        self, session: str, name: str, generation: int, tag: str | None, seq: int | None = None
    ) -> str:
        if seq is None:
            return self._mac("volume", session, name, generation, tag)
        return self._mac("volume/2", session, name, generation, tag, seq)

    def version(self, name: str, digest: str, creator: str, seq: int) -> str:
        return self._mac("version", name, digest, creator, seq)

    def recovery(self, fingerprint: str, sealed: str) -> str:
        return self._mac("recovery-copy", fingerprint, sealed)

    def head(self, seq: int, digest: str) -> str:
        return self._mac("audit-head", seq, digest)

    @staticmethod
    def matches(expected: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(expected, given)


@dataclass
class Replayed:
    """The state the audit log says the CAS is in."""

    sessions: dict[str, str] = field(default_factory=dict)
    """Active session name -> version hash."""
    volumes: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    """(session, volume) -> (generation, tag, or None where the log predates recording it)."""
    recovery_keys: set[str] = field(default_factory=set)
    """Fingerprints of the recovery keys the master key is sealed to."""
    entries: dict[tuple[str, ...], int] = field(default_factory=dict)
    """The audit entry that last set each row: ("session", name), ("volume", session, name) and
    ("version", name, hash) -> its sequence number."""


def replay(entries: Iterable[tuple[int, str, dict[str, Any]]]) -> Replayed:
    """The state after ``entries`` (sequence number, event, details), in order."""
    state = Replayed()
    for seq, event, details in entries:
        if event in ("session.created", "session.updated"):
            name = details["session"]
            if details.get("pruned"):  # its earlier versions went, to make room (quotas.py)
                for key in [key for key in state.entries if key[0] == "version" and key[1] == name]:
                    del state.entries[key]
            state.sessions[name] = details["hash"]
            state.entries[("session", name)] = seq
            state.entries[("version", name, details["hash"])] = seq
        elif event == "session.deleted":
            name = details["session"]
            state.sessions.pop(name, None)
            for key in [key for key in state.volumes if key[0] == name]:
                del state.volumes[key]
            for key in [key for key in state.entries if key[1] == name]:
                del state.entries[key]
        elif event == "volume.created":
            state.volumes[(details["session"], details["volume"])] = (0, None)
            state.entries[("volume", details["session"], details["volume"])] = seq
        elif event == "recovery_key.added":
            state.recovery_keys.add(details["fingerprint"])
        elif event == "recovery_key.removed":
            state.recovery_keys.discard(details["fingerprint"])
        elif event == "volume.swapped":
            state.volumes[(details["session"], details["volume"])] = (
                int(details["generation"]),
                details.get("tag"),
            )
            state.entries[("volume", details["session"], details["volume"])] = seq
    return state


def entry_differences(replayed: Replayed, bound: dict[tuple[str, ...], int], head: int) -> list[str]:
    """How rows bound to an audit entry (``bound``: row -> its entry) differ from the log, one sentence
    each: a row newer than the log's last entry (the log was cut back), or one the log says another entry
    set (put back from an older copy)."""
    found = []
    for key, seq in sorted(bound.items()):
        what = {
            "session": "session {1}",
            "volume": "volume {2} of session {1}",
            "version": "a version of {1}",
        }
        name = what[key[0]].format(*key)
        if seq > head:
            found.append(
                f"{name}: written at audit entry {seq}, after the log's last entry {head} "
                "(the log was cut back)"
            )
        elif replayed.entries.get(key, BEFORE_THE_LOG) != seq:
            found.append(f"{name}: written at audit entry {seq}, which the log does not say set it")
    return found


def differences(
    replayed: Replayed,
    sessions: dict[str, str],
    volumes: dict[tuple[str, str], tuple[int, str | None]],
    recovery_keys: set[str],
) -> list[str]:
    """How the rows differ from the replayed state, one sentence each (empty: they agree)."""
    found: list[str] = [
        f"recovery key {name[:16]}: "
        + (
            "the audit log has its sealed copy, the database has none"
            if name in replayed.recovery_keys
            else "a sealed copy in the database the audit log never added"
        )
        for name in sorted(replayed.recovery_keys ^ recovery_keys)
    ]
    for name in sorted(replayed.sessions.keys() | sessions.keys()):
        logged, stored = replayed.sessions.get(name), sessions.get(name)
        if stored is None:
            found.append(f"session {name}: the audit log has it active, the database has no such row")
        elif logged is None:
            found.append(f"session {name}: active in the database, but not according to the audit log")
        elif logged != stored:
            found.append(f"session {name}: the database's active version is not the audit log's latest")
    for key in sorted(replayed.volumes.keys() | volumes.keys()):
        name = f"volume {key[1]} of session {key[0]}"
        logged_state, stored_state = replayed.volumes.get(key), volumes.get(key)
        if stored_state is None:
            found.append(f"{name}: the audit log has it, the database has no such row")
        elif logged_state is None:
            if stored_state[0] != 0:  # a volume made before volume.created was logged starts at 0
                found.append(f"{name}: at generation {stored_state[0]} with no swap in the audit log")
        elif logged_state[0] != stored_state[0] or logged_state[1] not in (None, stored_state[1]):
            found.append(
                f"{name}: the database has generation {stored_state[0]}, the audit log's latest swap "
                f"{logged_state[0]}"
            )
    return found
