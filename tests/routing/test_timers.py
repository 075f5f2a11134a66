"""Timers moved by the FakeClock: reservation timeouts, task TTL, assignment limits, retention, restarts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from callcenter.routing import Router, tasks, workspaces


def staffed(center, *names, **workflow_options):
    """One queue of everyone, a workflow to it, and the named workers, the first one idle longest."""
    queue = center.queue()
    center.workflow(default=queue, **workflow_options)
    created = []
    for name in names:
        created.append(center.worker(name))
        center.clock.advance(1)
    return created


@pytest.fixture
def restarted(center):
    """A second Router on the same database: another process, or this one after a restart."""
    router = Router(center.router.database_url, clock=center.clock)
    yield router
    router.dispose()


# -- reservation timeout ---------------------------------------------------------------------------

def test_reservation_times_out_after_120_seconds_by_default(center):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.advance(119)
    assert center.reservations(status="pending")[0].sid == reservation
    center.advance(1)
    assert center.reservations(status="timeout")[0].sid == reservation


def test_reservation_timeout_follows_the_workflow_task_reservation_timeout(center):
    staffed(center, "alice", task_reservation_timeout=30)
    task = center.task()
    center.advance(29)
    assert center.get_task(task).assignment_status == "reserved"
    center.advance(1)
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["timeout"]


def test_reservation_timeout_moves_worker_to_timeout_activity(center):
    missed = center.activity("Missed Call", available=False)
    workspaces.update_workspace(center.router, center.ws, timeout_activity_sid=missed)
    (alice,) = staffed(center, "alice")
    center.task()
    center.advance(120)
    assert center.activity_name(alice) == "Missed Call"


def test_reservation_timeout_to_an_available_timeout_activity_times_out_and_routes_on(center):
    """An available TimeoutActivity is allowed: the offer still times out (the worker keeps other offers)."""
    ready = center.activity("Ready", available=True)
    workspaces.update_workspace(center.router, center.ws, timeout_activity_sid=ready)
    alice, bob = staffed(center, "alice", "bob", task_reservation_timeout=10)
    task = center.task()
    assert center.pending_reservation(task).worker_sid == alice
    center.advance(10)
    assert [r.reservation_status for r in center.reservations(task_sid=task, worker_sid=alice)] == ["timeout"]
    assert center.activity_name(alice) == "Ready"
    assert center.pending_reservation(task).worker_sid == bob


def test_a_failing_timer_is_put_off_and_holds_back_no_other_timer(center, monkeypatch):
    """However many timers fail, the due ones behind them still fire: a failure is tried again a minute later."""
    from callcenter.routing import timers

    def broken(tx, subject_sid):
        raise RuntimeError("a handler bug")

    monkeypatch.setitem(timers.HANDLERS, "broken", broken)
    staffed(center)
    with center.router.transaction(center.ws) as tx:
        for n in range(3):
            tx.schedule("broken", f"XX{n:032d}", tx.now)
    center.clock.advance(1)
    task = center.task(timeout=5)  # its TTL comes due after the broken timers
    center.clock.advance(5)
    for _ in range(4):  # one timer per sweep: the three broken ones first, then the TTL
        center.router.run_due_timers(limit=1)
    assert center.get_task(task).assignment_status == "canceled"
    assert broken_due(center) == [center.clock.now() + timedelta(seconds=60)] * 3
    center.clock.advance(60)
    assert center.router.run_due_timers() == 0  # tried again: failing still, put off again, never lost
    assert broken_due(center) == [center.clock.now() + timedelta(seconds=60)] * 3


def test_a_timer_failing_on_the_databases_own_trouble_stays_due_for_the_next_sweep(center, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from callcenter.routing import timers

    def locked(tx, subject_sid):
        raise OperationalError("UPDATE tasks ...", {}, Exception("database is locked"))

    monkeypatch.setitem(timers.HANDLERS, "broken", locked)
    staffed(center)
    with center.router.transaction(center.ws) as tx:
        tx.schedule("broken", "XX" + "0" * 32, tx.now)
    due = broken_due(center)
    center.clock.advance(1)
    assert center.router.run_due_timers() == 0
    assert broken_due(center) == due  # not put off: tried again at the next sweep


def broken_due(center):
    from sqlalchemy import select

    from callcenter.routing.models import Timer

    with center.router.read() as session:
        return list(session.scalars(select(Timer.due_at).where(Timer.kind == "broken")))


def test_reservation_timeout_returns_the_task_to_pending(center):
    staffed(center, "alice")
    task = center.task()
    center.advance(120)
    assert center.get_task(task).assignment_status == "pending"
    assert center.event_types(task_sid=task)[-1] == "reservation.timeout"


def test_reservation_timeout_reroutes_the_task_to_the_next_worker(center):
    _, bob = staffed(center, "alice", "bob")
    task = center.task()
    center.advance(120)
    assert center.pending_reservation(task).worker_sid == bob
    assert center.get_task(task).assignment_status == "reserved"


def test_next_reservation_gets_a_full_timeout_of_its_own(center):
    staffed(center, "alice", "bob")
    task = center.task()
    center.advance(120)
    second = center.pending_reservation(task).sid
    center.advance(119)
    assert center.pending_reservation(task).sid == second
    center.advance(1)
    assert center.get_task(task).assignment_status == "pending"


def test_answered_reservation_does_not_time_out(center):
    staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    assert center.advance(3600) == 0
    assert center.get_task(task).assignment_status == "assigned"


# -- task TTL --------------------------------------------------------------------------------------

def test_task_ttl_cancels_a_pending_task_with_reason_task_ttl_exceeded(center, events):
    staffed(center)
    task = center.task(timeout=60)
    center.advance(59)
    assert center.get_task(task).assignment_status == "pending"
    center.advance(1)
    assert center.get_task(task).assignment_status == "canceled"
    assert center.get_task(task).reason == "Task TTL Exceeded"
    assert events("task.canceled", task_sid=task)[0]["task_canceled_reason"] == "Task TTL Exceeded"


def test_task_ttl_cancels_a_reserved_task_and_its_reservation(center):
    (alice,) = staffed(center, "alice")
    task = center.task(timeout=60)
    center.advance(60)
    assert center.get_task(task).assignment_status == "canceled"
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["canceled"]
    assert center.channel(alice, "default").reserved_tasks == 0


def test_default_task_ttl_is_one_day(center):
    staffed(center)
    task = center.task()
    center.advance(86_399)
    assert center.get_task(task).assignment_status == "pending"
    center.advance(1)
    assert center.get_task(task).reason == "Task TTL Exceeded"


def test_task_ttl_does_not_cancel_an_assigned_task(center):
    staffed(center, "alice")
    task = center.task(timeout=60)
    center.accept(center.pending_reservation(task).sid)
    center.advance(60)
    assert center.get_task(task).assignment_status == "assigned"


# -- max assignment count --------------------------------------------------------------------------

def test_task_is_canceled_when_it_reaches_the_max_assignment_count(center, monkeypatch):
    monkeypatch.setattr("callcenter.routing.reservations.MAX_ASSIGNMENT_COUNT", 2)
    staffed(center, "alice", "bob")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    assert center.get_task(task).assignment_status == "reserved"
    center.reject(center.pending_reservation(task).sid)
    assert center.get_task(task).assignment_status == "canceled"
    assert center.get_task(task).reason == "Task TTL Exceeded or Max assignment count exceeded"


def test_timeouts_count_toward_the_max_assignment_count(center, monkeypatch):
    monkeypatch.setattr("callcenter.routing.reservations.MAX_ASSIGNMENT_COUNT", 1)
    staffed(center, "alice", "bob")
    task = center.task()
    center.advance(120)
    assert center.get_task(task).assignment_status == "canceled"
    assert center.reservations(task_sid=task, status="pending") == []


def test_a_multi_reservation_batch_counts_once_toward_the_max_assignment_count(center, monkeypatch):
    monkeypatch.setattr("callcenter.routing.reservations.MAX_ASSIGNMENT_COUNT", 2)
    queue = center.queue(max_reserved_workers=2)
    center.workflow(default=queue)
    center.worker("alice")
    center.worker("bob")
    task = center.task()
    for reservation in center.reservations(task_sid=task, status="pending"):
        center.reject(reservation.sid)
    assert center.get_task(task).assignment_status == "pending"
    assert center.get_task(task).assignment_count == 1


# -- retention and system deletes ------------------------------------------------------------------

def test_completed_task_is_deleted_after_300_seconds(center):
    staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    center.complete(task)
    center.advance(299)
    assert center.get_task(task) is not None
    center.advance(1)
    assert center.get_task(task) is None


def test_canceled_task_is_deleted_after_300_seconds(center):
    staffed(center)
    task = center.task()
    center.cancel(task)
    center.advance(299)
    assert center.get_task(task) is not None
    center.advance(1)
    assert center.get_task(task) is None


def test_events_of_a_cleaned_up_task_are_kept(center):
    staffed(center)
    task = center.task()
    center.cancel(task)
    center.advance(300)
    assert center.event_types(task_sid=task)[-1] == "task.canceled"


def test_assigned_task_is_system_deleted_after_24_hours(center):
    staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    center.advance(86_399)
    assert center.get_task(task) is not None
    center.advance(1)
    assert center.get_task(task) is None
    assert center.event_types(task_sid=task)[-1] == "task.system-deleted"


def test_system_delete_gives_the_worker_capacity_back(center):
    (alice,) = staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    center.advance(86_400)
    assert (center.channel(alice, "default").reserved_tasks, center.channel(alice, "default").assigned_tasks) == (0, 0)
    assert center.get_worker(alice).active_reservations == 0


def test_wrapping_task_is_also_system_deleted_after_24_hours_of_assignment(center):
    staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    tasks.update_task(center.router, center.ws, task, assignment_status="wrapping")
    center.advance(86_400)
    assert center.get_task(task) is None


# -- never early, once, and after a restart ---------------------------------------------------------

def test_no_timer_fires_before_it_is_due(center):
    staffed(center, "alice")
    task = center.task(timeout=60)
    assert center.advance(59.999) == 0
    assert center.get_task(task).assignment_status == "reserved"


def test_a_timer_fires_once_however_often_the_sweep_runs(center):
    staffed(center, "alice")
    task = center.task()
    assert center.advance(120) == 1
    assert center.advance(0) == 0
    assert center.event_types(task_sid=task).count("reservation.timeout") == 1


def test_timer_that_came_due_while_the_process_was_down_fires_on_the_next_sweep(center, restarted):
    staffed(center, "alice")
    task = center.task()
    center.clock.advance(1000)  # nobody sweeps: the process is down
    assert restarted.run_due_timers() == 1
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["timeout"]
    assert center.router.run_due_timers() == 0


def test_timers_overdue_after_a_restart_fire_in_due_order(center, restarted):
    staffed(center, "alice")
    task = center.task(timeout=300)
    center.clock.advance(1000)
    restarted.run_due_timers()
    assert center.event_types(task_sid=task)[-2:] == ["reservation.timeout", "task.canceled"]
    assert center.get_task(task).reason == "Task TTL Exceeded"


def test_timer_claimed_by_another_router_between_its_read_and_its_claim_fires_once(center, restarted, monkeypatch):
    staffed(center, "alice")
    task = center.task()
    center.clock.advance(120)
    fired_by_other = []
    own_transaction = center.router.transaction

    def other_process_fires_first(workspace_sid):
        if not fired_by_other:
            fired_by_other.append(restarted.run_due_timers())
        return own_transaction(workspace_sid)

    monkeypatch.setattr(center.router, "transaction", other_process_fires_first)
    assert center.router.run_due_timers() == 0
    assert fired_by_other == [1]
    assert center.event_types(task_sid=task).count("reservation.timeout") == 1


def test_two_routers_sweeping_at_once_fire_each_timer_exactly_once(center, restarted):
    staffed(center, "alice", "bob", "carol", "dave")
    created = [center.task() for _ in range(4)]
    center.clock.advance(120)
    start = threading.Barrier(2)
    fired = []

    def sweep(router):
        start.wait()
        fired.append(router.run_due_timers())

    threads = [threading.Thread(target=sweep, args=(router,)) for router in (center.router, restarted)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(fired) == 4
    for task in created:
        assert center.event_types(task_sid=task).count("reservation.timeout") == 1
