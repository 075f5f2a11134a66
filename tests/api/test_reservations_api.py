"""Task Reservations (`/Tasks/{WT}/Reservations`) through the official twilio SDK: every way an offer ends."""

from __future__ import annotations

import pytest

from .test_tasks_api import Center, list_error, rest_error


@pytest.fixture
def center(taskrouter, clock, router):
    return Center(taskrouter, clock, router)


@pytest.fixture
def single_tasking(taskrouter, clock, router):
    """Workers move to `Reserved` when offered a task and to `Busy` when they take it."""
    center = Center(taskrouter, clock, router, multi_task_enabled=False)
    center.activities["Reserved"] = center.ws.activities.create(friendly_name="Reserved", available=False).sid
    center.ws.task_queues(center.queue).update(reservation_activity_sid=center.activities["Reserved"],
                                               assignment_activity_sid=center.activities["Busy"])
    return center


@pytest.fixture
def pair(taskrouter, clock, router):
    """A queue that offers each task to two workers at once (MaxReservedWorkers=2)."""
    center = Center(taskrouter, clock, router, max_reserved_workers=2)
    center.workers = [center.worker("alice"), center.worker("bob")]
    return center


# -- list and fetch --------------------------------------------------------------------------------

def test_list_reservations_of_a_task_with_filters(center):
    alice, bob = center.worker("alice"), center.worker("bob")
    task = center.task()
    first = center.pending_reservation(task)
    center.clock.advance(1)  # the second offer is younger: the list comes oldest first
    center.ws.tasks(task).reservations(first.sid).update(reservation_status="rejected",
                                                         worker_activity_sid=center.activities["Busy"])
    second = center.pending_reservation(task)
    assert {first.worker_sid, second.worker_sid} == {alice, bob}
    assert [r.sid for r in center.reservations(task)] == [first.sid, second.sid]
    assert [r.sid for r in center.reservations(task, reservation_status="rejected")] == [first.sid]
    assert [r.sid for r in center.reservations(task, worker_sid=second.worker_sid)] == [second.sid]


def test_list_with_an_unknown_reservation_status_is_400(center):
    task = center.task()
    assert list_error(lambda: center.reservations(task, reservation_status="maybe"))[:2] == (400, 20001)


def test_list_of_an_unknown_task_is_404(center):
    assert list_error(lambda: center.reservations("WT" + "0" * 32))[:2] == (404, 20404)


def test_fetch_a_reservation_with_its_etag_and_links(center):
    alice = center.worker("alice")
    task = center.task()
    pending = center.pending_reservation(task)
    response = center.ws.tasks(task).reservations(pending.sid).fetch_with_http_info()
    reservation = response.data
    assert response.headers["ETag"].strip('"').isdigit()
    assert (reservation.sid, reservation.task_sid, reservation.worker_sid) == (pending.sid, task, alice)
    assert (reservation.reservation_status, reservation.worker_name) == ("pending", "alice")
    assert reservation.url.endswith(f"/Workspaces/{center.ws_sid}/Tasks/{task}/Reservations/{pending.sid}")
    assert reservation.links["worker"].endswith(f"/Workers/{alice}")
    assert reservation.date_created.tzinfo is not None


def test_a_reservation_is_not_found_under_another_task(center):
    center.worker("alice")
    center.worker("bob")
    task, other = center.task(), center.task()
    reservation = center.pending_reservation(task)
    assert rest_error(lambda: center.ws.tasks(other).reservations(reservation.sid).fetch())[:2] == (404, 20404)
    assert rest_error(lambda: center.ws.tasks(other).reservations(reservation.sid).update(
        reservation_status="accepted"))[:2] == (404, 20404)
    assert center.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "pending"


def test_another_account_cannot_see_or_answer_a_reservation(center, other_client):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    other = other_client.taskrouter.v1.workspaces(center.ws_sid).tasks(task)
    assert rest_error(lambda: other.reservations(reservation.sid).fetch())[:2] == (404, 20404)
    assert rest_error(lambda: other.reservations(reservation.sid).update(reservation_status="accepted"))[:2] == \
        (404, 20404)
    assert center.fetch(task).assignment_status == "reserved"


# -- accepting and rejecting -----------------------------------------------------------------------

def test_accept_moves_a_single_tasking_worker_to_the_assignment_activity(single_tasking):
    center = single_tasking
    alice = center.worker("alice")
    task = center.task()
    assert center.activity_name(alice) == "Reserved"
    center.accept(task)
    assert center.activity_name(alice) == "Busy"
    assert center.fetch(task).assignment_status == "assigned"


