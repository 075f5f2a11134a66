"""Connections to the engine's database: SQLite by default, PostgreSQL for production.

Writers are serialized per workspace. On SQLite the whole file has one writer at a time, so a
writing transaction starts with `BEGIN IMMEDIATE` (it takes the write lock up front instead of
failing to upgrade a read lock halfway through); readers use their own pool and never wait for
it, thanks to WAL mode. On PostgreSQL a transaction-scoped advisory lock keyed by the workspace
sid serializes writers of one workspace while other workspaces proceed in parallel.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///callcenter.db"


def database_url_from_env() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


# Per process. Each request or sweep holds one connection for the length of one transaction, so a
# process needs about as many as it runs threads (gunicorn gthread threads + the sweeper + its
# callback pool of 8); beyond pool_size + max_overflow a thread waits up to pool_timeout seconds
# and then fails with a 500 (SQLAlchemy's TimeoutError), never silently.
POOL_DEFAULTS = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30.0, "pool_recycle": 1800}


# SQLite copies the WAL back into the database ("checkpoints") inside the commit that makes the WAL
# pass `wal_autocheckpoint` pages (1,000 by default): that commit then copies and fsyncs them, 10-18 ms
# on top of a 1-2 ms transaction, and it was one commit in 15 at TaskRouter's limits: the whole p99 of
# a worker becoming available (bench/scale.py). A Router's WalCheckpointer does it on its own thread
# and connection instead, every CHECKPOINT_EVERY_COMMITS commits (PASSIVE: it never blocks readers or
# the writer, which keep appending to the WAL meanwhile; small and frequent, because a commit that
# lands during a long checkpoint's fsync still waits for it). Writers keep an automatic checkpoint at
# WAL_AUTOCHECKPOINT_BOUND pages (~16 MB at 4 KB pages): it bounds the WAL should the thread fall
# behind or a process run without it, and it is what resets the WAL (the background checkpoints run
# while new frames arrive, so they rarely leave it empty); by then it has only a few frames to copy.
CHECKPOINT_EVERY_COMMITS = 4
WAL_AUTOCHECKPOINT_BOUND = 4000


def make_engines(url: str, *, pool_size: int = POOL_DEFAULTS["pool_size"],
                 max_overflow: int = POOL_DEFAULTS["max_overflow"], pool_timeout: float = POOL_DEFAULTS["pool_timeout"],
                 pool_recycle: int = POOL_DEFAULTS["pool_recycle"]) -> tuple[Engine, Engine]:
    """The (writer, reader) engines for `url`; on PostgreSQL both are the same engine.

    PostgreSQL: `pool_pre_ping` replaces a connection the server dropped (restart, failover, idle
    timeout) before a transaction uses it, and `pool_recycle` retires connections older than that
    many seconds, before a proxy or firewall cuts them. Size `max_connections` for
    processes x (pool_size + max_overflow), plus the sweeper processes and some room for psql.
    """
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if memory:
            raise ValueError("an in-memory SQLite database cannot be shared by the engine's connections; "
                             "use a file")
        writer = create_engine(url, **pool)
        reader = create_engine(url, **pool)
        for engine in (writer, reader):
            event.listen(engine, "connect", _sqlite_connect)  # a pool event: free on every statement
        # Each engine's own dialect begins its transactions (SQLAlchemy calls `do_begin` at the start of
        # every transaction, and the pysqlite dialect's does nothing). A "begin" listener would do the same,
        # but any engine listener makes SQLAlchemy dispatch events around every statement, begin and
        # commit on that engine: 4% of the CPU work of a task's lifecycle.
        writer.dialect.do_begin = _sqlite_begin("BEGIN IMMEDIATE")
        reader.dialect.do_begin = _sqlite_begin("BEGIN")
        return writer, reader
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(url, **pool, pool_recycle=pool_recycle, pool_pre_ping=True)
    return engine, engine


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let the dialect's `do_begin` issue BEGIN itself (pysqlite's own handling would not take the
    # write lock early), and turn on what a concurrent server needs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_BOUND}")  # see WalCheckpointer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(sql: str):
    """A dialect's `do_begin` that sends `sql`; SQLAlchemy wraps what the driver raises (`OperationalError`
    for a lock not granted within busy_timeout). Engine listeners hear of it as the "begin" event, not as a
    statement."""

    def do_begin(dbapi_connection) -> None:
        dbapi_connection.execute(sql)

    return do_begin


def workspace_lock_key(workspace_sid: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock`, derived from the workspace sid."""
    digest = hashlib.blake2b(workspace_sid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_workspace(connection, workspace_sid: str) -> None:
    """Serialize writers of one workspace until the end of the current transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": workspace_lock_key(workspace_sid)})
    # SQLite: BEGIN IMMEDIATE already holds the database's single write lock.


class SqliteWriterLock:
    """One waiting line for the writers of a SQLite file, across threads and processes.

    SQLite's own busy handler makes a blocked writer sleep in growing steps (up to 100 ms) and
    lets newcomers overtake it, so under load some writers starve for a second while each
    transaction holds the lock for a few milliseconds. Queuing on a thread lock and an flock
    beside the database first keeps waits short and fair; BEGIN IMMEDIATE then finds the
    database free. Re-entrant within a thread.
    """

    def __init__(self, database_path: str) -> None:
        self._path = Path(database_path).with_name(Path(database_path).name + ".writer-lock")
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._handle = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                if self._handle is None:
                    self._handle = open(self._path, "a")  # noqa: SIM115  (kept open for the router's life)
                fcntl.flock(self._handle, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._handle, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread_lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def sqlite_writer_lock(url: str) -> SqliteWriterLock | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or not Path(parsed.database).parent.is_dir():
        return None
    return SqliteWriterLock(parsed.database)


class WalCheckpointer:
    """Background PASSIVE checkpoints of one SQLite database file, nudged after commits."""

    def __init__(self, database_path: str, every: int = CHECKPOINT_EVERY_COMMITS) -> None:
        self._path = database_path
        self._every = max(1, every)
        self._commits = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._due = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A write transaction committed; every `every` commits the thread checkpoints."""
        with self._lock:
            if self._stop:
                return
            self._commits += 1
            if self._commits < self._every:
                return
            self._commits = 0
            self._due = True
            if self._thread is None:  # started on first use: most short-lived routers never need it
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
                self._thread.start()
        self._wake.set()

    def checkpoint(self, connection) -> None:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _run(self) -> None:
        import sqlite3

        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            while True:
                self._wake.wait()
                self._wake.clear()
                with self._lock:
                    due, self._due = self._due, False
                if due:  # a checkpoint asked for before close() is still done
                    try:
                        self.checkpoint(connection)
                    except sqlite3.Error:  # busy or locked: the next nudge, or the writers' bound, catches up
                        pass
                if self._stop:
                    return
        finally:
            connection.close()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)


def sqlite_checkpointer(url: str) -> WalCheckpointer | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or not Path(parsed.database).parent.is_dir():
        return None
    return WalCheckpointer(parsed.database)
