"""The CAS's durable state, in SQLite or PostgreSQL (:mod:`.database`: one behaviour on both).

Every change that the API acknowledges (a 201 for a session, a 200 for a volume tag swap) is committed
— and fsynced — before the answer is sent, so it survives ``kill -9``. Everything secret is encrypted
at rest under the master key (AES-256-GCM, bound to the row it belongs to): session texts (they hold
FSPF keys), generated secret values, volume keys.

The audit log lives in the same database and is written in the same transaction as the change it
records. Each entry carries the HMAC (keyed from the master key) of itself and the previous entry's,
so editing, deleting or reordering any entry breaks the chain (:meth:`Store.verify_audit`), and
without the master key the chain cannot be recomputed after an edit. The chain's head is sealed, the rows
that say which policy is active and where each volume stands carry MACs, and the rows must equal what the
log replays to (:mod:`.integrity`): state edited behind the CAS's back is refused at start and on read.
Used nonces, the nonce epoch, the recovery keys' sealed copies of the master key (:mod:`.recovery`) and
the audit head live here too; a backup (:mod:`.backup`) holds all but the used nonces.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import EXIT_INVALID, EXIT_USAGE, SconifyError
from ..clients.identity import write_private
from .anchor import Anchor
from .database import DatabaseError, open_database
from .integrity import (
    BEFORE_THE_LOG,
    STATE_EVENTS,
    Replayed,
    StateKeys,
    differences,
    entry_differences,
    replay,
)

MASTER_KEY_ENV = "SCONIFY_CAS_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
_AUDIT_GENESIS = "0" * 64
SEALED_EVENT = "store.sealed"
RECOVERY_SEALED_EVENT = "recovery_keys.sealed"
"""Logged once, when the sealed recovery copies got their MACs: from then on one without is refused."""
ORIGIN_EVENT = "store.origin"
ROWS_BOUND_EVENT = "store.rows_bound"
"""Logged once, when rows written before rows were bound to their audit entry were bound: from then on a
row bound to none is refused."""
_EDITED = ": the database was changed behind the CAS's back"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session_versions (
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    predecessor TEXT,
    body BLOB NOT NULL,
    creator TEXT NOT NULL,
    created REAL NOT NULL,
    view BLOB,
    seq INTEGER,
    mac TEXT,
    PRIMARY KEY (name, hash)
);
CREATE TABLE IF NOT EXISTS active_sessions (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    creator TEXT NOT NULL,
    mac TEXT,
    lineage TEXT,
    seq INTEGER
);
CREATE TABLE IF NOT EXISTS generated_secrets (
    session TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (session, name)
);
CREATE TABLE IF NOT EXISTS volumes (
    session TEXT NOT NULL,
    name TEXT NOT NULL,
    key BLOB NOT NULL,
    generation INTEGER NOT NULL,
    tag TEXT,
    mac TEXT,
    seq INTEGER,
    PRIMARY KEY (session, name)
);
CREATE INDEX IF NOT EXISTS session_versions_by_creator ON session_versions (creator);
CREATE INDEX IF NOT EXISTS active_sessions_by_creator ON active_sessions (creator);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    previous TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS used_nonces (
    nonce TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS used_nonces_by_expiry ON used_nonces (expires);
"""
_ADDED_COLUMNS = (
    ("active_sessions", "mac", "TEXT"),
    ("active_sessions", "lineage", "TEXT"),
    ("volumes", "mac", "TEXT"),
    ("session_versions", "view", "BLOB"),
    ("session_versions", "seq", "INTEGER"),
    ("session_versions", "mac", "TEXT"),
    ("active_sessions", "seq", "INTEGER"),
    ("volumes", "seq", "INTEGER"),
)
"""Columns a database made before they existed gets at start (MACs then sealed: see _check_integrity; a
missing view is derived when first needed: see models.py)."""
BACKUP_TABLES: dict[str, tuple[str, ...]] = {
    "session_versions": ("name", "hash", "predecessor", "body", "creator", "created", "view", "seq", "mac"),
    "active_sessions": ("name", "hash", "creator", "mac", "lineage", "seq"),
    "generated_secrets": ("session", "name", "kind", "value"),
    "volumes": ("session", "name", "key", "generation", "tag", "mac", "seq"),
    "audit": ("seq", "time", "event", "details", "previous", "hash"),
    "meta": ("name", "value"),
}
"""What a backup holds: everything but used nonces."""
RESTORED_EVENT = "store.restored"


