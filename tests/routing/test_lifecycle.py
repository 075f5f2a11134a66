"""Task, reservation and worker lifecycles (reference §4), including every transition that is refused."""

from __future__ import annotations

import pytest

from callcenter.routing import (
    IllegalState,
    InvalidParameter,
    PreconditionFailed,
    ReservationNotPending,
    reservations,
    tasks,
    workers,
)

from .conftest import Center


def staffed(center, *names, **queue_options):
    """One queue of everyone, a workflow routing every task to it, and the named available workers."""
    queue = center.queue(**queue_options)
    center.workflow(default=queue)
    return [center.worker(name) for name in names]


@pytest.fixture
def single(router, clock):
    """A single-tasking workspace, where queues move workers through reservation/assignment activities."""
    center = Center(router, clock, multi_task_enabled=False)
    yield center
    center.assert_consistent()


def task_in(center, status):
    """A task driven to `status` with worker alice; alice is offline when the task must stay pending."""
    (alice,) = staffed(center, "alice")
    if status == "pending":
        center.set_activity(alice, "Offline")
    task = center.task()
    if status in ("assigned", "wrapping", "completed"):
        center.accept(center.pending_reservation(task).sid)
    if status == "wrapping":
        tasks.update_task(center.router, center.ws, task, assignment_status="wrapping")
    if status == "completed":
        center.complete(task)
    if status == "canceled":
        center.cancel(task)
    assert center.get_task(task).assignment_status == status
    return task, alice


# -- the canonical sequence ------------------------------------------------------------------------

def test_canonical_sequence_writes_the_reference_events_in_order(center):
    staffed(center, "alice")
    task = center.task({"type": "support"})
    center.accept(center.pending_reservation(task).sid)
    center.complete(task)
    assert center.event_types(task_sid=task) == [
        "task.created", "workflow.entered", "workflow.target-matched", "task-queue.entered",
        "reservation.created", "reservation.accepted", "task.completed", "reservation.completed",
    ]


def test_task_goes_pending_reserved_assigned_wrapping_completed(center):
    queue = center.queue()
    center.workflow(default=queue)
    task = center.task()
    assert center.get_task(task).assignment_status == "pending"
    center.worker("alice")
    assert center.get_task(task).assignment_status == "reserved"
    center.accept(center.pending_reservation(task).sid)
    assert center.get_task(task).assignment_status == "assigned"
    tasks.update_task(center.router, center.ws, task, assignment_status="wrapping")
    assert center.get_task(task).assignment_status == "wrapping"
    center.complete(task)
    assert center.get_task(task).assignment_status == "completed"


def test_reservation_follows_its_task_to_wrapping_and_completed(center):
    staffed(center, "alice")
    task = center.task()
    reservation = center.pending_reservation(task).sid
    center.accept(reservation)
    tasks.update_task(center.router, center.ws, task, assignment_status="wrapping")
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["wrapping"]
    center.complete(task)
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["completed"]
    assert center.event_types(resource_sid=reservation)[-2:] == ["reservation.wrapup", "reservation.completed"]


