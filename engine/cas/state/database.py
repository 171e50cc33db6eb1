"""The two databases a CAS can keep its state in, behind one small interface.

- **SQLite** (``Path``): embedded, one CAS process, WAL mode with ``synchronous=FULL``. The default.
- **PostgreSQL** (``postgresql://...``): for production and for replicas — several CAS processes on one
  database. Through psycopg 3.

The store writes its SQL once, with ``?`` placeholders and SQLite's type names; :class:`Postgres` turns
them into PostgreSQL's. Both give the store the same guarantees:

- a write transaction holds the one write lock of the database (SQLite's ``BEGIN IMMEDIATE``; a
  transaction-scoped advisory lock on PostgreSQL, which every replica takes), so transactions that
  read, check and write — a compare-and-swap, an update naming its predecessor, an audit entry taking
  the next sequence number — never interleave, in one process or across replicas;
- a durable transaction is on disk when it commits (``synchronous=FULL``; ``synchronous_commit=on``),
  one that is not may lose its last few commits in a crash, never reorder them.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ...errors import EXIT_USAGE, SconifyError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_WRITE_LOCK = 0x5C0F_CA5
"""The advisory lock every replica's write transaction takes (any constant; this one spells 'sconify CAS')."""


class DatabaseError(SconifyError):
    """The database cannot be reached or used."""

    exit_code = EXIT_USAGE


class Rows(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Database(Protocol):
    """What the store needs of a database. Calls are serialised by the caller's lock."""

    name: str
    """For messages: the file, or the server and database (never a password)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Rows: ...

    def script(self, statements: str) -> None: ...

    @contextmanager
    def transaction(self, durable: bool) -> Iterator[None]: ...

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block see one consistent state, while others go on writing (an online backup)."""
        ...

    def close(self) -> None: ...


def open_database(location: Path | str) -> Database:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` URL."""
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        return Postgres(text)
    return Sqlite(Path(location))


class Sqlite:
    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Rows:
        return self._db.execute(sql, tuple(parameters))

    def script(self, statements: str) -> None:
        self._db.executescript(statements)

    @contextmanager
    def transaction(self, durable: bool) -> Iterator[None]:
        if not durable:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self._db.execute("BEGIN")  # deferred: the first read fixes the snapshot, writers go on (WAL)
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


_TYPES = (
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
)


def postgres_sql(sql: str) -> str:
    """SQLite's dialect as the store writes it, in PostgreSQL's: placeholders, ``IS ?``, type names."""
    sql = sql.replace("IS ?", "IS NOT DISTINCT FROM ?").replace("?", "%s")
    for pattern, replacement in _TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


class _PostgresRows:
    """A cursor's rows with ``bytea`` as ``bytes`` (psycopg gives ``memoryview``), as SQLite gives them."""

    def __init__(self, rowcount: int, rows: list[tuple[Any, ...]]) -> None:
        self.rowcount = rowcount
        self._rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


class Postgres:
    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: PLC0415 - only a CAS on PostgreSQL needs it
        except ImportError:  # pragma: no cover - a dependency of the package
            raise DatabaseError("PostgreSQL needs psycopg (pip install 'psycopg[binary]')") from None
        self._psycopg = psycopg
        self._url = url
        self._db = self._connect()
        info = self._db.info
        self.name = f"postgresql://{info.host}:{info.port}/{info.dbname}"
        self._lock = threading.RLock()
        self._in_transaction = False

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._url, autocommit=True)
        except self._psycopg.Error as error:
            raise DatabaseError(f"cannot connect to PostgreSQL: {_first_line(error)}") from None

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Rows:
        with self._lock:
            if self._db.closed and not self._in_transaction:
                # The server restarted or a failover happened: a new connection, between transactions
                # only (a transaction cut in two is not resumed; its caller sees the failure).
                self._db = self._connect()
            try:
                cursor = self._db.execute(postgres_sql(sql), tuple(parameters))
                rows = cursor.fetchall() if cursor.description is not None else []
            except self._psycopg.Error as error:
                raise DatabaseError(f"{self.name}: {_first_line(error)}") from None
            return _PostgresRows(cursor.rowcount, rows)

    def script(self, statements: str) -> None:
        for statement in statements.split(";"):
            if statement.strip():
                self.execute(statement)

    @contextmanager
    def transaction(self, durable: bool) -> Iterator[None]:
        with self._lock:
            # One round trip for all three (no parameters: the simple query protocol takes several
            # statements): on a network every round trip is time the CAS's event loop waits.
            durability = "" if durable else "SET LOCAL synchronous_commit = off; "
            self.execute(f"BEGIN; {durability}SELECT pg_advisory_xact_lock({_WRITE_LOCK})")
            self._in_transaction = True
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            else:
                self.execute("COMMIT")
            finally:
                self._in_transaction = False

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._lock:
            self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False
                self._rollback()

    def _rollback(self) -> None:
        # If the connection is gone, the server rolls back on its own.
        with contextlib.suppress(self._psycopg.Error):
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
