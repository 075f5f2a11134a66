"""Changed rows are written by `callcenter.routing.flush`, not the ORM's unit of work: what it writes, and
what it does when the database refuses or the row is gone."""

from __future__ import annotations

import pytest
from sqlalchemy import event, exc, select, text
from sqlalchemy.orm.exc import StaleDataError

from callcenter.routing.models import Task, Worker, WorkerChannel


def _updates(router):
    """Every UPDATE the writer engine sends from now on, as (statement, parameters)."""
    seen = []

    def record(_connection, _cursor, statement, parameters, _context, _executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append((" ".join(statement.split()), parameters))

    event.listen(router.writer, "before_cursor_execute", record)
    return seen


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


def test_a_worker_becoming_available_still_updates_their_channels(center, router):
    """`after_update` listeners run for rows written this way (the channels' copy of availability)."""
    worker = center.worker("Alice", available=False)
    center.set_activity(worker, "Available")
    with router.read() as session:
        copies = session.scalars(select(WorkerChannel.worker_available).where(WorkerChannel.worker_sid == worker))
        assert set(copies) == {True}