def test_completed_task_gives_the_worker_capacity_back(center):
    (alice,) = staffed(center, "alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    assert (center.channel(alice, "default").reserved_tasks, center.channel(alice, "default").assigned_tasks) == (1, 1)
    center.complete(task)
    assert (center.channel(alice, "default").reserved_tasks, center.channel(alice, "default").assigned_tasks) == (0, 0)


def test_single_tasking_moves_worker_to_reservation_then_assignment_activity(single):
    reserved = single.activity("Reserved", available=False)
    busy = single.activity("Busy", available=False)
    queue = single.queue(reservation_activity_sid=reserved, assignment_activity_sid=busy)
    single.workflow(default=queue)
    alice = single.worker("alice")
    task = single.task()
    assert single.activity_name(alice) == "Reserved"
    single.accept(single.pending_reservation(task).sid)
    assert single.activity_name(alice) == "Busy"


# -- canceling -------------------------------------------------------------------------------------

def test_cancel_pending_task_records_reason_and_event(center, events):
    task, _ = task_in(center, "pending")
    center.cancel(task, reason="caller hung up")
    assert center.get_task(task).assignment_status == "canceled"
    assert center.get_task(task).reason == "caller hung up"
    assert events("task.canceled", task_sid=task)[0]["task_canceled_reason"] == "caller hung up"


def test_cancel_reserved_task_cancels_its_pending_reservation(center):
    task, _ = task_in(center, "reserved")
    center.cancel(task)
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["canceled"]
    assert "reservation.canceled" in center.event_types(task_sid=task)


def test_cancel_reserved_task_frees_the_worker_capacity(center):
    task, alice = task_in(center, "reserved")
    center.cancel(task)
    assert center.channel(alice, "default").reserved_tasks == 0
    assert center.get_worker(alice).active_reservations == 0


def test_worker_freed_by_a_cancel_is_offered_the_next_task(center):
    (alice,) = staffed(center, "alice")
    first, second = center.task(), center.task()
    assert center.get_task(second).assignment_status == "pending"
    center.cancel(first)
    assert center.pending_reservation(second).worker_sid == alice


# -- illegal transitions change nothing ------------------------------------------------------------

@pytest.mark.parametrize(("status", "change"), [
    ("assigned", "canceled"),
    ("wrapping", "canceled"),
    ("completed", "canceled"),
    ("canceled", "canceled"),
    ("pending", "wrapping"),
    ("reserved", "wrapping"),
    ("pending", "completed"),
    ("reserved", "completed"),
    ("canceled", "completed"),
])
def test_illegal_task_transition_is_refused_and_changes_nothing(center, unchanged, status, change):
    task, _ = task_in(center, status)
    with unchanged(), pytest.raises(IllegalState) as err:
        tasks.update_task(center.router, center.ws, task, assignment_status=change, reason="no")
    assert (err.value.code, err.value.status) == (20409, 409)


def test_accepting_a_rejected_reservation_is_refused(center, unchanged):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.reject(reservation)
    with unchanged(), pytest.raises(ReservationNotPending) as err:
        center.accept(reservation)
    assert (err.value.code, err.value.status) == (20409, 410)


def test_accepting_a_timed_out_reservation_is_refused(center, unchanged):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.advance(120)
    with unchanged(), pytest.raises(ReservationNotPending) as err:
        center.accept(reservation)
    assert err.value.status == 410


def test_accepting_a_canceled_reservation_is_refused(center, unchanged):
    staffed(center, "alice")
    task = center.task()
    reservation = center.pending_reservation(task).sid
    center.cancel(task)
    with unchanged(), pytest.raises(ReservationNotPending) as err:
        center.accept(reservation)
    assert err.value.status == 410


def test_accepting_a_rescinded_reservation_is_refused(center, unchanged):
    staffed(center, "alice", "bob", max_reserved_workers=2)
    task = center.task()
    first, second = center.reservations(task_sid=task, status="pending")
    center.accept(first.sid)
    assert center.reservations(task_sid=task, status="rescinded")[0].sid == second.sid
    with unchanged(), pytest.raises(ReservationNotPending) as err:
        center.accept(second.sid)
    assert err.value.status == 410


def test_rejecting_an_accepted_reservation_is_refused(center, unchanged):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.accept(reservation)
    with unchanged(), pytest.raises(ReservationNotPending) as err:
        center.reject(reservation)
    assert err.value.status == 410


def test_accepting_twice_is_refused(center, unchanged):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.accept(reservation)
    with unchanged(), pytest.raises(ReservationNotPending):
        center.accept(reservation)


# -- rejecting and the worker's activity ------------------------------------------------------------

def test_reject_with_worker_activity_sid_moves_the_worker(center):
    (alice,) = staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.reject(reservation, worker_activity_sid=center.unavailable)
    assert center.activity_name(alice) == "Unavailable"


def test_reject_without_worker_activity_sid_keeps_the_worker_activity(center):
    (alice,) = staffed(center, "alice")
    reservation = center.pending_reservation(center.task()).sid
    center.reject(reservation)
    assert center.activity_name(alice) == "Available"


def test_reject_without_worker_activity_sid_restores_the_activity_before_the_reservation(single):
    reserved = single.activity("Reserved", available=False)
    queue = single.queue(reservation_activity_sid=reserved)
    single.workflow(default=queue)
    alice = single.worker("alice")
    reservation = single.pending_reservation(single.task()).sid
    single.reject(reservation)
    assert single.activity_name(alice) == "Available"


def test_rejected_task_goes_back_to_pending_and_to_the_next_worker(center):
    (alice,) = staffed(center, "alice")
    center.clock.advance(1)
    bob = center.worker("bob")
    task = center.task()
    assert center.pending_reservation(task).worker_sid == alice
    center.reject(center.pending_reservation(task).sid)
    assert center.pending_reservation(task).worker_sid == bob


def test_rejected_task_is_not_offered_again_to_the_worker_who_rejected_it(center):
    staffed(center, "alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    assert center.get_task(task).assignment_status == "pending"
    assert len(center.reservations(task_sid=task)) == 1


# -- a worker's activity while offers are pending ----------------------------------------------------

def test_reject_pending_reservations_on_worker_update_rejects_them(center):
    (alice,) = staffed(center, "alice")
    task = center.task()
    center.set_activity(alice, "Offline", reject_pending_reservations=True)
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["rejected"]
    assert center.activity_name(alice) == "Offline"
    assert center.get_task(task).assignment_status == "pending"


def test_going_unavailable_with_a_pending_reservation_is_refused(center, unchanged):
    (alice,) = staffed(center, "alice")
    center.task()
    with unchanged(), pytest.raises(IllegalState) as err:
        center.set_activity(alice, "Offline")
    assert err.value.code == 20409


def test_reject_pending_reservations_with_an_available_activity_is_refused(center, unchanged):
    (alice,) = staffed(center, "alice")
    center.activity("Ready", available=True)
    center.task()
    with unchanged(), pytest.raises(InvalidParameter):
        center.set_activity(alice, "Ready", reject_pending_reservations=True)


def test_moving_between_available_activities_keeps_the_pending_reservation(center):
    (alice,) = staffed(center, "alice")
    center.activity("Ready", available=True)
    task = center.task()
    reservation = center.pending_reservation(task).sid
    center.set_activity(alice, "Ready")
    assert center.activity_name(alice) == "Ready"
    assert center.pending_reservation(task).sid == reservation


# -- deleting ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["pending", "reserved", "assigned", "wrapping", "completed", "canceled"])
def test_deleting_a_task_in_any_state_frees_the_worker(center, status):
    task, alice = task_in(center, status)
    tasks.delete_task(center.router, center.ws, task)
    assert center.get_task(task) is None
    assert (center.channel(alice, "default").reserved_tasks, center.channel(alice, "default").assigned_tasks) == (0, 0)
    assert center.get_worker(alice).active_reservations == 0
    assert center.event_types(task_sid=task)[-1] == "task.deleted"


def test_deleting_an_assigned_task_offers_the_worker_the_next_task(center):
    (alice,) = staffed(center, "alice")
    first, second = center.task(), center.task()
    center.accept(center.pending_reservation(first).sid)
    tasks.delete_task(center.router, center.ws, first)
    assert center.pending_reservation(second).worker_sid == alice


@pytest.mark.parametrize("status", ["reserved", "assigned"])
def test_deleting_a_worker_with_an_active_reservation_is_refused(center, unchanged, status):
    _, alice = task_in(center, status)
    with unchanged(), pytest.raises(IllegalState):
        workers.delete_worker(center.router, center.ws, alice)


def test_deleting_an_idle_worker_writes_worker_deleted(center):
    alice = center.worker("alice", available=False)
    workers.delete_worker(center.router, center.ws, alice)
    assert center.get_worker(alice) is None
    assert center.event_types(resource_sid=alice)[-1] == "worker.deleted"


# -- If-Match --------------------------------------------------------------------------------------

def test_task_update_with_a_stale_if_match_is_refused(center, unchanged):
    task, _ = task_in(center, "pending")
    stale = str(center.get_task(task).version - 1)
    with unchanged(), pytest.raises(PreconditionFailed) as err:
        tasks.update_task(center.router, center.ws, task, priority=5, if_match=stale)
    assert (err.value.code, err.value.status) == (412, 412)


def test_task_update_with_the_current_if_match_succeeds(center):
    task, _ = task_in(center, "pending")
    version = center.get_task(task).version
    tasks.update_task(center.router, center.ws, task, priority=5, if_match=f'"{version}"')
    assert center.get_task(task).priority == 5
    assert center.get_task(task).version > version


def test_task_delete_with_a_stale_if_match_is_refused(center, unchanged):
    task, _ = task_in(center, "pending")
    with unchanged(), pytest.raises(PreconditionFailed):
        tasks.delete_task(center.router, center.ws, task, if_match="0")


def test_worker_update_with_a_stale_if_match_is_refused(center, unchanged):
    alice = center.worker("alice")
    workers.update_worker(center.router, center.ws, alice, attributes='{"skill": 1}')
    with unchanged(), pytest.raises(PreconditionFailed):
        workers.update_worker(center.router, center.ws, alice, attributes='{"skill": 2}', if_match="1")


def test_worker_update_with_the_current_if_match_succeeds(center):
    alice = center.worker("alice")
    version = str(center.get_worker(alice).version)
    workers.update_worker(center.router, center.ws, alice, attributes='{"skill": 2}', if_match=version)
    assert center.get_worker(alice).attributes == '{"skill": 2}'


def test_a_workers_events_carry_the_version_the_change_gave_it(center):
    """`worker_version` was written before the version went up: an event consumer that drops versions it has
    seen dropped the change. A change the engine makes (a missed offer's timeout activity) raises it too, so
    an If-Match taken before it is refused."""
    center.workflow(default=center.queue(), task_reservation_timeout=30)
    alice = center.worker("alice")
    workers.update_worker(center.router, center.ws, alice, attributes='{"skill": 1}')
    assert _last_worker_version(center, alice, "worker.attributes.update") == center.get_worker(alice).version == 2
    center.set_activity(alice, "Unavailable")
    center.set_activity(alice, "Available")
    assert _last_worker_version(center, alice, "worker.activity.update") == center.get_worker(alice).version == 4
    center.task()
    center.advance(30)  # the offer times out: the engine moves alice to the timeout activity
    assert center.activity_name(alice) == "Offline"
    assert _last_worker_version(center, alice, "worker.activity.update") == center.get_worker(alice).version == 5
    with pytest.raises(PreconditionFailed):
        workers.update_worker(center.router, center.ws, alice, attributes='{"skill": 2}', if_match="4")


def _last_worker_version(center, worker_sid, event_type):
    import json

    from sqlalchemy import select

    from callcenter.routing.models import Event

    with center.router.read() as session:
        data = session.scalars(select(Event.event_data).where(Event.worker_sid == worker_sid,
                                                              Event.event_type == event_type)
                               .order_by(Event.id.desc())).first()
    return int(json.loads(data)["worker_version"])


def test_reservation_update_with_a_stale_if_match_is_refused(center, unchanged):
    staffed(center, "alice")
    reservation = center.pending_reservation(center.task())
    with unchanged(), pytest.raises(PreconditionFailed):
        reservations.update_reservation(center.router, center.ws, reservation.sid, reservation_status="accepted",
                                        if_match=str(reservation.version + 1))


def test_reservation_update_with_the_current_if_match_succeeds(center):
    staffed(center, "alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    reservations.update_reservation(center.router, center.ws, reservation.sid, reservation_status="accepted",
                                    if_match=str(reservation.version))
    assert center.get_task(task).assignment_status == "assigned"


def test_rejecting_with_an_unavailable_activity_also_rejects_the_workers_other_pending_offers(center):
    queue = center.queue()
    center.workflow(default=queue)
    alice = center.worker("alice")
    from callcenter.routing import workers

    workers.update_worker_channel(center.router, center.ws, alice, "default", capacity=2)
    first, second = center.task(), center.task()
    offers = center.reservations(worker_sid=alice, status="pending")
    assert {o.task_sid for o in offers} == {first, second}

    center.reject(offers[0].sid, worker_activity_sid=center.offline)

    assert center.activity_name(alice) == "Offline"
    assert {r.reservation_status for r in center.reservations(worker_sid=alice)} == {"rejected"}
    assert center.get_task(first).assignment_status == "pending"
    assert center.get_task(second).assignment_status == "pending"
