"""New and changed rows are written by `callcenter.routing.flush`, not the ORM's unit of work: what it writes,
in which order, and what it does when the database refuses or the row is gone."""

from __future__ import annotations

import pytest
from sqlalchemy import event, exc, select, text
from sqlalchemy.orm.exc import StaleDataError

from callcenter.routing import statements
from callcenter.routing.models import OutboxMessage, Reservation, Task, TaskChannel, Worker, WorkerChannel
from callcenter.routing.sids import new_sid


def _updates(router, verb="UPDATE"):
    """Every `verb` statement the writer engine sends from now on, as (statement, parameters)."""
    seen = []

    def record(_connection, _cursor, statement, parameters, _context, _executemany):
        if statement.lstrip().upper().startswith(verb):
            seen.append((" ".join(statement.split()), parameters))

    event.listen(router.writer, "before_cursor_execute", record)
    return seen


def _copy(row, **changes):
    """A new, unsaved object of `row`'s class with `row`'s column values and `changes`."""
    values = {column.key: getattr(row, column.key) for column in statements.columns_of(type(row))}
    return type(row)(**{**values, **changes})


def test_changed_columns_of_a_row_are_written_in_one_statement(center):
    worker = center.worker("Alice", {"skills": ["sales"]})
    updates = _updates(center.router)
    with center.router.transaction(center.ws) as tx:
        row = tx.get(Worker, worker)
        row.attributes = '{"skills": ["support"]}'
        row.version += 1
        row.date_updated = tx.now
    worker_updates = [statement for statement, _ in updates if statement.startswith("UPDATE workers")]
    assert len(worker_updates) == 1
    assert "attributes" in worker_updates[0] and "version" in worker_updates[0]
    assert "friendly_name" not in worker_updates[0]  # unchanged columns are not sent
    with center.router.read() as session:
        stored = session.get(Worker, worker)
        assert stored.attributes == '{"skills": ["support"]}'
        assert stored.date_updated == center.clock.now()


def test_setting_a_column_to_the_value_it_has_writes_nothing(center):
    worker = center.worker("Alice")
    updates = _updates(center.router)
    with center.router.transaction(center.ws) as tx:
        row = tx.get(Worker, worker)
        row.friendly_name = row.friendly_name
        row.active_reservations = int(row.active_reservations)
    assert updates == []


def test_values_are_stored_as_their_column_types_store_them(center, router):
    """Datetimes and booleans go through the dialect's own conversions: what the ORM reads back is equal."""
    worker = center.worker("Alice")
    later = center.clock.now().replace(microsecond=123456)
    with router.transaction(center.ws) as tx:
        channel = tx.session.scalars(select(WorkerChannel).where(WorkerChannel.worker_sid == worker)).first()
        channel.available = False
        channel.idle_since = later
        sid = channel.sid
    with router.read() as session:
        stored = session.get(WorkerChannel, sid)
        assert stored.available is False
        assert stored.idle_since == later


def test_a_refused_update_is_the_databases_error_and_rolls_everything_back(center, router):
    """A CHECK constraint (active_reservations >= 0) refuses the row: SQLAlchemy's IntegrityError, as from the
    ORM, and the transaction's other changes are not kept."""
    worker = center.worker("Alice", {"level": 1})
    with pytest.raises(exc.IntegrityError), router.transaction(center.ws) as tx:
        row = tx.get(Worker, worker)
        row.attributes = '{"level": 2}'
        row.active_reservations = -1
        tx.session.flush()
    with router.read() as session:
        stored = session.get(Worker, worker)
        assert stored.attributes == '{"level": 1}'
        assert stored.active_reservations == 0


def test_a_row_deleted_underneath_is_stale_data_not_a_silent_no_op(center, router):
    center.queue()
    center.workflow(default=center.queue("Waiting room", target_workers="1==2"))
    task = center.task({"type": "sales"})
    with pytest.raises(StaleDataError), router.transaction(center.ws) as tx:
        row = tx.get(Task, task)
        tx.session.execute(text("DELETE FROM tasks WHERE sid = :sid"), {"sid": task})
        row.priority = 5
        tx.session.flush()
    assert center.get_task(task).priority == 0  # rolled back: the task is still there, unchanged


def test_a_class_with_a_before_update_listener_is_written_by_the_orm_which_calls_it(center, router):
    worker = center.worker("Alice")
    with router.transaction(center.ws) as tx:
        tx.get(Worker, worker).friendly_name = "Alice B."  # written once by the hook: its plans are cached

    def stamp(_mapper, _connection, row):
        row.attributes = '{"stamped": true}'

    event.listen(Worker, "before_update", stamp)
    try:
        with router.transaction(center.ws) as tx:
            tx.get(Worker, worker).friendly_name = "Alice C."
    finally:
        event.remove(Worker, "before_update", stamp)
    with router.read() as session:
        stored = session.get(Worker, worker)
        assert (stored.friendly_name, stored.attributes) == ("Alice C.", '{"stamped": true}')


def test_a_worker_becoming_available_still_updates_their_channels(center, router):
    """`after_update` listeners run for rows written this way (the channels' copy of availability)."""
    worker = center.worker("Alice", available=False)
    center.set_activity(worker, "Available")
    with router.read() as session:
        copies = session.scalars(select(WorkerChannel.worker_available).where(WorkerChannel.worker_sid == worker))
        assert set(copies) == {True}