class StoreError(SconifyError):
    """The store cannot be used: a wrong master key, or a database that does not verify."""

    exit_code = EXIT_USAGE


class AuditError(StoreError):
    """The audit chain is broken at an entry."""

    exit_code = EXIT_INVALID


class TamperedError(StoreError):
    """The database holds state the CAS did not write: it was edited behind the CAS's back."""

    exit_code = EXIT_INVALID


def read_recovery_material(location: Path | str) -> tuple[dict[str, str], str | None]:
    """The sealed copies of the master key in a store (fingerprint -> copy) and the CAS's signed origin
    (:mod:`.recovery`), read without the master key (to recover it)."""
    if isinstance(location, Path) and not location.is_file():
        raise StoreError(f"{location}: no CAS database here")
    database = open_database(location)
    try:
        rows = database.execute(
            "SELECT name, value FROM meta WHERE name LIKE ? OR name = 'origin'", ("recovery:%",)
        ).fetchall()
    except (sqlite3.Error, DatabaseError):
        raise StoreError(f"{database.name}: holds no CAS state") from None
    finally:
        database.close()
    values = dict(rows)
    return recovery_copies_of(values), values.get("origin")


def recovery_copies_of(meta: dict[str, str]) -> dict[str, str]:
    """The sealed copies among a store's meta rows, as :func:`~.recovery.seal_master_key` made them."""
    return {
        name.removeprefix("recovery:"): _without_mac(value)[0]
        for name, value in meta.items()
        if name.startswith("recovery:")
    }


def _without_mac(stored: str) -> tuple[str, str | None]:
    """A sealed copy as stored (with its MAC) -> (the copy as sealed, its MAC)."""
    try:
        fields = json.loads(stored)
    except ValueError:
        return stored, None
    if not isinstance(fields, dict):
        return stored, None
    mac = fields.pop("mac", None)
    return json.dumps(fields, sort_keys=True), mac if isinstance(mac, str) else None


def load_master_key(data_dir: Path, key_file: Path | None = None) -> bytes:
    """The master key: from ``$SCONIFY_CAS_MASTER_KEY`` (64 hex), ``key_file``, or ``DIR/master.key``.

    The last is generated on first start (32 bytes from the OS CSPRNG, mode 600).
    """
    text = os.environ.get(MASTER_KEY_ENV)
    source = f"${MASTER_KEY_ENV}"
    if text is None:
        path = key_file or data_dir / MASTER_KEY_FILE
        source = str(path)
        if not path.exists() and key_file is None:
            write_private(path, os.urandom(32).hex().encode() + b"\n")
        try:
            text = path.read_text()
        except OSError as error:
            raise StoreError(f"{path}: cannot read the master key ({error.strerror})") from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise StoreError(f"{source}: the master key must be 64 hex characters")
    return key


@dataclass(frozen=True)
class SessionVersion:
    name: str
    hash: str
    predecessor: str | None
    text: str
    creator: str


@dataclass(frozen=True)
class ActiveSession:
    name: str
    hash: str
    creator: str
    lineage: str | None = None
    """A random id made when the session was created, kept by its updates (None: created before lineages
    were kept)."""


@dataclass(frozen=True)
class VolumeState:
    key: bytes
    generation: int
    tag: bytes | None

    def __repr__(self) -> str:
        return f"VolumeState(generation={self.generation})"


