"""A small contact center to build scenarios on: `center.queue(...)`, `center.worker(...)`, `center.task(...)`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from callcenter.routing import queues, reservations, tasks, workers, workflows, workspaces
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Activity, Event, Reservation, Task, Worker, WorkerChannel

ACCOUNT = "AC" + "0" * 32


class Center:
    def __init__(self, router, clock, **workspace_options):
        self.router = router
        self.clock = clock
        self.ws = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Test Center",
                                              **workspace_options).sid
        with router.read() as session:
            self.activities = {a.friendly_name: a.sid
                               for a in session.scalars(select(Activity).where(Activity.workspace_sid == self.ws))}
        self.available = self.activities["Available"]
        self.offline = self.activities["Offline"]
        self.unavailable = self.activities["Unavailable"]

    # -- building ---------------------------------------------------------------------------------
    def activity(self, name, available):
        sid = workspaces.create_activity(self.router, self.ws, friendly_name=name, available=available).sid
        self.activities[name] = sid
        return sid

    def queue(self, name="Everyone", target_workers="1==1", **options):
        return queues.create_task_queue(self.router, self.ws, friendly_name=name, target_workers=target_workers,
                                        **options).sid

    def workflow(self, filters=None, default=None, name="Routing", **options):
        config = {"task_routing": {"filters": filters or []}}
        if default:
            config["task_routing"]["default_filter"] = {"queue": default} if isinstance(default, str) else default
        return workflows.create_workflow(self.router, self.ws, friendly_name=name,
                                         configuration=json.dumps(config), **options).sid

    def worker(self, name, attributes=None, available=True, **options):
        activity = self.available if available else self.offline
        return workers.create_worker(self.router, self.ws, friendly_name=name, activity_sid=activity,
                                     attributes=json.dumps(attributes or {}), **options).sid

    def task(self, attributes=None, **options):
        return tasks.create_task(self.router, self.ws, attributes=json.dumps(attributes or {}), **options).sid

    # -- acting -----------------------------------------------------------------------------------
    def set_activity(self, worker_sid, activity_name, **options):
        return workers.update_worker(self.router, self.ws, worker_sid,
                                     activity_sid=self.activities[activity_name], **options)

    def accept(self, reservation_sid):
        return reservations.update_reservation(self.router, self.ws, reservation_sid, reservation_status="accepted")

    def reject(self, reservation_sid, **options):
        return reservations.update_reservation(self.router, self.ws, reservation_sid, reservation_status="rejected",
                                               **options)

    def complete(self, task_sid, reason="done"):
        return tasks.update_task(self.router, self.ws, task_sid, assignment_status="completed", reason=reason)

    def cancel(self, task_sid, reason="caller hung up"):
        return tasks.update_task(self.router, self.ws, task_sid, assignment_status="canceled", reason=reason)

    def advance(self, seconds):
        self.clock.advance(seconds)
        return self.router.run_due_timers()

    # -- looking ----------------------------------------------------------------------------------
    def get_task(self, sid):
        with self.router.read() as session:
            return session.get(Task, sid)

    def get_worker(self, sid):
        with self.router.read() as session:
            return session.get(Worker, sid)

    def activity_name(self, worker_sid):
        with self.router.read() as session:
            worker = session.get(Worker, worker_sid)
            return session.get(Activity, worker.activity_sid).friendly_name

    def channel(self, worker_sid, channel="voice"):
        with self.router.read() as session:
            from callcenter.routing.models import TaskChannel

            tc = session.scalar(select(TaskChannel).where(TaskChannel.workspace_sid == self.ws,
                                                          TaskChannel.unique_name == channel))
            return session.scalar(select(WorkerChannel).where(WorkerChannel.worker_sid == worker_sid,
                                                              WorkerChannel.task_channel_sid == tc.sid))

    def reservations(self, task_sid=None, worker_sid=None, status=None):
        with self.router.read() as session:
            query = select(Reservation).where(Reservation.workspace_sid == self.ws)
            if task_sid:
                query = query.where(Reservation.task_sid == task_sid)
            if worker_sid:
                query = query.where(Reservation.worker_sid == worker_sid)
            if status:
                query = query.where(Reservation.reservation_status == status)
            return list(session.scalars(query.order_by(Reservation.date_created, Reservation.sid)))

    def pending_reservation(self, task_sid):
        found = self.reservations(task_sid=task_sid, status="pending")
        assert len(found) == 1, f"expected one pending reservation, found {len(found)}"
        return found[0]

    def event_types(self, resource_sid=None, task_sid=None):
        with self.router.read() as session:
            query = select(Event.event_type).where(Event.workspace_sid == self.ws).order_by(Event.id)
            if resource_sid:
                query = query.where(Event.resource_sid == resource_sid)
            if task_sid:
                query = query.where(Event.task_sid == task_sid)
            return list(session.scalars(query))

    def assert_consistent(self):
        assert check_invariants(self.router, self.ws) == []


def on_a_call_with_a_chat_waiting(center) -> tuple[str, str]:
    """In a single-tasking center: alice has accepted a voice task, and a chat task waits. Returns both sids."""
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    call = center.task(task_channel="voice")
    center.accept(center.pending_reservation(call).sid)
    return alice, center.task(task_channel="chat")


@pytest.fixture
def center(router, clock):
    center = Center(router, clock)
    yield center
    center.assert_consistent()


# -- "changes nothing" and event lookups (lifecycle, timer, event and bad-input scenarios) -----------

def snapshot(center) -> dict:
    """Every row the engine keeps for the workspace, and how many events and outbox messages it has.

    Two equal snapshots mean an operation changed nothing: no task, reservation, worker, channel,
    queue, workflow, activity or timer row, and no event or callback was written.
    """
    from sqlalchemy import func

    from callcenter.routing.models import OutboxMessage, TaskQueue, Timer, Workflow

    def rows(session, model):
        table = model.__table__
        found = session.scalars(select(model).where(model.workspace_sid == center.ws)
                                .order_by(*table.primary_key.columns))
        return [{column.key: getattr(row, column.key) for column in table.columns} for row in found]

    with center.router.read() as session:
        state = {model.__tablename__: rows(session, model)
                 for model in (Task, Reservation, Worker, WorkerChannel, TaskQueue, Workflow, Activity, Timer)}
        for model in (Event, OutboxMessage):
            state[model.__tablename__] = session.scalar(
                select(func.count()).select_from(model).where(model.workspace_sid == center.ws))
    return state


@pytest.fixture
def unchanged(center):
    """`with unchanged(): ...` fails if the block changed any row of the workspace or wrote an event."""
    from contextlib import contextmanager

    @contextmanager
    def check():
        before = snapshot(center)
        yield
        after = snapshot(center)
        for table in before:
            assert after[table] == before[table], f"{table} changed"

    return check


@pytest.fixture
def events(center):
    """`events("task.canceled", task_sid=...)`: the matching events' `event_data`, oldest first."""

    def find(event_type=None, *, task_sid=None, resource_sid=None) -> list[dict]:
        with center.router.read() as session:
            query = select(Event).where(Event.workspace_sid == center.ws).order_by(Event.id)
            if event_type:
                query = query.where(Event.event_type == event_type)
            if task_sid:
                query = query.where(Event.task_sid == task_sid)
            if resource_sid:
                query = query.where(Event.resource_sid == resource_sid)
            return [json.loads(event.event_data) for event in session.scalars(query)]

    return find