# -- new rows --------------------------------------------------------------------------------------

class _Undo(Exception):
    """Raised to roll back a transaction whose rows a test has read but must not keep."""


def _stored(tx, table, sid, *columns):
    return tx.session.execute(text(f"SELECT {', '.join(columns)} FROM {table} WHERE sid = :sid"), {"sid": sid}).one()


def test_a_new_row_is_one_insert_and_takes_its_columns_defaults(center, router):
    center.workflow(default=center.queue("Waiting room", target_workers="1==2"))
    template = center.task({"type": "sales"})
    inserts = _updates(router, "INSERT")
    with pytest.raises(_Undo), router.transaction(center.ws) as tx:
        task = _copy(tx.get(Task, template), sid=new_sid("WT"), priority=None)  # priority has default=0
        del task.__dict__["reason"]  # left out: no default, so NULL (as the ORM leaves it)
        tx.session.add(task)
        tx.session.flush()
        assert task in tx.session and task not in tx.session.new and not tx.session.dirty
        assert task.priority == 0 and task.reason is None  # the object holds what the row holds
        assert tuple(_stored(tx, "tasks", task.sid, "priority", "reason", "attributes")) == (
            0, None, '{"type": "sales"}')
        assert [statement.split("(")[0].strip() for statement, _ in inserts] == ["INSERT INTO tasks"]
        raise _Undo


def test_rows_are_inserted_referenced_tables_first_whatever_order_they_were_added_in(center, router):
    """A reservation added before its task: PostgreSQL checks the foreign key at once, so the task must go
    first, as the ORM would send it."""
    center.queue()
    center.workflow(default=center.queue("Sales"))
    worker = center.worker("Alice")
    template_task = center.task({"type": "sales"})
    template_reservation = center.pending_reservation(template_task).sid
    with pytest.raises(_Undo), router.transaction(center.ws) as tx:
        task = _copy(tx.get(Task, template_task), sid=new_sid("WT"))
        reservation = _copy(tx.get(Reservation, template_reservation), sid=new_sid("WR"), task_sid=task.sid)
        tx.session.add(reservation)
        tx.session.add(task)
        tx.session.flush()
        assert tuple(_stored(tx, "reservations", reservation.sid, "task_sid", "worker_sid")) == (task.sid, worker)
        raise _Undo


def test_a_new_row_the_orm_must_write_is_still_written(center, router):
    """An id the database generates, or a default the server computes: left to the ORM's unit of work."""
    worker = center.worker("Alice")
    with pytest.raises(_Undo), router.transaction(center.ws) as tx:
        message = OutboxMessage(workspace_sid=center.ws, kind="event", url="https://example.com/hook", payload="{}",
                                next_attempt_at=tx.now, created_at=tx.now)
        existing = next(row for row in tx.session.scalars(select(WorkerChannel)) if row.worker_sid == worker)
        task_channel = _copy(tx.get(TaskChannel, existing.task_channel_sid), sid=new_sid("TC"),
                             unique_name="fax", friendly_name="Fax")
        channel = _copy(existing, sid=new_sid("WC"), task_channel_sid=task_channel.sid)
        del channel.__dict__["worker_available"]  # a server default
        tx.session.add_all([message, channel, task_channel])
        tx.session.flush()
        assert message.id is not None and channel.worker_available is True
        assert tuple(_stored(tx, "worker_channels", channel.sid, "task_channel_sid")) == (task_channel.sid,)
        raise _Undo


def test_a_new_object_replacing_a_deleted_one_with_the_same_key_is_the_orms_row_switch(center, router):
    worker = center.worker("Alice", {"level": 1})
    with router.transaction(center.ws) as tx:
        old = tx.get(Worker, worker)
        replacement = _copy(old, attributes='{"level": 2}')
        tx.session.delete(old)
        tx.session.add(replacement)
    with router.read() as session:
        assert session.get(Worker, worker).attributes == '{"level": 2}'


def test_a_refused_insert_is_the_databases_error_and_rolls_everything_back(center, router):
    worker = center.worker("Alice", {"level": 1})
    with pytest.raises(exc.IntegrityError), router.transaction(center.ws) as tx:
        tx.get(Worker, worker).attributes = '{"level": 2}'
        tx.session.add(_copy(tx.get(Worker, worker), friendly_name="Alice again"))  # the same sid
        tx.session.flush()
    with router.read() as session:
        assert session.get(Worker, worker).attributes == '{"level": 1}'
        assert session.scalars(select(Worker.friendly_name)).all() == ["Alice"]


def test_insert_and_persistence_listeners_hear_of_each_new_row(center, router):
    center.workflow(default=center.queue("Waiting room", target_workers="1==2"))
    heard = []

    def after_insert(_mapper, _connection, task):
        heard.append(("after_insert", task.sid))

    def pending_to_persistent(_session, task):
        heard.append(("pending_to_persistent", task.sid))

    event.listen(Task, "after_insert", after_insert)
    event.listen(router._write_sessions, "pending_to_persistent", pending_to_persistent)
    try:
        task = center.task({"type": "sales"})
    finally:
        event.remove(Task, "after_insert", after_insert)
        event.remove(router._write_sessions, "pending_to_persistent", pending_to_persistent)
    assert heard == [("after_insert", task), ("pending_to_persistent", task)]
