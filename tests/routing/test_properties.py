"""Property-based test: random operations on a small contact center never break the engine's invariants.

A hypothesis state machine builds a workspace with three queues (one LIFO, one reserving two
workers at a time), a workflow with two filters, timed targets, a target expression and a
default filter, and a handful of workers with random skills and capacities. Its rules create,
update, cancel, wrap, complete and delete tasks, answer reservations, move workers between
activities, change their attributes and channels, and move the clock. After every step
`check_invariants` must report nothing. An operation the engine refuses must change nothing.

Sizes come from a hypothesis profile named by CALLCENTER_HYPOTHESIS_PROFILE:
`routing-properties` (the default, about 60 examples of 40 steps), `routing-properties-ci`
(fewer, for a slow CI runner) or `routing-properties-thorough` (many more, to hunt for bugs).
The regression tests at the end replay, by hand, the bugs this machine found.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from callcenter.routing import (
    FakeClock,
    Router,
    RoutingError,
    queues,
    reservations,
    sids,
    tasks,
    workers,
    workflows,
    workspaces,
)
from callcenter.routing.errors import IllegalState, ReservationNotPending
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import (
    TASK_STATUSES,
    Activity,
    Event,
    Reservation,
    Task,
    TaskChannel,
    Timer,
    Worker,
    WorkerChannel,
)
from tests.conftest import POSTGRES_URL, _drop_postgres_database, _postgres_database

ACCOUNT = "AC" + "0" * 32
RESERVATION_TIMEOUT = 120

settings.register_profile("routing-properties", max_examples=30, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("routing-properties-ci", max_examples=25, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("routing-properties-thorough", max_examples=1000, stateful_step_count=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
SETTINGS = settings.get_profile(os.environ.get("CALLCENTER_HYPOTHESIS_PROFILE", "routing-properties"))
POSTGRES_SETTINGS = settings(SETTINGS, max_examples=max(3, SETTINGS.max_examples // 6))

SKILLS = st.sampled_from([["sales"], ["support"], ["sales", "support"], []])
LEVELS = st.integers(min_value=0, max_value=3)
WORKER_ATTRIBUTES = st.fixed_dictionaries({"skills": SKILLS, "level": LEVELS})
TASK_ATTRIBUTES = st.fixed_dictionaries(
    {"type": st.sampled_from(["sales", "support", "billing"])},
    optional={"level": LEVELS, "vip": st.booleans()},
)
CHANNELS = st.sampled_from(["voice", "chat", "default"])
ACTIVITY_NAMES = st.sampled_from(["Available", "Offline", "Unavailable", "Break"])
STARTS_AVAILABLE = st.sampled_from([True, True, True, False])


class SequentialEntropy:
    """Stands in for the sid module's randomness: sids in creation order make every example replayable.

    Matching breaks ties between equally idle workers by sid; random sids would let the same steps
    pick different workers on a replay, and hypothesis could neither shrink nor reproduce a failure.
    """

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self, size: int) -> bytes:
        self.issued += 1
        return self.issued.to_bytes(size, "big")


class ErrorLog(logging.Handler):
    """Collects what the engine logs at ERROR: a timer that failed to fire is swallowed and logged."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


