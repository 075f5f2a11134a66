"""WAL checkpoints run on the Router's own thread, not inside the commit that crosses a threshold."""

from __future__ import annotations

import shutil
import sqlite3

from callcenter.routing import Router, workspaces
from callcenter.routing.db import CHECKPOINT_EVERY_COMMITS, WAL_AUTOCHECKPOINT_BOUND, WalCheckpointer

ACCOUNT = "AC" + "1" * 32


def _rows_in_database_file(path, tmp_path, table: str) -> int:
    """Rows of `table` in the database file alone, i.e. what checkpoints copied out of the WAL."""
    copy = tmp_path / "file-only.db"
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchall():
            return 0
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


def test_checkpointer_copies_the_wal_into_the_database_every_n_commits(tmp_path):
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x INTEGER)")
    checkpointer = WalCheckpointer(str(path), every=2)
    try:
        writer.execute("INSERT INTO t VALUES (1)")
        checkpointer.committed()
        assert _rows_in_database_file(path, tmp_path, "t") == 0  # one commit: still only in the WAL
        writer.execute("INSERT INTO t VALUES (2)")
        checkpointer.committed()
        checkpointer.close()  # waits for the checkpoint asked for by the second commit
        assert _rows_in_database_file(path, tmp_path, "t") == 2
        checkpointer.committed()  # after close: ignored, no thread started again
    finally:
        writer.close()


def test_router_checkpoints_in_the_background(sqlite_url, tmp_path):
    path = sqlite_url.removeprefix("sqlite:///")
    router = Router(sqlite_url)
    try:
        with router.writer.connect() as connection:
            bound = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert bound == WAL_AUTOCHECKPOINT_BOUND  # the writers' own checkpoints are only a bound
        for number in range(CHECKPOINT_EVERY_COMMITS):
            workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name=f"Checkpointed {number}")
        router._checkpointer.close()  # waits for the checkpoint asked for
        assert _rows_in_database_file(path, tmp_path, "workspaces") >= CHECKPOINT_EVERY_COMMITS
    finally:
        router.dispose()


def test_dispose_stops_the_checkpoint_thread(sqlite_url):
    router = Router(sqlite_url)
    try:
        for number in range(CHECKPOINT_EVERY_COMMITS):
            workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name=f"Checkpointed {number}")
        thread = router._checkpointer._thread
        assert thread is not None and thread.is_alive()  # it waits for the next nudge
    finally:
        router.dispose()
    # This router's thread: other tests' routers may still be open in this process.
    assert not thread.is_alive()