class Store:
    """All durable CAS state. Methods that change state are meant to run inside :meth:`transaction`;
    closed on leaving a ``with`` block."""

    def __init__(self, location: Path | str, master_key: bytes, anchor: Path | str | None = None) -> None:
        """``location``: a SQLite file, or a ``postgresql://`` URL (:mod:`.database`). ``anchor``: another
        such, where the audit head is kept also, so that a whole-database rollback is seen
        (:mod:`.anchor`)."""
        self.location = location
        self._aead = AESGCM(master_key)
        # The audit chain is keyed: someone who can edit the database but lacks the master key cannot
        # recompute a consistent chain after an edit.
        self._audit_key = hashlib.sha256(b"sconify-cas-audit-v1\x00" + master_key).digest()
        self._derivation_key = hashlib.sha256(b"sconify-cas-derive-v1\x00" + master_key).digest()
        self._state = StateKeys(self.derived_key("state integrity"))
        self._lock = threading.RLock()
        self._pending: tuple[int, str] | None = None
        """The audit entry a row changed in this transaction awaits: (its sequence number, its event)."""
        self._high_water = 0
        """The last audit entry this process wrote: the log never goes back behind a running CAS."""
        self._anchor = Anchor(anchor, self.derived_key("anchor")) if anchor is not None else None
        self._db = open_database(location)
        self._db.script(_SCHEMA)
        self._add_columns()
        self._check_master_key()
        with self.transaction():
            self._check_integrity()
            if self._anchor is not None:
                self._anchor.check(self)

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose, derived from the master key (the same on every start)."""
        return hmac.new(self._derivation_key, purpose.encode(), hashlib.sha256).digest()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._anchor is not None:
                self._anchor.close()

    # -- encryption at rest -----------------------------------------------------------------------

    def _seal(self, data: bytes, *context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, "\x00".join(context).encode())

    def _open(self, blob: bytes, *context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], "\x00".join(context).encode())
        except InvalidTag:
            raise StoreError(
                "stored data does not decrypt: wrong master key, or the database was edited"
            ) from None

    def _check_master_key(self) -> None:
        row = self._db.execute("SELECT name, hash, body FROM session_versions LIMIT 1").fetchone()
        if row is not None:
            self._open(row[2], "session", row[0], row[1])

    # -- transactions -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One atomic change: committed when the block ends, else rolled back.

        A durable transaction is fsynced before the block returns. ``durable=False`` is for audit
        entries that acknowledge no change of state (attestation decisions): they are committed in
        order but reach the disk with the next durable transaction or checkpoint, so a crash may lose
        the last few of them — never a session, a secret, a volume key or a tag swap.
        """
        with self._lock:
            self._pending = None
            with self._db.transaction(durable):
                yield
                if self._pending is not None:  # a change of state with no entry recording it: a bug
                    raise StoreError(f"a change awaiting its audit entry ({self._pending[1]}) was not logged")
            if durable and self._anchor is not None:
                self._anchor.advance(*self.audit_head())

    # -- sessions ---------------------------------------------------------------------------------

    def active(self, name: str) -> ActiveSession | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, hash, creator, mac, lineage, seq FROM active_sessions WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        if not StateKeys.matches(self._state.session(row[0], row[1], row[2], row[4], row[5]), row[3]):
            raise TamperedError(f"session {name}: its active version was not set by this CAS{_EDITED}")
        return ActiveSession(row[0], row[1], row[2], row[4])

    def version(self, name: str, digest: str) -> SessionVersion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, hash, predecessor, body, creator FROM session_versions "
                "WHERE name = ? AND hash = ?",
                (name, digest),
            ).fetchone()
        if row is None:
            return None
        text = self._open(row[3], "session", row[0], row[1]).decode("utf-8")
        return SessionVersion(row[0], row[1], row[2], text, row[4])

    def version_view(self, name: str, digest: str) -> bytes | None:
        """The stored view of a version (:mod:`.models`); None for one stored before views were."""
        with self._lock:
            row = self._db.execute(
                "SELECT view FROM session_versions WHERE name = ? AND hash = ?", (name, digest)
            ).fetchone()
        return self._open(row[0], "view", name, digest) if row and row[0] is not None else None

    def put_view(self, name: str, digest: str, view: bytes) -> None:
        """Keep the view derived for a version stored before views were."""
        self._db.execute(
            "UPDATE session_versions SET view = ? WHERE name = ? AND hash = ? AND view IS NULL",
            (self._seal(view, "view", name, digest), name, digest),
        )

    def usage(self, creator: str) -> tuple[int, int]:
        """What sessions owned by ``creator`` hold: how many are active, and the bytes of all their stored
        versions."""
        with self._lock:
            (sessions,) = self._db.execute(
                "SELECT COUNT(*) FROM active_sessions WHERE creator = ?", (creator,)
            ).fetchone()
            (stored,) = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM session_versions WHERE creator = ?", (creator,)
            ).fetchone()
        return int(sessions), int(stored)

    def stored_bytes(self) -> int:
        """The bytes of every stored policy version, of every identity."""
        with self._lock:
            (stored,) = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM session_versions"
            ).fetchone()
        return int(stored)

    def put_version(
        self,
        name: str,
        digest: str,
        predecessor: str | None,
        text: str,
        creator: str,
        view: bytes,
        lineage: str | None,
        event: str,
    ) -> None:
        """Store a version with its view (:mod:`.models`) and make it the active one; ``lineage`` is the
        session's (see credentials.py). The next audit entry must be its ``event``: the rows are bound to
        it (see :meth:`_bind`)."""
        seq = self._bind(event)
        self._db.execute(
            "INSERT INTO session_versions (name, hash, predecessor, body, creator, created, view, seq, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                digest,
                predecessor,
                self._seal(text.encode("utf-8"), "session", name, digest),
                creator,
                time.time(),
                self._seal(view, "view", name, digest),
                seq,
                self._state.version(name, digest, creator, seq),
            ),
        )
        self._db.execute(
            "INSERT INTO active_sessions (name, hash, creator, mac, lineage, seq) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            "hash = excluded.hash, mac = excluded.mac, lineage = excluded.lineage, seq = excluded.seq",
            (name, digest, creator, self._state.session(name, digest, creator, lineage, seq), lineage, seq),
        )

    def drop_versions(self, name: str, keep: str) -> int:
        """Remove every version of a session but ``keep`` (to make room: see quotas.py); how many went."""
        cursor = self._db.execute("DELETE FROM session_versions WHERE name = ? AND hash <> ?", (name, keep))
        return max(cursor.rowcount, 0)

    def delete_session(self, name: str) -> None:
        """Remove a session and all that is its; the next audit entry must say so (``session.deleted``)."""
        self._bind("session.deleted")
        for table, column in (
            ("session_versions", "name"),
            ("active_sessions", "name"),
            ("generated_secrets", "session"),
            ("volumes", "session"),
        ):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))  # noqa: S608 - fixed names

    def has_children(self, namespace: str) -> bool:
        with self._lock:
            prefix = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            row = self._db.execute(
                "SELECT 1 FROM active_sessions WHERE name LIKE ? ESCAPE '\\' LIMIT 1", (prefix,)
            ).fetchone()
        return row is not None

    # -- generated secrets ------------------------------------------------------------------------

    def secret(self, session: str, name: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT kind, value FROM generated_secrets WHERE session = ? AND name = ?", (session, name)
            ).fetchone()
        return (row[0], self._open(row[1], "secret", session, name)) if row else None

    def put_secret(self, session: str, name: str, kind: str, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO generated_secrets (session, name, kind, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (session, name) DO UPDATE SET kind = excluded.kind, value = excluded.value",
            (session, name, kind, self._seal(value, "secret", session, name)),
        )

    # -- volumes ----------------------------------------------------------------------------------

    def volume(self, session: str, name: str) -> VolumeState | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, generation, tag, mac, seq FROM volumes WHERE session = ? AND name = ?",
                (session, name),
            ).fetchone()
        if row is None:
            return None
        if not StateKeys.matches(self._state.volume(session, name, row[1], row[2], row[4]), row[3]):
            raise TamperedError(
                f"volume {name} of session {session}: its state was not set by this CAS{_EDITED}"
            )
        return VolumeState(
            self._open(row[0], "volume", session, name), row[1], bytes.fromhex(row[2]) if row[2] else None
        )

    def create_volume(self, session: str, name: str, key: bytes) -> None:
        """A new volume at generation 0; the next audit entry must say so (``volume.created``)."""
        seq = self._bind("volume.created")
        self._db.execute(
            "INSERT INTO volumes (session, name, key, generation, tag, mac, seq) "
            "VALUES (?, ?, ?, 0, NULL, ?, ?)",
            (
                session,
                name,
                self._seal(key, "volume", session, name),
                self._state.volume(session, name, 0, None, seq),
                seq,
            ),
        )

    def swap_volume(
        self, session: str, name: str, expected: tuple[int, bytes | None], new: tuple[int, bytes]
    ) -> bool:
        """Compare-and-swap of a volume's (generation, tag); ``True`` if it swapped, and then the next audit
        entry must say so (``volume.swapped``)."""
        expected_tag = expected[1].hex() if expected[1] is not None else None
        if self.volume(session, name) is None:  # also checks the row is the CAS's own
            return False
        seq = self._next_seq()
        cursor = self._db.execute(
            "UPDATE volumes SET generation = ?, tag = ?, mac = ?, seq = ? WHERE session = ? AND name = ? "
            "AND generation = ? AND tag IS ?",
            (
                new[0],
                new[1].hex(),
                self._state.volume(session, name, new[0], new[1].hex(), seq),
                seq,
                session,
                name,
                expected[0],
                expected_tag,
            ),
        )
        if cursor.rowcount != 1:
            return False
        self._bind("volume.swapped")
        return True

    # -- recovery keys and backups -----------------------------------------------------------------

    def recovery_copies(self) -> dict[str, str]:
        """The master key sealed to each recovery key: fingerprint -> sealed copy."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, value FROM meta WHERE name LIKE ?", ("recovery:%",)
            ).fetchall()
        return recovery_copies_of(dict(rows))

    def set_recovery_copies(self, copies: dict[str, str]) -> None:
        """Keep exactly these sealed copies (in a transaction; audited by fingerprint; each MAC'd)."""
        present = self.recovery_copies()
        for name in sorted(present.keys() - copies.keys()):
            self._db.execute("DELETE FROM meta WHERE name = ?", ("recovery:" + name,))
            self.audit("recovery_key.removed", fingerprint=name)
        for name in sorted(copies.keys() - present.keys()):
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                ("recovery:" + name, self._mac_copy(name, copies[name])),
            )
            self.audit("recovery_key.added", fingerprint=name)

    def _mac_copy(self, fingerprint: str, sealed: str) -> str:
        fields = json.loads(sealed)
        fields["mac"] = self._state.recovery(fingerprint, json.dumps(fields, sort_keys=True))
        return json.dumps(fields, sort_keys=True)

    def origin(self) -> str | None:
        """The CA's signed statement that this store's master key is its CAS's (:mod:`.recovery`)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
        return str(row[0]) if row else None

    def set_origin(self, statement: str, details: dict[str, Any]) -> None:
        """Keep the origin statement (in a transaction; audited with ``details``)."""
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES ('origin', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (statement,),
        )
        self.audit(ORIGIN_EVENT, **details)

    def export_rows(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Every row that makes the CAS's state, as of one moment while others go on writing:
        (table, row). Used nonces are left out (the epoch moves on at a restore)."""
        with self._lock, self._db.snapshot():
            for table, columns in BACKUP_TABLES.items():
                sql = f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 - fixed names
                for row in self._db.execute(sql).fetchall():
                    yield table, tuple(row)

    def audit_hash_at(self, seq: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return str(row[0]) if row else None

    def audit_head(self) -> tuple[int, str]:
        with self._lock:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, _AUDIT_GENESIS)

    def holds_state(self) -> bool:
        """Anything besides what a new store starts with (its seals, its origin)."""
        with self._lock:
            sessions = self._db.execute("SELECT 1 FROM active_sessions LIMIT 1").fetchone()
            versions = self._db.execute("SELECT 1 FROM session_versions LIMIT 1").fetchone()
            housekeeping = (SEALED_EVENT, RECOVERY_SEALED_EVENT, ROWS_BOUND_EVENT, ORIGIN_EVENT)
            other = self._db.execute(
                f"SELECT 1 FROM audit WHERE event NOT IN ({', '.join('?' for _ in housekeeping)}) LIMIT 1",  # noqa: S608
                housekeeping,
            ).fetchone()
        return bool(sessions or versions or other)

    def replace_rows(self, rows: Iterable[tuple[str, tuple[Any, ...]]], record: dict[str, Any]) -> None:
        """Replace the whole state with ``rows`` (a backup's) and append ``store.restored`` with ``record``
        — in one transaction, then checked as at start. Raises :class:`TamperedError` (and changes nothing)
        if the rows do not verify under this master key."""
        with self.transaction():
            for table in BACKUP_TABLES:
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            self._db.execute("DELETE FROM used_nonces")
            for table, row in rows:
                columns = BACKUP_TABLES[table]
                marks = ", ".join("?" for _ in columns)
                # A backup from before a column was added (columns are only ever appended) lacks it.
                values = (*row, *(None,) * (len(columns) - len(row)))
                self._db.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                    values,
                )
            self._check_integrity()
            self.audit(RESTORED_EVENT, **record)

    # -- nonces -----------------------------------------------------------------------------------

    def nonce_epoch(self) -> int:
        """The epoch nonces are issued in; :meth:`next_nonce_epoch` moves it on at every CAS start."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'nonce_epoch'").fetchone()
        return int(row[0]) if row else 0

    def next_nonce_epoch(self) -> int:
        with self.transaction():
            epoch = self.nonce_epoch() + 1
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('nonce_epoch', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(epoch),),
            )
        return epoch

    def use_nonce(self, nonce: str, expires: float, now: float) -> bool:
        """Record a used nonce (forgetting the expired ones); ``False`` if it was used already. Not
        waiting for the disk: the epoch, moved on durably at every start, covers what a crash loses."""
        with self.transaction(durable=False):
            self._db.execute("DELETE FROM used_nonces WHERE expires < ?", (now,))
            inserted = self._db.execute(
                "INSERT INTO used_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING",
                (nonce, expires),
            )
        return inserted.rowcount == 1

    # -- audit ------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        """The sequence number the next audit entry gets (in a write transaction: nobody else's)."""
        row = self._db.execute("SELECT seq FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return int(row[0]) + 1 if row else 1

    def _bind(self, event: str) -> int:
        """A row is being changed that the next audit entry, ``event``, records: its MAC binds that entry's
        sequence number (integrity.py), which is returned."""
        if self._pending is not None:
            raise StoreError(f"a change awaiting its audit entry ({self._pending[1]}) was not logged")
        self._pending = (self._next_seq(), event)
        return self._pending[0]

    def audit(self, event: str, **details: Any) -> None:
        """Append an audit entry (inside the transaction of the change it records)."""
        row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, previous = (row[0] + 1, row[1]) if row else (1, _AUDIT_GENESIS)
        if seq <= self._high_water:
            raise TamperedError(
                f"the audit log went back from entry {self._high_water} to {seq - 1} while the CAS "
                f"ran{_EDITED}"
            )
        if self._pending is not None:
            if self._pending != (seq, event):
                raise StoreError(f"the change awaiting {self._pending[1]} was not logged next (got {event})")
            self._pending = None
        moment = time.time()
        text = json.dumps(details, sort_keys=True, separators=(",", ":"))
        digest = _audit_hash(self._audit_key, seq, moment, event, text, previous)
        self._db.execute(
            "INSERT INTO audit (seq, time, event, details, previous, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, moment, event, text, previous, digest),
        )
        self._seal_head(seq, digest)
        self._high_water = seq

    def _seal_head(self, seq: int, digest: str) -> None:
        head = json.dumps({"seq": seq, "hash": digest, "mac": self._state.head(seq, digest)})
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES ('audit_head', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (head,),
        )

    def audit_entries(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, time, event, details FROM audit ORDER BY seq").fetchall()
        return [{"seq": r[0], "time": r[1], "event": r[2], **json.loads(r[3])} for r in rows]

    def verify_audit(self) -> int:
        """Check the whole chain and its sealed head; return the number of entries, or raise
        :class:`AuditError`."""
        with self._lock:
            count, _ = self._verified_chain()
        return count

    def _verified_chain(self) -> tuple[int, list[tuple[int, str, dict[str, Any]]]]:
        """The number of entries and the state-changing ones (event, details), after checking every
        entry's MAC and link, and the seal of the last."""
        previous = _AUDIT_GENESIS
        expected_seq = 1
        changes: list[tuple[int, str, dict[str, Any]]] = []
        rows = self._db.execute(
            "SELECT seq, time, event, details, previous, hash FROM audit ORDER BY seq"
        ).fetchall()
        for seq, moment, event, text, stored_previous, digest in rows:
            if seq != expected_seq or stored_previous != previous:
                raise AuditError(f"audit entry {seq}: the chain is broken before it (an entry was removed)")
            if not hmac.compare_digest(
                _audit_hash(self._audit_key, seq, moment, event, text, previous), digest
            ):
                raise AuditError(f"audit entry {seq}: its content was changed")
            if event in STATE_EVENTS or event in (SEALED_EVENT, RECOVERY_SEALED_EVENT, ROWS_BOUND_EVENT):
                changes.append((seq, event, json.loads(text)))
            previous = digest
            expected_seq += 1
        last = expected_seq - 1
        head = self._db.execute("SELECT value FROM meta WHERE name = 'audit_head'").fetchone()
        if head is None:
            if any(event == SEALED_EVENT for _, event, _ in changes):
                raise AuditError("the audit log's seal was removed")
            return last, changes  # a database from before the seal: _check_integrity seals it
        sealed = json.loads(head[0])
        if not StateKeys.matches(self._state.head(sealed["seq"], sealed["hash"]), sealed.get("mac")):
            raise AuditError("the audit log's seal was not written by this CAS")
        if sealed["seq"] > last:
            raise AuditError(
                f"the audit log ends at entry {last} but was sealed at entry {sealed['seq']}: "
                "entries were removed"
            )
        if sealed["seq"] != last or sealed["hash"] != previous:
            raise AuditError(f"the audit log's seal names entry {sealed['seq']}, not its last entry {last}")
        return last, changes

    # -- integrity --------------------------------------------------------------------------------

    def _add_columns(self) -> None:
        for table, column, kind in _ADDED_COLUMNS:
            try:
                self._db.execute(f"SELECT {column} FROM {table} LIMIT 0")  # noqa: S608 - fixed names
            except (sqlite3.OperationalError, DatabaseError):
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _check_integrity(self) -> None:
        """Refuse a database edited behind the CAS's back (see :mod:`.integrity`); seal one written
        before the seal existed, once."""
        count, changes = self._verified_chain()
        if self._db.execute("SELECT 1 FROM meta WHERE name = 'audit_head'").fetchone() is None:
            self._seal_legacy(count)
        bound: dict[tuple[str, ...], int] = {}
        unbound: list[tuple[str, ...]] = []  # rows from before rows were bound to their entry
        sessions: dict[str, str] = {}
        for name, digest, creator, mac, lineage, seq in self._db.execute(
            "SELECT name, hash, creator, mac, lineage, seq FROM active_sessions"
        ).fetchall():
            if not StateKeys.matches(self._state.session(name, digest, creator, lineage, seq), mac):
                raise TamperedError(f"session {name}: its active version was not set by this CAS{_EDITED}")
            sessions[name] = digest
            _bound_or_not(("session", name), seq, bound, unbound)
        volumes: dict[tuple[str, str], tuple[int, str | None]] = {}
        for session, name, generation, tag, mac, seq in self._db.execute(
            "SELECT session, name, generation, tag, mac, seq FROM volumes"
        ).fetchall():
            if not StateKeys.matches(self._state.volume(session, name, generation, tag, seq), mac):
                raise TamperedError(
                    f"volume {name} of session {session}: its state was not set by this CAS{_EDITED}"
                )
            volumes[(session, name)] = (generation, tag)
            _bound_or_not(("volume", session, name), seq, bound, unbound)
        for name, digest, creator, seq, mac in self._db.execute(
            "SELECT name, hash, creator, seq, mac FROM session_versions"
        ).fetchall():
            if seq is not None and not StateKeys.matches(
                self._state.version(name, digest, creator, seq), mac
            ):
                raise TamperedError(f"a version of {name}: it was not stored by this CAS{_EDITED}")
            _bound_or_not(("version", name, digest), seq, bound, unbound)
        copies: set[str] = set()
        rows = self._db.execute("SELECT name, value FROM meta WHERE name LIKE ?", ("recovery:%",)).fetchall()
        macs_due = any(event == RECOVERY_SEALED_EVENT for _, event, _ in changes)
        for row_name, value in rows:
            name = row_name.removeprefix("recovery:")
            sealed, mac = _without_mac(value)
            if not macs_due:  # from before copies were MAC'd: sealed below, once
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE name = ?", (self._mac_copy(name, sealed), row_name)
                )
            elif not StateKeys.matches(self._state.recovery(name, sealed), mac):
                raise TamperedError(
                    f"recovery key {name[:16]}: its sealed copy of the master key was not written by this "
                    f"CAS{_EDITED}"
                )
            copies.add(name)
        if not macs_due:
            self.audit(RECOVERY_SEALED_EVENT, copies=len(copies))
        replayed = replay(changes)
        found = differences(replayed, sessions, volumes, copies)
        found += entry_differences(replayed, bound, count)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise TamperedError(f"{found[0]}{more}{_EDITED}")
        if any(event == ROWS_BOUND_EVENT for _, event, _ in changes):
            if unbound:
                raise TamperedError(f"{' '.join(unbound[0])}: bound to no audit entry{_EDITED}")
        else:
            self._bind_legacy(unbound, replayed)
            self.audit(ROWS_BOUND_EVENT, rows=len(unbound))

    def _bind_legacy(self, rows: list[tuple[str, ...]], replayed: Replayed) -> None:
        """Bind rows written before rows were bound to their audit entry (they agree with the log: checked
        just before) to the entry the log says set them — or, for one the log never recorded (a volume
        from before volumes were logged), to :data:`~.integrity.BEFORE_THE_LOG` — once."""
        for key in rows:
            seq = replayed.entries.get(key, BEFORE_THE_LOG)
            if key[0] == "session":
                active = self._db.execute(
                    "SELECT hash, creator, lineage FROM active_sessions WHERE name = ?", (key[1],)
                ).fetchone()
                self._db.execute(
                    "UPDATE active_sessions SET seq = ?, mac = ? WHERE name = ?",
                    (seq, self._state.session(key[1], active[0], active[1], active[2], seq), key[1]),
                )
            elif key[0] == "volume":
                generation, tag = self._db.execute(
                    "SELECT generation, tag FROM volumes WHERE session = ? AND name = ?", key[1:]
                ).fetchone()
                self._db.execute(
                    "UPDATE volumes SET seq = ?, mac = ? WHERE session = ? AND name = ?",
                    (seq, self._state.volume(key[1], key[2], generation, tag, seq), *key[1:]),
                )
            else:
                (creator,) = self._db.execute(
                    "SELECT creator FROM session_versions WHERE name = ? AND hash = ?", key[1:]
                ).fetchone()
                self._db.execute(
                    "UPDATE session_versions SET seq = ?, mac = ? WHERE name = ? AND hash = ?",
                    (seq, self._state.version(key[1], key[2], creator, seq), *key[1:]),
                )

    def _seal_legacy(self, count: int) -> None:
        """A new database, or one from before rows and the audit head were sealed: seal what it holds,
        once, and say so in the audit log (a later removal of the seal is then refused)."""
        for name, digest, creator in self._db.execute(
            "SELECT name, hash, creator FROM active_sessions"
        ).fetchall():
            self._db.execute(
                "UPDATE active_sessions SET mac = ? WHERE name = ?",
                (self._state.session(name, digest, creator), name),
            )
        for session, name, generation, tag in self._db.execute(
            "SELECT session, name, generation, tag FROM volumes"
        ).fetchall():
            self._db.execute(
                "UPDATE volumes SET mac = ? WHERE session = ? AND name = ?",
                (self._state.volume(session, name, generation, tag), session, name),
            )
        # The seal is itself an entry: once the log holds one, a missing head is a removed one.
        self.audit(SEALED_EVENT, entries=count)


def _bound_or_not(
    key: tuple[str, ...], seq: int | None, bound: dict[tuple[str, ...], int], unbound: list[tuple[str, ...]]
) -> None:
    if seq is None:
        unbound.append(key)
    else:
        bound[key] = int(seq)


def _audit_hash(key: bytes, seq: int, moment: float, event: str, details: str, previous: str) -> str:
    record = json.dumps([seq, repr(moment), event, details, previous], separators=(",", ":"))
    return hmac.new(key, record.encode("utf-8"), hashlib.sha256).hexdigest()
