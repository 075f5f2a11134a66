"""Events written with the state they describe, event callbacks, and the assignment callback (reference §5, §6)."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callcenter.routing import IllegalState, reservations, tasks, workers, workspaces
from callcenter.routing.models import Event, OutboxMessage
from callcenter.routing.outbox import Response, Sweeper
from callcenter.routing.sids import is_sid

from .conftest import ACCOUNT

EVENTS_URL = "https://app.example.com/taskrouter/events"
ASSIGNMENT_URL = "https://app.example.com/taskrouter/assignment"
FALLBACK_URL = "https://backup.example.com/taskrouter/assignment"


@dataclass
class Request:
    url: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeTransport:
    """Stands in for the network: records every request and answers with the queued replies, then `default`.

    A reply is a `Response`, or an exception to raise (a refused connection).
    """

    def __init__(self, *replies, default: Response = Response(204, "")) -> None:
        self.replies = list(replies)
        self.default = default
        self.requests: list[Request] = []

    def __call__(self, url, params, headers, timeout):
        self.requests.append(Request(url, dict(params), dict(headers)))
        reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def event_types(self) -> list[str]:
        return [request.params["EventType"] for request in self.requests]


@pytest.fixture
def transport(center):
    fake = FakeTransport()
    center.router.deliverer.transport = fake
    return fake


def staffed(center, *names, **workflow_options):
    queue = center.queue()
    center.workflow(default=queue, **workflow_options)
    return [center.worker(name) for name in names]


def subscribe(center, events_filter=None):
    workspaces.update_workspace(center.router, center.ws, event_callback_url=EVENTS_URL, events_filter=events_filter)


def outbox(center, kind=None) -> list[OutboxMessage]:
    with center.router.read() as session:
        query = select(OutboxMessage).where(OutboxMessage.workspace_sid == center.ws).order_by(OutboxMessage.id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.scalars(query))


def deliver_all(center, rounds=50) -> None:
    """Deliver until nothing due is left (an ordered message waits for the one before it)."""
    for _ in range(rounds):
        if not center.router.deliver_outbox():
            return
    raise AssertionError("the outbox never drained")


# -- events are written with the change, or not at all ---------------------------------------------

def test_an_operation_commits_all_its_events_together(center):
    staffed(center, "alice")
    task = center.task()
    batches = []
    center.router.listeners.append(batches.append)
    center.cancel(task)
    assert [[event["event_type"] for event in batch] for batch in batches] == [["reservation.canceled", "task.canceled"]]


def test_event_sids_are_sids_that_sort_in_time_order_and_never_repeat(center):
    center.workflow(default=center.queue())
    center.worker("alice")
    task = center.task()
    center.advance(1)  # a millisecond would do: the sid leads with the event's time in ms
    center.accept(center.pending_reservation(task).sid)
    center.advance(1)
    center.complete(task)
    with center.router.read() as session:
        rows = session.execute(select(Event.sid, Event.event_date).where(Event.workspace_sid == center.ws)).all()
    sids = [sid for sid, _ in rows]
    assert all(is_sid(sid, "EV") for sid in sids)
    assert len(set(sids)) == len(sids)  # eight or so in one millisecond, each its own
    by_sid = [date for _, date in sorted(rows)]
    assert by_sid == sorted(by_sid)  # sorted by sid is sorted by time: the sid index is appended to
    assert len({date for _, date in rows}) >= 3


def test_a_failed_operation_writes_no_events(center, unchanged):
    (alice,) = staffed(center, "alice")
    center.task()
    with unchanged(), pytest.raises(IllegalState):
        # The attributes change emits worker.attributes.update before the activity change fails.
        workers.update_worker(center.router, center.ws, alice, attributes='{"level": 2}', activity_sid=center.offline)


def test_a_refused_transition_writes_no_callback(center, unchanged):
    subscribe(center)
    staffed(center)
    task = center.task()
    with unchanged(), pytest.raises(IllegalState):
        center.complete(task)


# -- event_data carries Twilio's fields --------------------------------------------------------------

def test_task_created_event_carries_task_and_workflow_fields(center, events):
    staffed(center)
    task = center.task({"type": "support"}, priority=7)
    data = events("task.created", task_sid=task)[0]
    assert data["task_sid"] == task
    assert json.loads(data["task_attributes"]) == {"type": "support"}
    assert data["task_assignment_status"] == "pending"
    assert data["task_priority"] == "7"
    assert data["task_age"] == "0"
    assert data["workflow_name"] == "Routing"
    assert (data["workspace_sid"], data["workspace_name"]) == (center.ws, "Test Center")


def test_task_queue_entered_event_names_the_queue(center, events):
    queue = center.queue("Support")
    center.workflow(default=queue)
    task = center.task()
    data = events("task-queue.entered", task_sid=task)[0]
    assert (data["task_queue_sid"], data["task_queue_name"]) == (queue, "Support")


def test_reservation_created_event_carries_task_worker_and_reservation_fields(center, events):
    (alice,) = staffed(center, "alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    data = events("reservation.created", task_sid=task)[0]
    assert data["reservation_sid"] == reservation.sid
    assert data["task_queue_sid"] == reservation.task_queue_sid
    assert (data["worker_sid"], data["worker_name"], data["worker_activity_name"]) == (alice, "alice", "Available")
    assert data["task_assignment_status"] == "reserved"


def test_activity_update_event_carries_previous_activity_and_time_in_it(center, events):
    alice = center.worker("alice")
    center.clock.advance(30)
    center.set_activity(alice, "Offline")
    data = events("worker.activity.update", resource_sid=alice)[-1]
    assert data["worker_activity_name"] == "Offline"
    assert data["worker_previous_activity_sid"] == center.available
    assert data["worker_time_in_previous_activity"] == "30"
    assert data["worker_time_in_previous_activity_ms"] == "30000"


def test_completed_and_canceled_events_carry_their_reason(center, events):
    staffed(center, "alice")
    done, dropped = center.task(), center.task()
    center.accept(center.pending_reservation(done).sid)
    center.complete(done, reason="call ended")
    center.cancel(dropped, reason="caller hung up")
    assert events("task.completed", task_sid=done)[0]["task_completed_reason"] == "call ended"
    assert events("task.canceled", task_sid=dropped)[0]["task_canceled_reason"] == "caller hung up"


def test_event_data_values_are_strings_as_twilio_sends_them(center, events):
    staffed(center, "alice")
    center.task(priority=3)
    assert all(isinstance(value, str) for data in events() for value in data.values())


# -- EventCallbackUrl and EventsFilter ---------------------------------------------------------------

def test_no_event_callback_url_means_no_outbox_rows(center):
    staffed(center, "alice")
    center.task()
    assert outbox(center, "event") == []


def test_event_callback_url_queues_one_callback_per_event(center):
    subscribe(center)
    staffed(center)
    task = center.task()
    queued = [json.loads(m.payload)["EventType"] for m in outbox(center, "event") if m.ordering_key == task]
    assert queued == center.event_types(task_sid=task)


def test_events_filter_queues_only_the_wanted_events(center):
    subscribe(center, events_filter="task.created,task.canceled")
    staffed(center)
    task = center.task()
    center.cancel(task)
    assert [json.loads(m.payload)["EventType"] for m in outbox(center, "event")] == ["task.created", "task.canceled"]


# -- delivering event callbacks -------------------------------------------------------------------

def test_event_callback_posts_twilio_pascal_case_params(center, transport):
    subscribe(center, events_filter="task.created")
    staffed(center)
    task = center.task({"type": "support"})
    deliver_all(center)
    (request,) = transport.requests
    assert request.url == EVENTS_URL
    params = request.params
    assert params["EventType"] == "task.created"
    assert (params["AccountSid"], params["WorkspaceSid"], params["WorkspaceName"]) == (ACCOUNT, center.ws, "Test Center")
    assert (params["ResourceType"], params["ResourceSid"], params["TaskSid"]) == ("task", task, task)
    assert json.loads(params["TaskAttributes"]) == {"type": "support"}
    assert params["TaskAssignmentStatus"] == "pending"
    assert params["Sid"].startswith("EV")
    assert params["Timestamp"] == str(int(center.clock.now().replace(tzinfo=UTC).timestamp()))
    assert params["TimestampMs"] == params["Timestamp"] + "000"


def test_delivered_callback_leaves_the_outbox(center, transport):
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    deliver_all(center)
    assert outbox(center) == []


def test_event_callback_is_signed_with_the_account_auth_token(center, transport):
    center.router.auth_token_for = lambda account_sid: "auth-token-1" if account_sid == ACCOUNT else None
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    deliver_all(center)
    (request,) = transport.requests
    signature = request.headers["X-Twilio-Signature"]
    assert RequestValidator("auth-token-1").validate(request.url, request.params, signature)
    assert not RequestValidator("another-token").validate(request.url, request.params, signature)


def test_event_callback_is_unsigned_without_an_auth_token(center, transport):
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    deliver_all(center)
    assert "X-Twilio-Signature" not in transport.requests[0].headers


def test_failed_event_callback_is_retried_after_a_backoff(center, transport):
    transport.replies = [Response(500, "oops")]
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    assert center.router.deliver_outbox() == 1
    (message,) = outbox(center)
    assert (message.attempts, message.last_error, message.status) == (1, "HTTP 500", "pending")
    assert message.next_attempt_at > center.clock.now()
    assert center.router.deliver_outbox() == 0  # not before its backoff
    center.clock.advance(1)
    deliver_all(center)
    assert transport.event_types() == ["task.created", "task.created"]
    assert outbox(center) == []


def test_refused_connection_is_retried(center, transport):
    transport.replies = [ConnectionRefusedError("connection refused")]
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    center.router.deliver_outbox()
    assert "ConnectionRefusedError" in outbox(center)[0].last_error
    center.clock.advance(1)
    deliver_all(center)
    assert len(transport.requests) == 2
    assert outbox(center) == []


def test_retry_backoff_doubles_with_each_failure(center, transport, monkeypatch):
    monkeypatch.setattr("callcenter.routing.outbox.random.uniform", lambda low, high: high)  # no jitter
    transport.default = Response(503, "")
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    waits = []
    for _ in range(4):
        center.router.deliver_outbox()
        waits.append((outbox(center)[0].next_attempt_at - center.clock.now()).total_seconds())
        center.clock.advance(waits[-1])
    assert waits == [1, 2, 4, 8]


def test_event_callback_is_given_up_after_its_last_attempt(center, transport):
    transport.default = Response(500, "")
    subscribe(center, events_filter="task.created")
    staffed(center)
    center.task()
    for _ in range(20):
        center.router.deliver_outbox()
        center.clock.advance(300)
    assert len(transport.requests) == 8
    assert outbox(center)[0].status == "dead"


def test_events_of_one_task_are_delivered_in_order_even_when_the_first_failed(center, transport):
    transport.replies = [ConnectionRefusedError("down")]
    subscribe(center, events_filter="task.created,workflow.entered,task-queue.entered,task.canceled")
    staffed(center)
    task = center.task()
    center.cancel(task)
    assert center.router.deliver_outbox() == 1  # the later events wait for the first
    center.clock.advance(1)
    deliver_all(center)
    assert transport.event_types() == [
        "task.created", "task.created", "workflow.entered", "task-queue.entered", "task.canceled",
    ]


def test_a_failing_task_does_not_hold_up_the_events_of_another(center, transport):
    transport.replies = [Response(500, "")]
    subscribe(center, events_filter="task.created")
    staffed(center)
    first, second = center.task(), center.task()
    deliver_all(center)
    assert [request.params["TaskSid"] for request in transport.requests] == [first, second]
    assert [message.ordering_key for message in outbox(center)] == [first]


# -- the assignment callback -------------------------------------------------------------------------

def test_assignment_callback_posts_the_reference_form_params(center, transport):
    transport.default = Response(200, "")
    (alice,) = staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task({"type": "support"}, priority=4)
    reservation = center.pending_reservation(task)
    deliver_all(center)
    (request,) = transport.requests
    assert request.url == ASSIGNMENT_URL
    params = request.params
    assert {key: params[key] for key in ("AccountSid", "WorkspaceSid", "WorkflowSid", "TaskQueueSid", "WorkerSid",
                                         "TaskSid", "ReservationSid", "TaskAge", "TaskPriority")} == {
        "AccountSid": ACCOUNT, "WorkspaceSid": center.ws, "WorkflowSid": reservation.workflow_sid,
        "TaskQueueSid": reservation.task_queue_sid, "WorkerSid": alice, "TaskSid": task,
        "ReservationSid": reservation.sid, "TaskAge": "0", "TaskPriority": "4",
    }
    assert json.loads(params["TaskAttributes"]) == {"type": "support"}
    assert json.loads(params["WorkerAttributes"]) == {}
    assert params["Timestamp"] == str(int(center.clock.now().replace(tzinfo=UTC).timestamp()))


def test_assignment_callback_is_signed(center, transport):
    transport.default = Response(200, "")
    center.router.auth_token_for = lambda account_sid: "auth-token-2"
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    center.task()
    deliver_all(center)
    (request,) = transport.requests
    assert RequestValidator("auth-token-2").validate(request.url, request.params, request.headers["X-Twilio-Signature"])


def test_accept_instruction_accepts_the_reservation(center, transport):
    transport.default = Response(200, '{"instruction": "accept"}')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    assert center.get_task(task).assignment_status == "assigned"
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["accepted"]


def test_reject_instruction_rejects_and_moves_the_worker(center, transport):
    (alice,) = staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    transport.default = Response(200, json.dumps({"instruction": "reject", "activity_sid": center.unavailable}))
    task = center.task()
    deliver_all(center)
    assert [r.reservation_status for r in center.reservations(task_sid=task)] == ["rejected"]
    assert center.activity_name(alice) == "Unavailable"
    assert center.get_task(task).assignment_status == "pending"


def test_empty_reply_leaves_the_reservation_pending_for_a_manual_answer(center, transport):
    transport.default = Response(200, "")
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    assert center.pending_reservation(task)
    assert outbox(center) == []


def test_invalid_json_reply_leaves_the_reservation_pending_with_a_warning(center, transport, caplog):
    transport.default = Response(200, '{"instruction": accept')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    with caplog.at_level(logging.WARNING, logger="callcenter.routing"):
        deliver_all(center)
    assert center.pending_reservation(task)
    assert any(record.levelno == logging.WARNING and "40001" in record.getMessage() for record in caplog.records)


def test_reply_without_an_instruction_leaves_the_reservation_pending_with_a_warning(center, transport, caplog):
    transport.default = Response(200, '{"activity_sid": "WA0"}')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    with caplog.at_level(logging.WARNING, logger="callcenter.routing"):
        deliver_all(center)
    assert center.pending_reservation(task)
    assert any("40005" in record.getMessage() for record in caplog.records)


def test_unknown_instruction_leaves_the_reservation_pending(center, transport, caplog):
    transport.default = Response(200, '{"instruction": "teleport"}')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    with caplog.at_level(logging.WARNING, logger="callcenter.routing"):
        deliver_all(center)
    assert center.pending_reservation(task)
    assert any("55555" in record.getMessage() for record in caplog.records)


def test_failed_primary_url_goes_to_the_fallback_url(center, transport):
    transport.replies = [Response(500, ""), Response(200, '{"instruction": "accept"}')]
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL, fallback_assignment_callback_url=FALLBACK_URL)
    task = center.task()
    deliver_all(center)
    assert [request.url for request in transport.requests] == [ASSIGNMENT_URL, FALLBACK_URL]
    assert center.get_task(task).assignment_status == "assigned"


def test_unreachable_primary_url_goes_to_the_fallback_url(center, transport):
    transport.replies = [TimeoutError("5 s deadline"), Response(200, '{"instruction": "accept"}')]
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL, fallback_assignment_callback_url=FALLBACK_URL)
    task = center.task()
    deliver_all(center)
    assert center.get_task(task).assignment_status == "assigned"


def test_assignment_callback_is_retried_when_both_urls_fail(center, transport):
    transport.replies = [Response(500, ""), Response(502, "")]
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL, fallback_assignment_callback_url=FALLBACK_URL)
    task = center.task()
    center.router.deliver_outbox()
    assert outbox(center, "assignment")[0].attempts == 1
    transport.default = Response(200, '{"instruction": "accept"}')
    center.clock.advance(1)
    deliver_all(center)
    assert center.get_task(task).assignment_status == "assigned"


def test_voice_instruction_is_handed_to_the_instruction_handler(center, transport):
    calls = []
    center.router.instruction_handler = lambda tx, **kwargs: calls.append(kwargs)
    instruction = {"instruction": "dequeue", "to": "+14151112222", "from": "+18001231234",
                   "post_work_activity_sid": center.offline}
    transport.default = Response(200, json.dumps(instruction))
    (alice,) = staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    (call,) = calls
    assert (call["reservation"].sid, call["task"].sid, call["worker"].sid) == (
        center.pending_reservation(task).sid, task, alice)
    assert call["instruction"] == instruction


def test_dequeue_instruction_leaves_the_reservation_pending_until_the_call_is_bridged(center, transport):
    center.router.instruction_handler = lambda tx, **kwargs: None
    transport.default = Response(200, '{"instruction": "dequeue", "from": "+18001231234"}')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    assert center.pending_reservation(task)


def test_call_instruction_with_accept_accepts_the_reservation(center, transport):
    center.router.instruction_handler = lambda tx, **kwargs: None
    transport.default = Response(200, json.dumps({"instruction": "call", "from": "+18001231234",
                                                  "url": "https://app.example.com/agent", "accept": True}))
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    assert center.get_task(task).assignment_status == "assigned"


def test_callback_for_an_already_accepted_reservation_is_dropped_without_a_request(center, transport):
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    deliver_all(center)
    assert transport.requests == []
    assert outbox(center) == []


def test_callback_for_a_timed_out_reservation_is_dropped_without_a_request(center, transport):
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    center.task()
    center.advance(120)
    deliver_all(center)
    assert transport.requests == []


def test_assignment_reply_arriving_after_the_reservation_ended_changes_nothing(center, transport, unchanged):
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    reservation = center.pending_reservation(task).sid
    center.cancel(task)
    with unchanged(), pytest.raises(IllegalState):
        reservations.apply_callback_reply(center.router, center.ws, reservation, '{"instruction": "accept"}')


def test_rest_updates_work_on_tasks_routed_with_a_callback(center, transport):
    transport.default = Response(200, "")
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    task = center.task()
    deliver_all(center)
    center.accept(center.pending_reservation(task).sid)
    tasks.update_task(center.router, center.ws, task, assignment_status="completed", reason="done")
    assert center.get_task(task).assignment_status == "completed"


def test_assignment_callback_reply_nested_thousands_deep_leaves_the_reservation_pending(center):
    from callcenter.routing.reservations import apply_callback_reply

    queue = center.queue()
    center.workflow(default=queue)
    center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task)
    outcome = apply_callback_reply(center.router, center.ws, reservation.sid, "[" * 100_000 + "]" * 100_000)
    assert outcome.startswith("warning 40001")
    assert center.pending_reservation(task).sid == reservation.sid


# -- leases: a claim that ran out, a crash before the reply, a slow endpoint --------------------------

def test_a_claim_whose_lease_ran_out_never_posts_after_the_next_claim(center, transport):
    """A message waiting past its lease in one process's queue was claimed and sent again by another sweep,
    then the first copy went out too, after the task's later events."""
    subscribe(center, events_filter="task.created,task.canceled")
    staffed(center)
    task = center.task()
    stale = center.router.deliverer.claim_due(1)  # a sweep claims it, then its thread is held up
    center.clock.advance(61)  # past the lease
    deliver_all(center)  # another sweep claims it again, sends it; then the next event
    center.cancel(task)
    deliver_all(center)
    for message in stale:
        center.router.deliverer.deliver(message)  # the first claim's thread at last
    assert transport.event_types() == ["task.created", "task.canceled"]


