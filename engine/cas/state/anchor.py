"""A witness outside the CAS's database: the audit head kept in a second store, so that a rollback of the
whole database is seen.

**The threat.** Whoever can put the CAS's database back to an earlier moment as a whole (a disk snapshot,
PostgreSQL's point-in-time restore, a copy of the SQLite file) gets a state in which every row, the audit
log and its seal agree: the row MACs and the replay (:mod:`.integrity`) see nothing, and a revoked
measurement or an older volume generation is current again. Nothing inside the database can tell.

**The bound.** With ``cas serve --anchor LOCATION`` — a SQLite file or a PostgreSQL database the operator
chooses, kept apart from the CAS's own (another volume, another server, other administrators) — the CAS
writes its audit head there after every durable transaction, and only ever forward. At start the database
must hold that entry, with that hash: a database older than its anchor is refused, naming both entries. The
anchor's row carries a MAC under a key derived from the master key, so it cannot be forged either; rolling
the database back now needs rolling back the anchor too, in step. Without an anchor that remains possible
(docs/cas.md says what to do about it).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Protocol

from ...errors import EXIT_USAGE, SconifyError
from .database import DatabaseError, open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchor (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
)
"""


class AnchorError(SconifyError):
    """The anchor cannot be used, or the database is older than it."""

    exit_code = EXIT_USAGE


class AuditLog(Protocol):
    """What the anchor checks of the CAS's store."""

    def audit_head(self) -> tuple[int, str]: ...

    def audit_hash_at(self, seq: int) -> str | None: ...


class Anchor:
    """The audit head of one CAS (named by a key derived from its master key) in a store of its own."""

    def __init__(self, location: Path | str, key: bytes) -> None:
        self._key = key
        self._name = hmac.new(key, b"anchor name", hashlib.sha256).hexdigest()[:32]
        try:
            self._db = open_database(location)
            self._db.script(_SCHEMA)
        except DatabaseError as error:
            raise AnchorError(f"the anchor: {error}") from None
        self.name = self._db.name
        self._anchored = 0
        """The last sequence number this process anchored: nothing to write until the log passes it."""

    def _mac(self, seq: int, digest: str) -> str:
        return hmac.new(
            self._key, f"anchor\x00{self._name}\x00{seq}\x00{digest}".encode(), hashlib.sha256
        ).hexdigest()

    def read(self) -> tuple[int, str] | None:
        """The anchored head, or None before the first; raises :class:`AnchorError` for a forged one."""
        row = self._db.execute("SELECT seq, hash, mac FROM anchor WHERE name = ?", (self._name,)).fetchone()
        if row is None:
            return None
        seq, digest, mac = int(row[0]), str(row[1]), str(row[2])
        if not hmac.compare_digest(self._mac(seq, digest), mac):
            raise AnchorError(f"{self.name}: the anchored audit head was not written by this CAS")
        return seq, digest

    def check(self, log: AuditLog) -> None:
        """Refuse a database that does not hold the anchored audit entry: it was rolled back."""
        anchored = self.read()
        if anchored is None:
            return
        seq, digest = anchored
        head, _ = log.audit_head()
        if seq > head or log.audit_hash_at(seq) != digest:
            raise AnchorError(
                f"the database is older than its anchor ({self.name}): the anchor holds audit entry {seq}, "
                f"the database ends at entry {head} and does not hold it as anchored. The database was "
                "rolled back as a whole; if a backup was restored on purpose, restore it with --anchor"
            )

    def advance(self, seq: int, digest: str) -> None:
        """Keep ``(seq, digest)`` as the anchored head, unless a later one is there already."""
        if seq <= self._anchored:
            return
        with self._db.transaction(durable=True):
            self._db.execute(
                "INSERT INTO anchor (name, seq, hash, mac) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac "
                "WHERE anchor.seq < excluded.seq",
                (self._name, seq, digest, self._mac(seq, digest)),
            )
        self._anchored = seq

    def reset(self, seq: int, digest: str) -> None:
        """Anchor ``(seq, digest)`` even if it is earlier: a restore the operator allowed (audited there)."""
        with self._db.transaction(durable=True):
            self._db.execute("DELETE FROM anchor WHERE name = ?", (self._name,))
        self._anchored = 0
        self.advance(seq, digest)

    def close(self) -> None:
        self._db.close()
