"""On SQLite, a write transaction holds the database's write lock from its first statement, and a read
transaction sees one snapshot from its first statement to its end."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, select

from callcenter.routing import Router, workspaces
from callcenter.routing.models import Workspace

ACCOUNT = "AC" + "2" * 32


@pytest.fixture
def sqlite_router(sqlite_url):
    router = Router(sqlite_url)
    yield router, sqlite_url.removeprefix("sqlite:///")
    router.dispose()


def _try_to_write(path: str) -> bool:
    """Whether another connection could take the write lock at once."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        other.close()


def test_a_write_transaction_holds_the_write_lock_before_it_writes(sqlite_router):
    router, path = sqlite_router
    workspace = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Locked").sid
    assert _try_to_write(path)
    with router.transaction(workspace) as tx:
        assert tx.workspace.friendly_name == "Locked"  # only read so far
        assert not _try_to_write(path)
    assert _try_to_write(path)


def test_a_read_transaction_sees_one_snapshot(sqlite_router):
    router, _path = sqlite_router
    count = select(func.count()).select_from(Workspace)
    with router.read() as session:
        before = session.scalar(count)
        workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Committed meanwhile")
        assert session.scalar(count) == before  # the read began before that commit
    with router.read() as session:
        assert session.scalar(count) == before + 1


def test_a_read_opened_inside_another_on_the_same_thread_gets_its_own_session(sqlite_router):
    # Each thread reuses one session from a transaction to the next; one opened inside another must not
    # take over (or close) the session the outer one is still using.
    router, _path = sqlite_router
    workspace = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Outer").sid
    with router.read() as outer:
        with router.read() as inner:
            assert inner is not outer
            assert inner.get(Workspace, workspace).friendly_name == "Outer"
        assert outer.get(Workspace, workspace).friendly_name == "Outer"  # still open, still usable
    with router.read() as again:
        assert again is outer  # the thread's session, reused once closed
        assert again.get(Workspace, workspace) is not None


def test_objects_of_a_finished_transaction_are_not_carried_into_the_next(sqlite_router):
    router, _path = sqlite_router
    workspace = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Before")
    with router.transaction(workspace.sid) as tx:
        first = tx.workspace
    workspaces.update_workspace(router, workspace.sid, friendly_name="After")
    with router.transaction(workspace.sid) as tx:
        assert tx.workspace is not first  # loaded afresh, not the object the first transaction left behind
        assert tx.workspace.friendly_name == "After"