class ContactCenterMachine(RuleBasedStateMachine):
    """Random traffic through one workspace; `database` yields a fresh database URL and cleans it up."""

    @staticmethod
    def database():
        directory = tempfile.mkdtemp(prefix="callcenter-properties-")
        try:
            yield f"sqlite:///{directory}/callcenter.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def __init__(self) -> None:
        super().__init__()
        self._entropy = sids.entropy
        sids.entropy = SequentialEntropy()
        self.errors = ErrorLog()
        logging.getLogger("callcenter.routing").addHandler(self.errors)
        self._database = self.database()
        self.router = None
        try:
            self.clock = FakeClock()
            self.router = Router(next(self._database), clock=self.clock)
            self.router.create_schema()
            self._build_center()
        except BaseException:
            self.teardown()
            raise
        self.worker_sids: list[str] = []
        self.task_sids: list[str] = []

    def _build_center(self) -> None:
        router = self.router
        self.ws = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Property Center").sid
        workspaces.create_activity(router, self.ws, friendly_name="Break", available=False)
        with router.read() as session:
            self.activities = {a.friendly_name: a.sid for a in
                               session.scalars(select(Activity).where(Activity.workspace_sid == self.ws))}
        self.sales = queues.create_task_queue(router, self.ws, friendly_name="Sales",
                                              target_workers="skills HAS 'sales'", max_reserved_workers=2).sid
        self.support = queues.create_task_queue(router, self.ws, friendly_name="Support",
                                                target_workers="skills HAS 'support'").sid
        self.overflow = queues.create_task_queue(router, self.ws, friendly_name="Overflow",
                                                 target_workers="level >= 1", task_order="LIFO").sid
        configuration = {"task_routing": {
            "filters": [
                {"filter_friendly_name": "Sales", "expression": "type == 'sales'",
                 "targets": [{"queue": self.sales, "timeout": 90, "priority": 5,
                              "expression": "worker.level >= task.level OR task.vip == true"},
                             {"queue": self.overflow, "timeout": 240}]},
                {"filter_friendly_name": "Support", "expression": "type == 'support' OR vip == true",
                 "targets": [{"queue": self.support, "timeout": 120},
                             {"queue": self.overflow}]},
            ],
            "default_filter": {"queue": self.overflow},
        }}
        self.workflow = workflows.create_workflow(router, self.ws, friendly_name="Routing",
                                                  configuration=json.dumps(configuration),
                                                  task_reservation_timeout=RESERVATION_TIMEOUT).sid

    def teardown(self) -> None:
        if self.router is not None:
            self.router.dispose()
        self._database.close()
        logging.getLogger("callcenter.routing").removeHandler(self.errors)
        sids.entropy = self._entropy

    # -- building the staff --------------------------------------------------------------------------
    @initialize(staff=st.lists(st.tuples(WORKER_ATTRIBUTES, STARTS_AVAILABLE, st.integers(1, 3), st.integers(1, 3)),
                               min_size=3, max_size=5))
    def hire_workers(self, staff):
        for number, (attributes, available, voice, chat) in enumerate(staff):
            activity = self.activities["Available" if available else "Offline"]
            sid = workers.create_worker(self.router, self.ws, friendly_name=f"agent{number}", activity_sid=activity,
                                        attributes=json.dumps(attributes)).sid
            workers.update_worker_channel(self.router, self.ws, sid, "voice", capacity=voice)
            workers.update_worker_channel(self.router, self.ws, sid, "chat", capacity=chat)
            self.worker_sids.append(sid)

    # -- looking -------------------------------------------------------------------------------------
    def _tasks(self, *statuses: str) -> list[Task]:
        """Tasks still in the database with one of `statuses`, in creation order (replayable draws)."""
        with self.router.read() as session:
            found = {t.sid: t for t in session.scalars(select(Task).where(Task.workspace_sid == self.ws,
                                                                          Task.assignment_status.in_(statuses)))}
        return [found[sid] for sid in self.task_sids if sid in found]

    def _reservations(self, *statuses: str) -> list[Reservation]:
        with self.router.read() as session:
            found = list(session.scalars(select(Reservation).where(Reservation.workspace_sid == self.ws,
                                                                   Reservation.reservation_status.in_(statuses))))
        order = {sid: n for n, sid in enumerate(self.task_sids)}
        workers_order = {sid: n for n, sid in enumerate(self.worker_sids)}
        return sorted(found, key=lambda r: (order[r.task_sid], workers_order[r.worker_sid], r.date_created, r.sid))

    def _has_tasks(self, *statuses: str) -> bool:
        with self.router.read() as session:
            return bool(session.scalar(select(func.count()).select_from(Task).where(
                Task.workspace_sid == self.ws, Task.assignment_status.in_(statuses or TASK_STATUSES))))

    def _has_reservations(self, *statuses: str) -> bool:
        with self.router.read() as session:
            return bool(session.scalar(select(func.count()).select_from(Reservation).where(
                Reservation.workspace_sid == self.ws, Reservation.reservation_status.in_(statuses))))

    @staticmethod
    def _draw(data, rows, label):
        """One of `rows`, shown by sid in a failing example so that it can be replayed by hand."""
        by_sid = {row.sid: row for row in rows}
        return by_sid[data.draw(st.sampled_from(list(by_sid)), label=label)]

    def _get(self, model, sid):
        with self.router.read() as session:
            return session.get(model, sid)

    def snapshot(self) -> tuple:
        """What a refused operation must leave exactly as it was."""
        with self.router.read() as session:
            ws = self.ws
            return (
                Counter(session.scalars(select(Task.assignment_status).where(Task.workspace_sid == ws))),
                Counter(session.scalars(select(Reservation.reservation_status)
                                        .where(Reservation.workspace_sid == ws))),
                session.scalar(select(func.count()).select_from(Event).where(Event.workspace_sid == ws)),
                session.scalar(select(func.count()).select_from(Timer).where(Timer.workspace_sid == ws)),
                sorted(session.execute(select(Worker.sid, Worker.activity_sid, Worker.attributes, Worker.version)
                                       .where(Worker.workspace_sid == ws)).all()),
                sorted(session.execute(select(WorkerChannel.sid, WorkerChannel.capacity, WorkerChannel.available,
                                              WorkerChannel.reserved_tasks, WorkerChannel.assigned_tasks)
                                       .where(WorkerChannel.workspace_sid == ws)).all()),
                sorted(session.execute(select(Task.sid, Task.attributes, Task.priority, Task.task_queue_sid,
                                              Task.version).where(Task.workspace_sid == ws)).all()),
            )

    def refused(self, operation, *args, **kwargs) -> RoutingError | None:
        """Run `operation`; when the engine refuses it, assert that the refusal changed nothing."""
        before = self.snapshot()
        try:
            operation(*args, **kwargs)
        except RoutingError as err:
            assert self.snapshot() == before, f"{type(err).__name__} ({err}) left changes behind"
            return err
        return None

    # -- tasks ---------------------------------------------------------------------------------------
    @rule(attributes=TASK_ATTRIBUTES, channel=CHANNELS, priority=st.none() | st.integers(0, 10),
          ttl=st.none() | st.integers(30, 600))
    def create_task(self, attributes, channel, priority, ttl):
        task = tasks.create_task(self.router, self.ws, attributes=json.dumps(attributes), workflow_sid=self.workflow,
                                 task_channel=channel, priority=priority, timeout=ttl)
        self.task_sids.append(task.sid)

    @precondition(lambda self: self._has_tasks("pending", "reserved"))
    @rule(data=st.data(), attributes=TASK_ATTRIBUTES, priority=st.none() | st.integers(0, 10))
    def update_waiting_task(self, data, attributes, priority):
        waiting = self._tasks("pending", "reserved")
        task = self._draw(data, waiting, "task")
        change_attributes = data.draw(st.booleans(), label="change attributes")
        tasks.update_task(self.router, self.ws, task.sid,
                          attributes=json.dumps(attributes) if change_attributes else None,
                          priority=None if change_attributes else priority)

    @precondition(lambda self: self._has_tasks())
    @rule(data=st.data())
    def cancel_task(self, data):
        candidates = self._tasks(*TASK_STATUSES)
        task = self._draw(data, candidates, "task")
        error = self.refused(tasks.update_task, self.router, self.ws, task.sid, assignment_status="canceled",
                             reason="caller hung up")
        if task.assignment_status in ("pending", "reserved"):
            assert error is None, f"canceling a waiting task was refused: {error}"
            assert self._get(Task, task.sid).assignment_status == "canceled"
        else:
            assert isinstance(error, IllegalState), f"canceling a {task.assignment_status} task was not refused"

    @precondition(lambda self: self._has_tasks("assigned", "wrapping", "reserved"))
    @rule(data=st.data())
    def wrap_task(self, data):
        candidates = self._tasks("assigned", "wrapping", "reserved")
        task = self._draw(data, candidates, "task")
        error = self.refused(tasks.update_task, self.router, self.ws, task.sid, assignment_status="wrapping")
        if task.assignment_status == "assigned":
            assert error is None, f"wrapping an assigned task was refused: {error}"
            assert self._get(Task, task.sid).assignment_status == "wrapping"
        else:
            assert isinstance(error, IllegalState), f"wrapping a {task.assignment_status} task was not refused"

    @precondition(lambda self: self._has_tasks("assigned", "wrapping", "pending", "reserved"))
    @rule(data=st.data())
    def complete_task(self, data):
        candidates = self._tasks("assigned", "wrapping", "pending", "reserved")
        task = self._draw(data, candidates, "task")
        error = self.refused(tasks.update_task, self.router, self.ws, task.sid, assignment_status="completed",
                             reason="done")
        if task.assignment_status in ("assigned", "wrapping"):
            assert error is None, f"completing a {task.assignment_status} task was refused: {error}"
            assert self._get(Task, task.sid).assignment_status == "completed"
        else:
            assert isinstance(error, IllegalState), f"completing a {task.assignment_status} task was not refused"

    @precondition(lambda self: self._has_tasks())
    @rule(data=st.data())
    def delete_task(self, data):
        candidates = self._tasks(*TASK_STATUSES)
        task = self._draw(data, candidates, "task")
        tasks.delete_task(self.router, self.ws, task.sid)
        assert self._get(Task, task.sid) is None

    # -- reservations --------------------------------------------------------------------------------
    @precondition(lambda self: self._has_reservations("pending"))
    @rule(data=st.data())
    def accept_reservation(self, data):
        pending = self._reservations("pending")
        reservation = self._draw(data, pending, "reservation")
        reservations.update_reservation(self.router, self.ws, reservation.sid, reservation_status="accepted")
        assert self._get(Reservation, reservation.sid).reservation_status == "accepted"
        assert self._get(Task, reservation.task_sid).assignment_status == "assigned"

    @precondition(lambda self: self._has_reservations("pending"))
    @rule(data=st.data(), activity=st.none() | ACTIVITY_NAMES)
    def reject_reservation(self, data, activity):
        pending = self._reservations("pending")
        reservation = self._draw(data, pending, "reservation")
        activity_sid = self.activities[activity] if activity else None
        error = self.refused(reservations.update_reservation, self.router, self.ws, reservation.sid,
                             reservation_status="rejected", worker_activity_sid=activity_sid)
        if activity_sid is None:
            assert error is None, f"rejecting a pending reservation was refused: {error}"
        if error is None:
            assert self._get(Reservation, reservation.sid).reservation_status == "rejected"
            if activity_sid:
                assert self._get(Worker, reservation.worker_sid).activity_sid == activity_sid

    @precondition(lambda self: self._has_reservations("rejected", "timeout", "canceled", "rescinded", "completed"))
    @rule(data=st.data(), status=st.sampled_from(["accepted", "rejected"]))
    def answer_a_decided_reservation(self, data, status):
        decided = self._reservations("rejected", "timeout", "canceled", "rescinded", "completed")
        reservation = self._draw(data, decided, "reservation")
        error = self.refused(reservations.update_reservation, self.router, self.ws, reservation.sid,
                             reservation_status=status)
        assert isinstance(error, ReservationNotPending), f"{status} on a {reservation.reservation_status} " \
                                                         "reservation was not refused"

    # -- workers -------------------------------------------------------------------------------------
    @rule(data=st.data(), activity=ACTIVITY_NAMES, reject_pending=st.booleans())
    def change_activity(self, data, activity, reject_pending):
        worker_sid = data.draw(st.sampled_from(self.worker_sids), label="worker")
        activity_sid = self.activities[activity]
        moves = self._get(Worker, worker_sid).activity_sid != activity_sid
        has_pending = any(r.worker_sid == worker_sid for r in self._reservations("pending"))
        error = self.refused(workers.update_worker, self.router, self.ws, worker_sid, activity_sid=activity_sid,
                             reject_pending_reservations=reject_pending)
        goes_available = activity == "Available"
        should_refuse = moves and (reject_pending if goes_available else has_pending and not reject_pending)
        if should_refuse:
            assert isinstance(error, RoutingError), f"moving a worker to {activity} was not refused"
        else:
            assert error is None, f"moving a worker to {activity} was refused: {error}"
            assert self._get(Worker, worker_sid).activity_sid == activity_sid
            if not goes_available:
                assert not any(r.worker_sid == worker_sid for r in self._reservations("pending"))

    @rule(data=st.data(), attributes=WORKER_ATTRIBUTES)
    def change_worker_attributes(self, data, attributes):
        worker_sid = data.draw(st.sampled_from(self.worker_sids), label="worker")
        workers.update_worker(self.router, self.ws, worker_sid, attributes=json.dumps(attributes))

    @rule(data=st.data(), channel=st.sampled_from(["voice", "chat", "default"]), more=st.integers(0, 2),
          available=st.none() | st.booleans())
    def change_worker_channel(self, data, channel, more, available):
        worker_sid = data.draw(st.sampled_from(self.worker_sids), label="worker")
        with self.router.read() as session:
            current = session.scalar(
                select(WorkerChannel.capacity).join(TaskChannel, TaskChannel.sid == WorkerChannel.task_channel_sid)
                .where(WorkerChannel.worker_sid == worker_sid, TaskChannel.unique_name == channel))
        workers.update_worker_channel(self.router, self.ws, worker_sid, channel, capacity=current + more,
                                      available=available)

    # -- time ----------------------------------------------------------------------------------------
    @rule(seconds=st.integers(min_value=1, max_value=200))
    def advance_clock(self, seconds):
        self.clock.advance(seconds)
        self.router.run_due_timers()
        with self.router.read() as session:
            due = session.scalars(select(Timer.kind).where(Timer.due_at <= self.clock.now())).all()
        assert not due, f"timers still due after a sweep: {due}"

    # -- what must always hold -----------------------------------------------------------------------
    @invariant()
    def engine_is_consistent(self):
        assert check_invariants(self.router, self.ws) == []

    @invariant()
    def no_timer_failed(self):
        assert self.errors.messages == []


