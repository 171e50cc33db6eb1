"""A real PostgreSQL server for the tests (Debian's ``postgresql``), and which store the CAS tests use.

``SCONIFY_TEST_STORE=postgresql`` runs the CAS tests against PostgreSQL: one server for the whole run,
started on first use in a directory of its own, a fresh database for every store a test makes. Without
it they use SQLite, as a CAS does by default.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from pulumi_sconify.engine.cas.state.database import postgres_sql
from tests.support.processes import free_port

BACKEND_VARIABLE = "SCONIFY_TEST_STORE"
START_SAFETY_NET = 300.0


def backend() -> str:
    return os.environ.get(BACKEND_VARIABLE, "sqlite")


def _binary(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    assert found, "PostgreSQL is installed by .ci/setup (Debian's postgresql)"
    return str(found[-1])


class PostgresServer:
    """One PostgreSQL cluster in a directory of its own, listening on loopback; trust authentication
    (only this machine's processes reach it). Run as the ``postgres`` user when the tests run as root:
    PostgreSQL refuses to run as root."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = settings or {}
        """More server settings (``-c name=value``), e.g. TLS."""
        self.directory = Path(tempfile.mkdtemp(prefix="sconify-postgres-"))
        self.directory.chmod(0o755)
        self.data = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _as_owner(self, command: list[str]) -> list[str]:
        # setpriv executes the command in place (runuser would stay its parent): the process started is
        # the postmaster itself, which kill() must reach.
        owner = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        return [*owner, *command] if self._user else command

    def initialise(self) -> PostgresServer:
        self.data.mkdir()
        if self._user:  # its data, and its socket's lock file beside the log
            for location in (self.directory, self.data):
                os.chown(location, self._user.pw_uid, self._user.pw_gid)
        subprocess.run(
            self._as_owner(
                [_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
            timeout=300,
        )
        return self

    def start(self) -> PostgresServer:
        log = (self.directory / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            self._as_owner(
                [
                    _binary("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.directory),
                    "-c",
                    "max_connections=300",
                    "-c",
                    "fsync=on",
                    *(f"-c{name}={value}" for name, value in self.settings.items()),
                ]
            ),
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + START_SAFETY_NET  # waiting for a state; the deadline is a safety net
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited: {(self.directory / 'postgres.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return self
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not come up")

    def url(self, database: str, host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def own(self, path: Path, content: bytes, mode: int = 0o600) -> None:
        """Write a file the server reads (its key, its pg_hba.conf): owned by its user."""
        path.write_bytes(content)
        path.chmod(mode)
        if self._user:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def new_database(self) -> str:
        name = f"cas_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def kill(self) -> None:
        """``kill -9`` of the postmaster; its backends notice and end (the next start recovers)."""
        assert self.process is not None
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        assert postmaster == self.process.pid, "the started process is the postmaster"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The run's server, started on first use and removed when the run ends."""
    global _shared  # noqa: PLW0603 - one server per test run
    if _shared is None:
        _shared = PostgresServer().initialise().start()
        atexit.register(_shared.remove)
    return _shared


def store_location(directory: Path) -> Path | str:
    """Where a test's store lives: a SQLite file in ``directory``, or a fresh PostgreSQL database."""
    if backend() == "postgresql":
        return shared_server().new_database()
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "cas.db"


def query(database: Path | str, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (SQLite's dialect, as the store writes it) on a store's database directly, as someone
    with access to the database but not to the CAS would."""
    if isinstance(database, str):
        with psycopg.connect(database, autocommit=True) as connection:
            cursor = connection.execute(postgres_sql(sql), parameters)
            return cursor.fetchall() if cursor.description is not None else []
    with sqlite3.connect(database) as connection:
        return connection.execute(sql, parameters).fetchall()


def store_option(cas: Any) -> list[str]:
    """The ``--store`` option that points a CLI at a running CAS's database (none for SQLite)."""
    return ["--store", cas.database] if isinstance(cas.database, str) else []


def database_bytes(database: Path | str) -> bytes:
    """Every byte the database keeps on disk: SQLite's files, or the PostgreSQL cluster's data directory
    (the server's, so it must hold no other test's secrets: each test makes its own)."""
    if isinstance(database, str):
        server = shared_server()
        query(database, "CHECKPOINT")
        files = [path for path in server.data.rglob("*") if path.is_file()]
    else:
        files = [path for path in database.parent.iterdir() if path.name.startswith(database.name)]
    return b"".join(path.read_bytes() for path in files)
