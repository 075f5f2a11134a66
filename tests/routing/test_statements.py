"""The engine's hot statements run straight on the driver (`callcenter.routing.statements`): same rows, same
errors and same engine listeners as through SQLAlchemy's Core, on each database."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, event, exc, select, text

from callcenter.routing import statements
from callcenter.routing.models import OutboxMessage, TaskChannel, Timer, Worker, WorkerChannel

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


# -- loading objects -------------------------------------------------------------------------------

_WORKER_AND_CHANNEL = (
    select(*statements.columns_of(Worker), *statements.columns_of(WorkerChannel))
    .select_from(Worker)
    .outerjoin(WorkerChannel, (WorkerChannel.worker_sid == Worker.sid)
               & (WorkerChannel.task_channel_sid == bindparam("channel_sid")))
    .where(Worker.sid == bindparam("worker_sid"))
)


def test_loaded_objects_are_what_the_orm_would_load_and_nothing_is_written_back(center, router):
    worker_sid = center.worker("alice", {"skills": ["en"]})
    with router.read() as session:
        expected = session.get(Worker, worker_sid)
        expected_values = {column.key: getattr(expected, column.key) for column in statements.columns_of(Worker)}
    writes = []
    event.listen(router.writer, "before_cursor_execute",
                 lambda _c, _cur, statement, *_rest: writes.append(statement.split()[0]))
    with router.transaction(center.ws) as tx:
        worker = statements.load(tx.session, Worker, worker_sid)
        assert {key: getattr(worker, key) for key in expected_values} == expected_values
        assert isinstance(worker.date_created, datetime) and worker in tx.session and worker not in tx.session.dirty
        assert statements.load(tx.session, Worker, worker_sid) is worker  # the second time from the session
        assert statements.load(tx.session, Worker, "WK" + "0" * 32) is None
        tx.session.flush()
    assert [verb for verb in writes if verb not in ("SELECT", "BEGIN", "COMMIT")] == []


def test_an_object_added_but_not_yet_written_is_found_by_its_key(center, router):
    template = center.worker("alice")
    with router.transaction(center.ws) as tx:
        values = {column.key: getattr(tx.get(Worker, template), column.key) for column in statements.columns_of(Worker)}
        added = Worker(**{**values, "sid": "WK" + "1" * 32, "friendly_name": "bob", "name_key": "bob"})
        tx.session.add(added)
        assert statements.load(tx.session, Worker, added.sid) is added
        tx.session.delete(added)


def test_an_object_already_in_the_session_keeps_its_unflushed_changes(center, router):
    worker_sid = center.worker("alice")
    with router.transaction(center.ws) as tx:
        worker = statements.load(tx.session, Worker, worker_sid)
        worker.friendly_name = "alice (evenings)"
        rows = statements.load_rows(tx.session, _WORKER_AND_CHANNEL,
                                    {"worker_sid": worker_sid, "channel_sid": "TC" + "0" * 32},
                                    (Worker, WorkerChannel), flush=False)
        assert rows == [(worker, None)]  # the outer join found no channel: None, not an empty object
        assert rows[0][0].friendly_name == "alice (evenings)"
    assert center.get_worker(worker_sid).friendly_name == "alice (evenings)"


def test_a_change_to_a_loaded_object_is_written_at_commit(center, router):
    worker_sid = center.worker("alice")
    with router.transaction(center.ws) as tx:
        channel_sid = next(sid for sid, name in tx.session.execute(select(TaskChannel.sid, TaskChannel.unique_name))
                           if name == "voice")
        [(worker, channel)] = statements.load_rows(tx.session, _WORKER_AND_CHANNEL,
                                                   {"worker_sid": worker_sid, "channel_sid": channel_sid},
                                                   (Worker, WorkerChannel))
        assert worker.sid == channel.worker_sid == worker_sid and channel.task_channel_sid == channel_sid
        channel.capacity = 3
    assert center.channel(worker_sid).capacity == 3


def test_load_listeners_hear_of_each_object_loaded(center, router):
    worker_sid = center.worker("alice")
    heard = []

    def on_load(worker, _context):
        heard.append(worker.sid)

    event.listen(Worker, "load", on_load)
    try:
        with router.transaction(center.ws) as tx:
            worker = statements.load(tx.session, Worker, worker_sid)
            assert statements.load(tx.session, Worker, worker_sid) is worker
            worker.friendly_name = "alice (evenings)"
    finally:
        event.remove(Worker, "load", on_load)
    assert heard == [worker_sid]
    assert center.get_worker(worker_sid).friendly_name == "alice (evenings)"