def test_an_accept_reply_is_not_lost_when_the_process_dies_before_carrying_it_out(center, transport, monkeypatch):
    """The message was deleted before the reply was carried out, in two transactions: a process that died in
    between lost the accept, and the reservation timed out with the worker sent offline."""
    from callcenter.routing import reservations as reservation_module

    transport.default = Response(200, '{"instruction": "accept"}')
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL, task_reservation_timeout=120)
    task = center.task()
    carry_out = reservation_module.carry_out_instruction

    def dies(*args, **kwargs):
        raise SystemExit("the process dies")

    monkeypatch.setattr(reservation_module, "carry_out_instruction", dies)
    with pytest.raises(SystemExit):
        center.router.deliver_outbox()
    monkeypatch.setattr(reservation_module, "carry_out_instruction", carry_out)
    assert [message.kind for message in outbox(center)] == ["assignment"]  # still there, leased
    center.clock.advance(61)  # the lease runs out: sent again, and the reply carried out
    deliver_all(center)
    assert center.get_task(task).assignment_status == "assigned"
    assert len(transport.requests) == 2 and outbox(center) == []


def test_a_slow_event_endpoint_does_not_hold_up_assignment_callbacks(center):
    """One workspace's event endpoint taking 10 s a POST held every callback thread: another's assignment
    callbacks waited minutes, and reservations timed out."""
    released, assigned = threading.Event(), threading.Event()

    def transport(url, params, headers, timeout):
        if url == EVENTS_URL:
            released.wait(10)
            return Response(204, "")
        assigned.set()
        return Response(200, "")

    center.router.deliverer.transport = transport
    subscribe(center, events_filter="task.created")
    staffed(center, "alice", assignment_callback_url=ASSIGNMENT_URL)
    sweeper = Sweeper(center.router, workers=1, assignment_workers=1)
    try:
        for _ in range(3):
            center.task()  # task.created events first, then the reservation's assignment callback
        sweeper.sweep()
        assert assigned.wait(5), "the assignment callback waited behind the event endpoint"
        with center.router.read() as session:
            leased = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "event", OutboxMessage.attempts > 0))
        assert leased == 1  # one event thread, one event claimed: the others are not leased while they wait
    finally:
        released.set()
        sweeper.stop()


def test_a_free_thread_claims_the_next_message_without_waiting_for_the_next_sweep(center):
    """A sweep claims only what its threads can post at once; when a post finished, the rest waited for the
    next sweep interval (a backlog drained at 16 events a second)."""
    delivered, all_done = [], threading.Event()

    def transport(url, params, headers, timeout):
        delivered.append(params["EventType"])
        if len(delivered) == 4:
            all_done.set()
        return Response(204, "")

    center.router.deliverer.transport = transport
    subscribe(center, events_filter="task.created")
    staffed(center)
    for _ in range(4):
        center.task()
    sweeper = Sweeper(center.router, workers=1, interval=3600)  # no sweep of its own after the first
    try:
        sweeper.start()
        assert all_done.wait(10), f"only {len(delivered)} of 4 delivered: each waited for a sweep"
    finally:
        sweeper.stop()