class PostgresContactCenterMachine(ContactCenterMachine):
    @staticmethod
    def database():
        url = _postgres_database()
        try:
            yield url
        finally:
            _drop_postgres_database(url)


TestContactCenterOnSqlite = ContactCenterMachine.TestCase
TestContactCenterOnSqlite.settings = SETTINGS


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL not configured: set CALLCENTER_TEST_POSTGRES_URL (e.g. "
                                             "postgresql+psycopg://postgres@127.0.0.1:5432/test)")
def test_contact_center_on_postgresql():
    run_state_machine_as_test(PostgresContactCenterMachine, settings=POSTGRES_SETTINGS)


# -- regressions found by the machine ------------------------------------------------------------------

def test_deleting_a_reserved_task_does_not_offer_it_again(center):
    queue = center.queue()
    center.workflow(default=queue)
    alice = center.worker("alice")
    task = center.task({"type": "support"})
    assert center.pending_reservation(task).worker_sid == alice
    tasks.delete_task(center.router, center.ws, task)
    assert center.get_task(task) is None
    assert center.reservations(worker_sid=alice) == []
    assert center.channel(alice, "default").reserved_tasks == 0


def test_a_timer_sweep_does_not_claim_a_timer_created_during_the_sweep(center):
    # SQLite reuses the id of the newest timer row once it is deleted. The sweep lists what is due,
    # then fires it row by row: the first timeout rejected Bob's other offer (deleting its timer, the
    # newest row) and offered that task to Carol, whose new timer took the freed id. Claiming by id
    # alone then deleted Carol's timer, and her reservation stayed pending forever.
    queue = center.queue()
    center.workflow(default=queue, task_reservation_timeout=60)
    bob = center.worker("bob")
    workers.update_worker_channel(center.router, center.ws, bob, "default", capacity=2)
    carol = center.worker("carol", available=False)
    first = center.task({"n": 1})
    center.advance(10)
    second = center.task({"n": 2})
    center.set_activity(carol, "Available")
    assert {r.task_sid for r in center.reservations(worker_sid=bob, status="pending")} == {first, second}

    center.advance(60)

    offered = center.reservations(worker_sid=carol, status="pending")
    assert [r.task_sid for r in offered] == [first]
    with center.router.read() as session:
        timer = session.scalar(select(Timer).where(Timer.kind == "reservation_timeout",
                                                   Timer.subject_sid == offered[0].sid))
    assert timer is not None


def test_rejecting_one_of_two_offers_offers_the_task_to_the_next_worker(center):
    queue = center.queue(max_reserved_workers=2)
    center.workflow(default=queue)
    staff = {center.worker("alice"), center.worker("bob"), center.worker("carol")}
    task = center.task({"type": "sales"})
    offers = center.reservations(task_sid=task, status="pending")
    assert len(offers) == 2
    rejected, kept = offers
    (waiting,) = staff - {rejected.worker_sid, kept.worker_sid}

    center.reject(rejected.sid)

    assert {r.worker_sid for r in center.reservations(task_sid=task, status="pending")} == {kept.worker_sid, waiting}