def test_reject_with_worker_activity_sid_moves_the_worker_and_requeues_the_task(center):
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    rejected = center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="rejected", worker_activity_sid=center.activities["Busy"])
    assert rejected.reservation_status == "rejected"
    assert center.activity_name(alice) == "Busy"
    assert center.fetch(task).assignment_status == "pending"


def test_reject_offers_the_task_to_the_next_worker(center):
    workers = {center.worker("alice"), center.worker("bob")}
    task = center.task()
    first = center.pending_reservation(task)
    center.ws.tasks(task).reservations(first.sid).update(reservation_status="rejected",
                                                         worker_activity_sid=center.activities["Offline"])
    assert center.pending_reservation(task).worker_sid == (workers - {first.worker_sid}).pop()
    assert center.fetch(task).assignment_status == "reserved"


def test_reject_in_single_tasking_restores_the_previous_activity(single_tasking):
    center = single_tasking
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    assert center.activity_name(alice) == "Reserved"
    center.ws.tasks(task).reservations(reservation.sid).update(reservation_status="rejected")
    assert center.activity_name(alice) == "Available"
    assert center.fetch(task).assignment_status == "pending"


def test_reject_instruction_with_an_activity(center):
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    center.ws.tasks(task).reservations(reservation.sid).update(instruction="reject",
                                                               worker_activity_sid=center.activities["Busy"])
    assert center.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "rejected"
    assert center.activity_name(alice) == "Busy"


def test_reject_with_an_unknown_activity_is_400_and_changes_nothing(center):
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, message = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="rejected", worker_activity_sid="WA" + "0" * 32))
    assert (status, code) == (400, 20001) and "WorkerActivitySid" in message
    assert center.pending_reservation(task).sid == reservation.sid
    assert center.activity_name(alice) == "Available"


def test_worker_activity_sid_without_a_status_is_400(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        worker_activity_sid=center.activities["Busy"]))
    assert (status, code) == (400, 20001)
    assert center.pending_reservation(task).sid == reservation.sid


def test_an_unknown_reservation_status_is_400(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="timeout"))
    assert (status, code) == (400, 20001)
    assert center.pending_reservation(task).sid == reservation.sid


def test_accepting_a_rejected_reservation_is_410(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    center.ws.tasks(task).reservations(reservation.sid).update(reservation_status="rejected",
                                                               worker_activity_sid=center.activities["Offline"])
    status, _, message = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="accepted"))
    assert status == 410 and "rejected" in message
    assert center.fetch(task).assignment_status == "pending"


# -- timers ----------------------------------------------------------------------------------------

def test_reservation_timeout_moves_the_worker_to_the_timeout_activity(center):
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    center.advance(29)
    assert center.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "pending"
    center.advance(2)
    assert center.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "timeout"
    assert center.activity_name(alice) == "Offline"
    assert center.fetch(task).assignment_status == "pending"


def test_a_timed_out_reservation_can_no_longer_be_accepted(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    center.advance(31)
    status, _, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="accepted"))
    assert status == 410
    assert center.fetch(task).assignment_status == "pending"


# -- several workers offered one task (MaxReservedWorkers=2) ---------------------------------------

def test_a_task_is_offered_to_two_workers_at_once(pair):
    task = pair.task()
    pending = pair.reservations(task, reservation_status="pending")
    assert sorted(r.worker_sid for r in pending) == sorted(pair.workers)


def test_accepting_one_offer_rescinds_the_other(pair):
    task = pair.task()
    first, second = pair.reservations(task, reservation_status="pending")
    pair.ws.tasks(task).reservations(first.sid).update(reservation_status="accepted")
    assert pair.ws.tasks(task).reservations(second.sid).fetch().reservation_status == "rescinded"
    assert pair.channel(second.worker_sid).available_capacity_percentage == 100


def test_late_accept_of_a_rescinded_reservation_is_410_and_changes_nothing(pair):
    task = pair.task()
    first, second = pair.reservations(task, reservation_status="pending")
    pair.ws.tasks(task).reservations(first.sid).update(reservation_status="accepted")
    etag = pair.ws.tasks(task).fetch_with_http_info().headers["ETag"]
    status, _, message = rest_error(lambda: pair.ws.tasks(task).reservations(second.sid).update(
        reservation_status="accepted"))
    assert status == 410 and "rescinded" in message
    after = pair.ws.tasks(task).fetch_with_http_info()
    assert after.headers["ETag"] == etag
    assert pair.ws.tasks(task).reservations(first.sid).fetch().reservation_status == "accepted"


