"""The engine's hot statements run straight on the driver (`callcenter.routing.statements`): same rows, same
errors and same engine listeners as through SQLAlchemy's Core, on each database."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, event, exc, select, text

from callcenter.routing import statements
from callcenter.routing.models import OutboxMessage, Timer

_TIMERS = Timer.__table__
_OUTBOX = OutboxMessage.__table__
_DUE = select(_TIMERS.c.kind, _TIMERS.c.subject_sid).where(_TIMERS.c.due_at <= bindparam("before")).order_by(
    _TIMERS.c.subject_sid)


def test_rows_inserted_and_read_back_with_their_column_types(center, router):
    due = datetime(2026, 11, 26, 9, 30, 15, 250000)
    with router.transaction(center.ws) as tx:
        connection = tx.session.connection()
        statements.insert_rows(connection, _TIMERS, [
            {"workspace_sid": center.ws, "kind": "bench", "subject_sid": "WT1", "due_at": due},
            {"workspace_sid": center.ws, "kind": "bench", "subject_sid": "WT2", "due_at": due.replace(hour=11)},
        ])
        rows = statements.run(connection, _DUE, {"before": due})
    assert rows == [("bench", "WT1")]  # the datetime parameter compares as the column stores it
    with router.read() as session:
        stored = session.scalars(select(Timer).where(Timer.kind == "bench").order_by(Timer.subject_sid)).all()
        assert [(timer.subject_sid, timer.due_at) for timer in stored] == [("WT1", due), ("WT2", due.replace(hour=11))]


def test_rows_with_different_keys_are_each_written_whole(center, router):
    """Rows are grouped by their keys; a column left out with a Python-side default gets that default."""
    with router.transaction(center.ws) as tx:
        statements.insert_rows(tx.session.connection(), _OUTBOX, [
            {"workspace_sid": center.ws, "kind": "event", "url": "https://example.com/a", "payload": "{}",
             "next_attempt_at": tx.now, "created_at": tx.now, "attempts": 2, "status": "pending"},
            {"workspace_sid": center.ws, "kind": "event", "url": "https://example.com/b", "payload": "{}",
             "next_attempt_at": tx.now, "created_at": tx.now},
        ])
    with router.read() as session:
        stored = {row.url: (row.attempts, row.status) for row in session.scalars(select(OutboxMessage))}
    assert stored["https://example.com/a"] == (2, "pending")
    assert stored["https://example.com/b"] == (0, "pending")


def test_a_refused_statement_is_sqlalchemys_error_and_the_transaction_rolls_back(center, router):
    row = {"workspace_sid": center.ws, "kind": "bench", "subject_sid": "WT1", "due_at": datetime(2026, 1, 1)}
    with pytest.raises(exc.IntegrityError), router.transaction(center.ws) as tx:
        statements.insert_rows(tx.session.connection(), _TIMERS, [row])
        statements.insert_rows(tx.session.connection(), _TIMERS, [row])  # (kind, subject_sid) is unique
    with router.read() as session:
        assert session.scalars(select(Timer).where(Timer.kind == "bench")).all() == []


def test_engine_listeners_see_each_statement(center, router):
    seen = []
    event.listen(router.writer, "before_cursor_execute",
                 lambda _c, _cur, statement, params, _ctx, many: seen.append((statement.split()[0], many)))
    with router.transaction(center.ws) as tx:
        connection = tx.session.connection()
        statements.insert_rows(connection, _TIMERS, [
            {"workspace_sid": center.ws, "kind": "bench", "subject_sid": f"WT{n}", "due_at": tx.now} for n in range(3)])
        statements.run(connection, _DUE, {"before": tx.now})
        statements.run_many(connection, _TIMERS.delete().where(_TIMERS.c.subject_sid == bindparam("of")),
                            [{"of": "WT0"}, {"of": "WT1"}])
    assert ("INSERT", True) in seen and ("SELECT", False) in seen and ("DELETE", True) in seen
    with router.read() as session:
        assert session.scalars(select(Timer.subject_sid).where(Timer.kind == "bench")).all() == ["WT2"]


def test_a_bound_default_value_is_sent_when_the_caller_gives_none(center, router):
    query = text("SELECT :answer + :given").bindparams(bindparam("answer", 40))
    with router.transaction(center.ws) as tx:
        assert statements.run(tx.session.connection(), query, {"given": 2}) == [(42,)]