def test_wrapping_then_completed(pair):
    task = pair.task()
    first, _ = pair.reservations(task, reservation_status="pending")
    pair.ws.tasks(task).reservations(first.sid).update(reservation_status="accepted")
    wrapping = pair.ws.tasks(task).update(assignment_status="wrapping")
    assert wrapping.assignment_status == "wrapping"
    assert pair.ws.tasks(task).reservations(first.sid).fetch().reservation_status == "wrapping"
    assert pair.channel(first.worker_sid).assigned_tasks == 1
    completed = pair.ws.tasks(task).update(assignment_status="completed", reason="notes written")
    assert (completed.assignment_status, completed.reason) == ("completed", "notes written")
    assert pair.ws.tasks(task).reservations(first.sid).fetch().reservation_status == "completed"
    assert pair.channel(first.worker_sid).assigned_tasks == 0


def test_reservation_status_wrapping_and_completed_move_the_task(center):
    center.worker("alice")
    task = center.task()
    reservation = center.accept(task)
    center.ws.tasks(task).reservations(reservation.sid).update(reservation_status="wrapping")
    assert center.fetch(task).assignment_status == "wrapping"
    center.ws.tasks(task).reservations(reservation.sid).update(reservation_status="completed")
    assert center.fetch(task).assignment_status == "completed"


def test_wrapping_a_pending_reservation_is_409(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="wrapping"))
    assert (status, code) == (409, 20409)
    assert center.pending_reservation(task).sid == reservation.sid


# -- instructions ----------------------------------------------------------------------------------

def test_dequeue_of_a_task_without_a_call_is_400_40140_and_changes_nothing(center):
    center.worker("alice", {"contact_uri": "client:alice"})
    task = center.task()  # no call_sid attribute: not a caller put on hold
    reservation = center.pending_reservation(task)
    before = center.ws.tasks(task).reservations(reservation.sid).fetch_with_http_info().headers["ETag"]
    status, code, message = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from="+15550001111"))
    assert (status, code) == (400, 40140)
    assert "dequeue" in message and "call_sid" in message
    after = center.ws.tasks(task).reservations(reservation.sid).fetch_with_http_info()
    assert (after.data.reservation_status, after.headers["ETag"]) == ("pending", before)
    assert center.fetch(task).assignment_status == "reserved"


def test_dequeue_hands_the_voice_app_the_callback_style_parameters(center, router):
    handed = []
    router.instruction_handler = lambda tx, **kwargs: handed.append(kwargs["instruction"])
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    center.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from="+15550001111", dequeue_to="client:alice",
        dequeue_post_work_activity_sid=center.activities["Busy"], dequeue_timeout=20,
        dequeue_status_callback_event=["initiated", "completed"])
    assert handed == [{"instruction": "dequeue", "from": "+15550001111", "to": "client:alice",
                       "post_work_activity_sid": center.activities["Busy"], "timeout": 20,
                       "status_callback_events": ["initiated", "completed"]}]


def test_call_instruction_without_its_required_parameters_is_400(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, message = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        instruction="call", call_to="client:alice"))
    assert (status, code) == (400, 20001) and "CallFrom" in message
    assert center.pending_reservation(task).sid == reservation.sid


def test_an_unknown_instruction_is_refused(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        instruction="teleport"))
    assert (status, code) == (400, 55555)


@pytest.mark.parametrize(("status", "instruction"), [("accepted", "reject"), ("rejected", "dequeue")])
def test_a_status_and_an_instruction_that_contradict_each_other_are_refused(center, status, instruction):
    """`ReservationStatus=accepted&Instruction=reject` answered 200 and rejected the reservation."""
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status_code, code, message = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status=status, instruction=instruction, dequeue_to="client:alice"))
    assert (status_code, code) == (400, 20001) and "contradicts" in message
    assert center.pending_reservation(task).sid == reservation.sid


# -- optimistic concurrency ------------------------------------------------------------------------

def test_accept_with_a_stale_etag_is_412_and_keeps_the_offer_pending(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    status, code, _ = rest_error(lambda: center.ws.tasks(task).reservations(reservation.sid).update(
        reservation_status="accepted", if_match='"999"'))
    assert (status, code) == (412, 412)
    assert center.pending_reservation(task).sid == reservation.sid


def test_accept_with_the_current_etag_succeeds_and_bumps_it(center):
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    etag = center.ws.tasks(task).reservations(reservation.sid).fetch_with_http_info().headers["ETag"]
    accepted = center.ws.tasks(task).reservations(reservation.sid).update_with_http_info(
        reservation_status="accepted", if_match=etag)
    assert accepted.data.reservation_status == "accepted"
    assert accepted.headers["ETag"] != etag
