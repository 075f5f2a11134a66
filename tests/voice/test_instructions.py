"""TaskRouter's voice instructions for REST API users: dequeue, call, redirect, conference.

A customer's own workspace on our server, built with the official twilio SDK; each instruction is
given both ways TaskRouter takes it: a REST `Reservations/{WR}` update (the SDK's parameters) and
an assignment callback's JSON reply. Twilio's REST API is mocked (`rest`); its webhooks are signed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select
from twilio.rest import Client

from callcenter.database import get_router
from callcenter.routing.models import OutboxMessage, Reservation, Timer
from callcenter.routing.outbox import Response, twilio_signature
from callcenter.routing.tasks import TASK_RETENTION_SECONDS
from callcenter.voice import instruction_calls
from callcenter.voice.instructions import VoiceInstruction
from callcenter.voice.retention import purge_call_records
from tests.api.conftest import FlaskAppHttpClient
from tests.api.test_tasks_api import rest_error
from tests.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    TwilioWebhooks,
    contact_center_app,
    deliver_callbacks,
)

from .conftest import CALLER, NUMBER, twiml

CUSTOMER = "https://customer.example.com"
ALICE, BOB = "+14155550111", "+14155550122"
CALLER_SID = "CA" + "c" * 32
QUEUE_SID = "QU" + "7" * 32
CONFERENCE_SID = "CF" + "5" * 32
DAY = 86_400


class CustomerApp:
    """The REST API user's own server: it answers assignment callbacks and receives status callbacks.

    Stands in front of the engine's outbox transport; everything else still reaches our app.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.reply: dict | None = None
        self.received: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def __call__(self, url, params, headers, timeout):
        if not url.startswith(CUSTOMER):
            return self.inner(url, params, headers, timeout)
        self.received.append((url, params, headers))
        body = json.dumps(self.reply) if url.endswith("/assignment") and self.reply else ""
        return Response(200, body)


class Tenant:
    """A customer's workspace: a `Wrap Up` activity, one queue for everyone, workers with phones."""

    def __init__(self, app, clock, rest, *, callback: dict | None = None, multi_task_enabled: bool = False,
                 reservation_timeout: int = 120) -> None:
        self.app, self.clock, self.rest = app, clock, rest
        self.router = get_router(app)
        self.customer = CustomerApp(self.router.deliverer.transport)
        self.customer.reply = callback
        self.router.deliverer.transport = self.customer
        self.twilio = TwilioWebhooks(app)
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=FlaskAppHttpClient(app), environment={"_": "_"})
        self.ws_sid = client.taskrouter.v1.workspaces.create(friendly_name="Customer",
                                                             multi_task_enabled=multi_task_enabled).sid
        self.ws = client.taskrouter.v1.workspaces(self.ws_sid)
        self.activities = {a.friendly_name: a.sid for a in self.ws.activities.list()}
        self.activities["Wrap Up"] = self.ws.activities.create(friendly_name="Wrap Up", available=False).sid
        queue = self.ws.task_queues.create(friendly_name="Support", target_workers="1==1").sid
        self.workflow = self.ws.workflows.create(
            friendly_name="Inbound", task_reservation_timeout=reservation_timeout,
            assignment_callback_url=f"{CUSTOMER}/assignment" if callback is not None else None,
            configuration=json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queue}}})).sid

    def worker(self, name: str, contact_uri: str | None = None) -> str:
        attributes = {"contact_uri": contact_uri} if contact_uri else {}
        return self.ws.workers.create(friendly_name=name, activity_sid=self.activities["Available"],
                                      attributes=json.dumps(attributes)).sid

    def caller(self, call_sid: str = CALLER_SID, **attributes) -> str:
        """A caller put on hold by the customer's TwiML, and the task the customer created for them."""
        attributes = {"call_sid": call_sid, "from": CALLER, "to": NUMBER, **attributes}
        return self.ws.tasks.create(workflow_sid=self.workflow, attributes=json.dumps(attributes),
                                    task_channel="voice").sid

    # -- looking ------------------------------------------------------------------------------------
    def reservation(self, task_sid: str, status: str = "pending"):
        [reservation] = self.ws.tasks(task_sid).reservations.list(reservation_status=status)
        return reservation

    def task(self, task_sid: str):
        return self.ws.tasks(task_sid).fetch()

    def activity_of(self, worker_sid: str) -> str:
        return self.ws.workers(worker_sid).fetch().activity_name

    def instruction(self, reservation_sid: str) -> VoiceInstruction | None:
        with self.router.read() as session:
            return session.get(VoiceInstruction, reservation_sid)

    def rings(self) -> list[dict[str, str]]:
        """Every dial the app sent (whether or not it reached Twilio); `rest.placed` has the calls Twilio made."""
        return self.rest.sent("POST", "Calls")

    def offers(self, task_sid: str) -> list[tuple[str, str]]:
        """(worker sid, status) of every reservation of the task, oldest first."""
        with self.router.read() as session:
            return [(r.worker_sid, r.reservation_status) for r in session.scalars(
                select(Reservation).where(Reservation.task_sid == task_sid).order_by(Reservation.date_created))]

    def status_of(self, task_sid: str, reservation_sid: str) -> str:
        return self.ws.tasks(task_sid).reservations(reservation_sid).fetch().reservation_status

    def moves(self) -> list[str]:
        """Where the caller's call was sent, in order (Queue Members API or Calls API)."""
        return [form["Url"] for method, path, form in self.rest.requests
                if method == "POST" and path.endswith(CALLER_SID) and "Url" in form]

    def hang_ups(self, call_sid: str) -> list[dict[str, str]]:
        return [form for form in self.rest.sent("POST", f"Calls/{call_sid}") if "Status" in form]

    def timers(self, subject_sid: str) -> list[str]:
        with self.router.read() as session:
            return sorted(session.scalars(select(Timer.kind).where(Timer.subject_sid == subject_sid)))

    def outbox(self) -> list[str]:
        with self.router.read() as session:
            return list(session.scalars(select(OutboxMessage.url)))

    # -- acting -------------------------------------------------------------------------------------
    def deliver(self) -> int:
        return deliver_callbacks(self.app)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.router.run_due_timers()
        self.deliver()

    def post(self, path: str, **params):
        return self.twilio.post(path, **params)

    def worker_leg(self, reservation_sid: str) -> str:
        return self.instruction(reservation_sid).worker_call_sid

    def answer(self, reservation_sid: str):
        """The worker picks up: Twilio fetches the TwiML of their leg."""
        return twiml(self.post(f"/voice/instructions/worker/answer?reservation={reservation_sid}",
                               CallSid=self.worker_leg(reservation_sid), CallStatus="in-progress"))

    def leg_status(self, reservation_sid: str, status: str, call_sid: str | None = None):
        return self.post(f"/voice/instructions/worker/status?reservation={reservation_sid}",
                         CallSid=call_sid or self.worker_leg(reservation_sid), CallStatus=status)

    def conference_event(self, reservation_sid: str, task_sid: str, event: str, **params):
        """Twilio's conference status callback, as our `<Conference statusCallback>` asked for it."""
        return self.post(f"/voice/instructions/conference/status?reservation={reservation_sid}",
                         ConferenceSid=CONFERENCE_SID, FriendlyName=task_sid, StatusCallbackEvent=event, **params)


@pytest.fixture
def tenant(app, clock, rest):
    return Tenant(app, clock, rest)


# -- dequeue -----------------------------------------------------------------------------------------

def test_dequeue_over_rest_rings_after_commit_bridges_exactly_this_caller_and_applies_post_work(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller(queue_sid=QUEUE_SID)
    reservation = tenant.reservation(task)

    updated = tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER, dequeue_timeout=25,
        dequeue_post_work_activity_sid=tenant.activities["Wrap Up"])
    assert updated.reservation_status == "pending"
    assert tenant.rest.requests == []  # nothing is dialed inside the engine's transaction

    tenant.deliver()  # after commit, the outbox carries it out
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Timeout"]) == (ALICE, NUMBER, "25")
    assert ring["Url"] == f"{PUBLIC_BASE_URL}/voice/instructions/worker/answer?reservation={reservation.sid}"
    assert ring["StatusCallback"] == f"{PUBLIC_BASE_URL}/voice/instructions/worker/status?reservation={reservation.sid}"
    leg = tenant.worker_leg(reservation.sid)
    assert json.loads(tenant.task(task).attributes)["worker_call_sid"] == leg
    assert tenant.reservation(task).sid == reservation.sid  # still pending while the phone rings

    worker_twiml = tenant.answer(reservation.sid)
    conference = worker_twiml.find("Dial/Conference")
    assert conference.text == task and conference.get("endConferenceOnExit") == "true"
    after = f"{PUBLIC_BASE_URL}/voice/instructions/worker/after?reservation={reservation.sid}"
    assert worker_twiml.find("Dial").get("action") == after
    # Exactly this caller left the queue, by CallSid, to the room named after the task.
    [dequeued] = tenant.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{CALLER_SID}")
    assert dequeued["Url"] == f"{PUBLIC_BASE_URL}/voice/instructions/caller/connect?reservation={reservation.sid}"
    assert tenant.reservation(task, "accepted").sid == reservation.sid
    assert tenant.task(task).assignment_status == "assigned"
    caller_twiml = twiml(tenant.post(f"/voice/instructions/caller/connect?reservation={reservation.sid}",
                                     CallSid=CALLER_SID))
    caller_conference = caller_twiml.find("Dial/Conference")
    assert caller_conference.text == task
    assert caller_conference.get("startConferenceOnEnter") == "false"  # hold music until the worker is there

    tenant.leg_status(reservation.sid, "completed")  # the worker hangs up
    assert tenant.activity_of(alice) == "Wrap Up"
    assert tenant.task(task).assignment_status == "assigned"  # as TaskRouter leaves a dequeued task


def test_dequeue_from_an_assignment_callback_calls_the_contact_uri_from_the_number_called(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "dequeue"})  # the quickstart's reply, minus "from"
    tenant.worker("alice", ALICE)
    task = tenant.caller()  # no queue_sid attribute: the caller is moved with the Calls API
    tenant.deliver()

    reservation = tenant.reservation(task)
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Timeout"]) == (ALICE, NUMBER, "60")
    tenant.answer(reservation.sid)
    [moved] = tenant.rest.sent("POST", f"Calls/{CALLER_SID}")
    assert moved["Url"] == f"{PUBLIC_BASE_URL}/voice/instructions/caller/connect?reservation={reservation.sid}"
    assert tenant.reservation(task, "accepted").sid == reservation.sid


def test_an_unanswered_worker_leg_rejects_and_the_caller_waits_for_the_next_worker(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "dequeue", "from": NUMBER})
    alice = tenant.worker("alice", ALICE)
    clock.advance(1)
    bob = tenant.worker("bob", BOB)  # alice has been idle longer: she is rung first
    task = tenant.caller()
    tenant.deliver()
    first = tenant.reservation(task)
    assert first.worker_sid == alice

    tenant.leg_status(first.sid, "no-answer")
    tenant.deliver()
    assert tenant.ws.tasks(task).reservations(first.sid).fetch().reservation_status == "rejected"
    assert tenant.activity_of(alice) == "Offline"  # the workspace's timeout activity
    second = tenant.reservation(task)
    assert second.worker_sid == bob
    assert [ring["To"] for ring in tenant.rings()] == [ALICE, BOB]
    assert not tenant.rest.sent("POST", f"Calls/{CALLER_SID}")  # the caller never left the queue


def test_dequeue_records_from_answer_and_rings_for_at_most_twilios_600_seconds(tenant):
    tenant.worker("alice", "sip:alice@pbx.example.com")
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from="support", dequeue_record="record-from-answer", dequeue_timeout=999)
    tenant.deliver()
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Record"], ring["Timeout"]) == (
        "sip:alice@pbx.example.com", "support", "true", "600")


@pytest.mark.parametrize("status", ["busy", "failed", "canceled"])
def test_a_busy_or_failed_worker_leg_rejects_too(tenant, status):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.leg_status(reservation.sid, status)
    assert tenant.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "rejected"
    assert tenant.task(task).assignment_status == "pending"


def test_a_reservation_that_ends_while_the_phone_rings_hangs_the_phone_up(app, clock, rest):
    tenant = Tenant(app, clock, rest, reservation_timeout=30)
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER,
                                                               dequeue_timeout=60)
    tenant.deliver()
    leg = tenant.worker_leg(reservation.sid)

    tenant.advance(30)  # the reservation times out before the phone stops ringing
    assert tenant.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "timeout"
    assert tenant.rest.sent("POST", f"Calls/{leg}") == [{"Status": "canceled"}]
    goodbye = tenant.answer(reservation.sid)  # answered just too late
    assert goodbye.find("Hangup") is not None and goodbye.find("Dial") is None
    assert not tenant.rest.sent("POST", f"Calls/{CALLER_SID}")


def test_twilio_unreachable_when_dialing_keeps_the_offer_and_the_dial_happens_once_twilio_is_back(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.rest.break_network("POST", "Calls", "refused")  # the request never reaches Twilio
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    assert len(tenant.rings()) == 1 and tenant.rest.placed == []  # tried once, never got there
    assert tenant.instruction(reservation.sid).status == "due"
    assert tenant.outbox() == []  # the retry is a durable timer, not a redelivery racing the first
    assert tenant.timers(reservation.sid) == ["reservation_timeout", "voice_instruction"]
    assert tenant.offers(task) == [(reservation.worker_sid, "pending")]

    tenant.rest.network.clear()
    tenant.advance(5)  # the retry, after a backoff
    [leg] = tenant.rest.placed
    assert len(tenant.rings()) == 2
    row = tenant.instruction(reservation.sid)
    assert (row.status, row.worker_call_sid) == ("ringing", leg)
    tenant.advance(60)
    assert tenant.rest.placed == [leg] and len(tenant.rings()) == 2  # rung once
    assert tenant.offers(task) == [(reservation.worker_sid, "pending")]


def test_a_dial_whose_answer_is_lost_is_never_repeated_and_the_legs_own_webhooks_still_count(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.rest.break_network("POST", "Calls", "lost")  # Twilio places the call; its answer times out
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    [leg] = tenant.rest.placed
    row = tenant.instruction(reservation.sid)
    assert (row.status, row.worker_call_sid) == ("ringing", None)  # maybe placed: never dialed again
    tenant.rest.network.clear()
    tenant.advance(90)  # past every backoff and lease, short of the reservation's timeout
    assert tenant.rest.placed == [leg] and len(tenant.rings()) == 1
    assert tenant.offers(task) == [(alice, "pending")]

    # The leg's webhooks name the reservation: the unknown sid is taken as its leg.
    worker_twiml = twiml(tenant.post(f"/voice/instructions/worker/answer?reservation={reservation.sid}",
                                     CallSid=leg, CallStatus="in-progress"))
    assert worker_twiml.find("Dial/Conference").text == task
    assert tenant.offers(task) == [(alice, "accepted")]
    row = tenant.instruction(reservation.sid)
    assert (row.status, row.worker_call_sid) == ("bridged", leg)
    assert tenant.rest.placed == [leg]


def test_a_twilio_5xx_to_the_dial_is_not_retried_and_the_reservation_timeout_ends_an_offer_without_a_call(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.rest.fail("POST", "Calls", 503, 20503, "Service unavailable")  # Twilio may have placed it
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.advance(119)
    assert len(tenant.rings()) == 1
    assert tenant.instruction(reservation.sid).status == "ringing"
    assert tenant.offers(task) == [(alice, "pending")]

    tenant.advance(1)  # no leg ever called back: the reservation's timeout is the backstop
    assert tenant.offers(task) == [(alice, "timeout")]
    assert tenant.activity_of(alice) == "Offline"
    assert tenant.instruction(reservation.sid).status == "ended"
    assert tenant.task(task).assignment_status == "pending"
    assert len(tenant.rings()) == 1


@pytest.mark.parametrize("dies", ["after the dial", "before the dial"])
def test_a_process_that_dies_while_dialing_is_never_followed_by_a_second_dial(tenant, monkeypatch, dies):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)

    def die(*args):
        raise RuntimeError("the process was killed")

    monkeypatch.setattr(instruction_calls, "_placed" if dies == "after the dial" else "_place_worker_call", die)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    monkeypatch.undo()  # a healthy process takes over
    placed = list(tenant.rest.placed)
    assert len(placed) == (1 if dies == "after the dial" else 0)
    assert tenant.instruction(reservation.sid).status == "dialing"

    tenant.advance(30)  # the outbox delivers its message again: the claim is held, nothing is dialed
    assert tenant.instruction(reservation.sid).status == "dialing"
    tenant.advance(30)  # the claim's lease runs out: the call may exist
    row = tenant.instruction(reservation.sid)
    assert (row.status, row.worker_call_sid) == ("ringing", None)
    assert tenant.rest.placed == placed and len(tenant.rings()) == len(placed)
    assert tenant.outbox() == []

    if placed:  # the worker answers the call the dead process placed
        tenant.post(f"/voice/instructions/worker/answer?reservation={reservation.sid}", CallSid=placed[0])
        assert tenant.offers(task) == [(alice, "accepted")]
    else:
        tenant.advance(60)
        assert tenant.offers(task) == [(alice, "timeout")]
    assert tenant.rest.placed == placed


def test_the_dial_happens_even_when_the_process_stops_between_commit_and_dial(tenant, database_url, clock):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    get_router(tenant.app).dispose()  # this process stops before its outbox delivered anything

    restarted = contact_center_app(database_url, clock)
    try:
        deliver_callbacks(restarted)
    finally:
        get_router(restarted).dispose()
    [ring] = tenant.rings()
    assert ring["To"] == ALICE
    assert tenant.instruction(reservation.sid).status == "ringing"


def test_twilio_refusing_the_workers_number_passes_the_caller_to_the_next_worker(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.rest.fail("POST", "Calls", 400, 21211, "Invalid 'To' Phone Number")
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    assert tenant.ws.tasks(task).reservations(reservation.sid).fetch().reservation_status == "rejected"
    assert tenant.activity_of(alice) == "Offline"
    assert tenant.task(task).assignment_status == "pending"


def test_a_caller_who_hung_up_before_the_worker_answered_cancels_the_task(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.rest.call_status[CALLER_SID] = "completed"
    tenant.rest.fail("POST", f"Calls/{CALLER_SID}", 400, 21220, "Call is not in-progress. Cannot redirect.")
    goodbye = tenant.answer(reservation.sid)
    assert goodbye.find("Hangup") is not None and goodbye.find("Dial") is None
    assert tenant.task(task).assignment_status == "canceled"
    assert tenant.offers(task) == [(reservation.worker_sid, "canceled")]
    assert tenant.activity_of(reservation.worker_sid) == "Available"


def test_twilio_unavailable_when_bridging_leaves_the_caller_in_queue_for_another_try(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.rest.fail("POST", f"Calls/{CALLER_SID}", 503, 20503, "Service unavailable")
    goodbye = tenant.answer(reservation.sid)
    assert goodbye.find("Hangup") is not None and goodbye.find("Dial") is None
    assert tenant.activity_of(alice) == "Available"  # not the worker's fault
    # Rejected (not offered to alice again in this routing step): the caller, untouched, still waits.
    assert tenant.offers(task) == [(alice, "rejected")]
    assert tenant.task(task).assignment_status == "pending"
    assert tenant.instruction(reservation.sid).status == "failed"
    assert len(tenant.moves()) == 1 and tenant.hang_ups(CALLER_SID) == []
    assert tenant.timers(reservation.sid) == []


def test_the_workers_leg_status_reaches_the_customers_status_callback_signed(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER, dequeue_status_callback_url=f"{CUSTOMER}/status",
        dequeue_status_callback_event=["ringing", "completed"])
    tenant.deliver()
    assert parse_qs(tenant.rest.mock.calls[0].request.body)["StatusCallbackEvent"] == ["ringing", "completed"]
    leg = tenant.worker_leg(reservation.sid)
    tenant.leg_status(reservation.sid, "ringing")
    tenant.leg_status(reservation.sid, "no-answer")
    tenant.deliver()
    forwarded = [(params["CallStatus"], params["CallSid"], params["TaskCallSid"]) for url, params, _ in
                 tenant.customer.received if url == f"{CUSTOMER}/status"]
    assert forwarded == [("ringing", leg, CALLER_SID), ("no-answer", leg, CALLER_SID)]
    url, params, headers = tenant.customer.received[0]
    assert headers["X-Twilio-Signature"] == twilio_signature(AUTH_TOKEN, url, params)


# -- conference --------------------------------------------------------------------------------------

def test_conference_over_rest_joins_worker_and_caller_in_the_tasks_room_and_completes_when_it_ends(tenant):
    alice = tenant.worker("alice")
    task = tenant.caller(queue_sid=QUEUE_SID)
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="conference", to="client:alice", from_=NUMBER, timeout=30,
        post_work_activity_sid=tenant.activities["Wrap Up"], end_conference_on_exit=True, beep="false",
        conference_status_callback=f"{CUSTOMER}/conference", conference_status_callback_event=["start", "end"])
    assert tenant.rest.requests == []
    tenant.deliver()
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Timeout"]) == ("client:alice", NUMBER, "30")

    worker_twiml = tenant.answer(reservation.sid)
    conference = worker_twiml.find("Dial/Conference")
    assert conference.text == task
    assert (conference.get("endConferenceOnExit"), conference.get("beep")) == ("true", "false")
    # Our own status callback hears the conference end, and passes the customer's events on.
    ours = f"{PUBLIC_BASE_URL}/voice/instructions/conference/status?reservation={reservation.sid}"
    assert (conference.get("statusCallback"), conference.get("statusCallbackEvent")) == (ours, "start end")
    assert tenant.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{CALLER_SID}")
    assert tenant.reservation(task, "accepted").sid == reservation.sid
    caller = twiml(tenant.post(f"/voice/instructions/caller/connect?reservation={reservation.sid}", CallSid=CALLER_SID))
    assert caller.find("Dial/Conference").text == task
    assert caller.find("Dial/Conference").get("statusCallback") == ours  # Twilio takes the first joiner's

    tenant.conference_event(reservation.sid, task, "conference-start")
    tenant.conference_event(reservation.sid, task, "participant-join", CallSid=CALLER_SID)  # not asked for
    tenant.conference_event(reservation.sid, task, "conference-end")
    assert tenant.task(task).assignment_status == "completed"
    assert tenant.activity_of(alice) == "Wrap Up"
    twiml(tenant.post(f"/voice/instructions/worker/after?reservation={reservation.sid}",
                      CallSid=tenant.worker_leg(reservation.sid), DialCallStatus="completed"))
    tenant.leg_status(reservation.sid, "completed")  # the worker's leg ends with it: nothing more changes
    assert tenant.task(task).assignment_status == "completed"
    assert tenant.offers(task) == [(alice, "completed")]

    tenant.deliver()
    forwarded = [(url, params["StatusCallbackEvent"]) for url, params, _ in tenant.customer.received]
    assert forwarded == [(f"{CUSTOMER}/conference", "conference-start"), (f"{CUSTOMER}/conference", "conference-end")]
    url, params, headers = tenant.customer.received[0]
    assert headers["X-Twilio-Signature"] == twilio_signature(AUTH_TOKEN, url, params)


def test_conference_from_an_assignment_callback(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "conference", "from": NUMBER})
    tenant.worker("alice", "client:alice")
    task = tenant.caller()
    tenant.deliver()
    reservation = tenant.reservation(task)
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"]) == ("client:alice", NUMBER)
    tenant.answer(reservation.sid)
    assert tenant.rest.sent("POST", f"Calls/{CALLER_SID}")
    assert tenant.reservation(task, "accepted").sid == reservation.sid


def test_a_conference_in_a_multitasking_workspace_wraps_up_at_the_end(app, clock, rest):
    tenant = Tenant(app, clock, rest, multi_task_enabled=True)
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="conference", from_=NUMBER)
    tenant.deliver()
    tenant.answer(reservation.sid)
    tenant.leg_status(reservation.sid, "completed")
    assert tenant.task(task).assignment_status == "assigned"  # the conference goes on without the worker
    tenant.conference_event(reservation.sid, task, "conference-end")
    assert tenant.task(task).assignment_status == "wrapping"


# -- call and redirect -------------------------------------------------------------------------------

def test_call_over_rest_accepts_at_once_and_places_the_workers_call_to_the_customers_twiml(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    updated = tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="call", call_from=NUMBER, call_url=f"{CUSTOMER}/agent", call_accept=True,
        call_status_callback_url=f"{CUSTOMER}/agent-status")
    assert updated.reservation_status == "accepted"
    assert tenant.rest.requests == []
    tenant.deliver()
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Url"]) == (ALICE, NUMBER, f"{CUSTOMER}/agent")
    assert ring["StatusCallback"] == f"{CUSTOMER}/agent-status"
    assert json.loads(tenant.task(task).attributes)["worker_call_sid"] == tenant.worker_leg(reservation.sid)


def test_call_from_an_assignment_callback_leaves_the_reservation_pending_without_accept(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "call", "to": "client:joey", "from": "support",
                                                "url": f"{CUSTOMER}/agent"})
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    tenant.deliver()
    [ring] = tenant.rings()
    assert (ring["To"], ring["From"], ring["Url"]) == ("client:joey", "support", f"{CUSTOMER}/agent")
    assert tenant.reservation(task).reservation_status == "pending"


def test_redirect_over_rest_moves_the_live_call_and_accepts(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    updated = tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="redirect", redirect_call_sid=CALLER_SID, redirect_url=f"{CUSTOMER}/room", redirect_accept=True)
    assert updated.reservation_status == "accepted"
    assert tenant.rest.requests == []
    tenant.deliver()
    assert tenant.rest.sent("POST", f"Calls/{CALLER_SID}") == [{"Url": f"{CUSTOMER}/room", "Method": "POST"}]


def test_redirect_from_an_assignment_callback_applies_the_post_work_activity_when_the_call_ends(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "redirect", "call_sid": CALLER_SID,
                                                "url": f"{CUSTOMER}/room", "accept": True})
    alice = tenant.worker("alice", ALICE)
    tenant.customer.reply["post_work_activity_sid"] = tenant.activities["Wrap Up"]
    task = tenant.caller()
    tenant.deliver()
    reservation = tenant.reservation(task, "accepted")
    [moved] = tenant.rest.sent("POST", f"Calls/{CALLER_SID}")
    assert moved["Url"] == f"{CUSTOMER}/room"
    assert moved["StatusCallback"] == f"{PUBLIC_BASE_URL}/voice/instructions/call/status?reservation={reservation.sid}"
    assert tenant.activity_of(alice) == "Available"
    tenant.post(f"/voice/instructions/call/status?reservation={reservation.sid}", CallSid=CALLER_SID,
                CallStatus="completed")
    assert tenant.activity_of(alice) == "Wrap Up"


# -- bad instructions change nothing -----------------------------------------------------------------

def _unchanged(tenant, task, reservation) -> None:
    after = tenant.ws.tasks(task).reservations(reservation.sid).fetch()
    assert (after.reservation_status, after.date_updated) == ("pending", reservation.date_updated)
    assert tenant.instruction(reservation.sid) is None
    assert tenant.rest.requests == []
    assert "worker_call_sid" not in json.loads(tenant.task(task).attributes)


@pytest.mark.parametrize("params, code", [
    ({"instruction": "dequeue", "dequeue_from": NUMBER}, 40131),  # the worker has no contact_uri
    ({"instruction": "dequeue", "dequeue_to": ALICE, "dequeue_post_work_activity_sid": "WA" + "0" * 32}, 40130),
    ({"instruction": "dequeue", "dequeue_to": ALICE, "dequeue_from": "support"}, 40132),  # a phone needs a number
    ({"instruction": "call", "call_from": NUMBER, "call_url": f"{CUSTOMER}/agent"}, 40110),
    ({"instruction": "conference", "to": ALICE, "from_": NUMBER, "post_work_activity_sid": "WA" + "0" * 32}, 40139),
    ({"instruction": "conference", "from_": NUMBER}, 40137),
])
def test_bad_instruction_parameters_over_rest_are_refused_with_taskrouters_code(tenant, params, code):
    tenant.worker("alice")  # no contact_uri
    task = tenant.caller()
    reservation = tenant.reservation(task)
    status, got, _ = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(**params))
    assert (status, got) == (400, code)
    tenant.deliver()
    _unchanged(tenant, task, reservation)


def test_dequeue_of_a_task_without_a_call_is_40140(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.ws.tasks.create(workflow_sid=tenant.workflow, attributes="{}", task_channel="voice").sid
    reservation = tenant.reservation(task)
    status, code, _ = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER))
    assert (status, code) == (400, 40140)
    _unchanged(tenant, task, reservation)


def test_an_instruction_for_a_reservation_no_longer_pending_is_40114(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(reservation_status="accepted")
    status, code, _ = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER))
    assert (status, code) == (410, 40114)
    assert tenant.instruction(reservation.sid) is None and tenant.rest.requests == []


def test_a_second_instruction_for_the_same_reservation_is_refused(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    status, code, _ = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="conference", from_=NUMBER))
    assert (status, code) == (409, 20409)
    tenant.deliver()
    assert len(tenant.rings()) == 1


@pytest.mark.parametrize("reply", [
    {"instruction": "call", "to": ALICE, "from": NUMBER, "url": "ftp://customer.example.com/agent"},  # 40112
    {"instruction": "call", "to": ALICE, "url": f"{CUSTOMER}/agent"},  # 40111: no from
    {"instruction": "redirect", "call_sid": CALLER_SID},  # 40120: no url
    {"instruction": "redirect", "call_sid": "CA-not-a-call", "url": f"{CUSTOMER}/room"},  # 40121
    {"instruction": "dequeue", "from": NUMBER, "timeout": 1000},  # beyond 999 seconds
    {"instruction": "conference", "from": NUMBER, "max_participants": 1},
])
def test_bad_assignment_callback_replies_change_nothing(app, clock, rest, reply):
    tenant = Tenant(app, clock, rest, callback=reply)
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.deliver()  # the reply is carried out, and refused
    _unchanged(tenant, task, reservation)


def test_workspaces_of_another_account_get_no_calls_placed_on_their_behalf(app, clock, rest):
    from callcenter.routing import accounts

    other = accounts.create_account(get_router(app), "Other tenant")
    client = Client(other.sid, other.secret, http_client=FlaskAppHttpClient(app), environment={"_": "_"})
    ws = client.taskrouter.v1.workspaces(client.taskrouter.v1.workspaces.create(friendly_name="Theirs").sid)
    available = ws.activities.list(friendly_name="Available")[0].sid
    queue = ws.task_queues.create(friendly_name="All", target_workers="1==1").sid
    workflow = ws.workflows.create(friendly_name="All", configuration=json.dumps(
        {"task_routing": {"filters": [], "default_filter": {"queue": queue}}})).sid
    ws.workers.create(friendly_name="carol", activity_sid=available, attributes=json.dumps({"contact_uri": ALICE}))
    task = ws.tasks.create(workflow_sid=workflow, attributes=json.dumps({"call_sid": CALLER_SID, "to": NUMBER})).sid
    [reservation] = ws.tasks(task).reservations.list()
    status, code, message = rest_error(lambda: ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER))
    assert (status, code) == (409, 20409) and ACCOUNT_SID in message
    assert rest.requests == []



# -- while the caller is moved to the worker ----------------------------------------------------------

def test_the_reservation_timeout_cannot_end_the_offer_while_the_caller_is_moved_to_the_worker(app, clock, rest):
    tenant = Tenant(app, clock, rest, reservation_timeout=30)
    alice = tenant.worker("alice", ALICE)
    clock.advance(1)
    bob = tenant.worker("bob", BOB)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    clock.advance(25)
    # The move takes a while; meanwhile the sweeper runs, past the reservation's 30 seconds.
    rest.when("POST", f"Calls/{CALLER_SID}", lambda: tenant.advance(10))

    worker_twiml = tenant.answer(reservation.sid)
    assert worker_twiml.find("Dial/Conference").text == task
    assert tenant.offers(task) == [(alice, "accepted")]  # never timed out, never offered to bob
    assert tenant.task(task).assignment_status == "assigned"
    assert (tenant.activity_of(alice), tenant.activity_of(bob)) == ("Available", "Available")
    assert [ring["To"] for ring in tenant.rings()] == [ALICE]
    assert tenant.instruction(reservation.sid).status == "bridged"
    assert tenant.timers(reservation.sid) == []


def test_a_move_that_outlasts_its_lease_rejects_the_offer_without_blaming_the_worker(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    rest = tenant.rest
    rest.when("POST", f"Calls/{CALLER_SID}", lambda: tenant.advance(61))  # as if this process had died

    goodbye = tenant.answer(reservation.sid)
    assert goodbye.find("Hangup") is not None and goodbye.find("Dial") is None
    assert tenant.offers(task) == [(alice, "rejected")]
    assert tenant.activity_of(alice) == "Available"
    assert tenant.task(task).assignment_status == "pending"
    assert tenant.instruction(reservation.sid).status == "failed"
    # The caller reached the room: they wait there (hold music) for the next worker's instruction.
    assert len(tenant.moves()) == 1 and tenant.hang_ups(CALLER_SID) == []
    assert tenant.outbox() == []


def test_a_worker_who_hangs_up_while_the_caller_is_moved_is_passed_over_and_the_next_worker_gets_the_caller(
        app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "dequeue", "from": NUMBER})
    alice = tenant.worker("alice", ALICE)
    clock.advance(1)
    bob = tenant.worker("bob", BOB)
    task = tenant.caller()
    tenant.deliver()
    first = tenant.reservation(task)
    assert first.worker_sid == alice
    rest.when("POST", f"Calls/{CALLER_SID}", lambda: tenant.leg_status(first.sid, "completed"))

    goodbye = tenant.answer(first.sid)
    assert goodbye.find("Dial") is None
    assert tenant.status_of(task, first.sid) == "rejected"  # never accepted for a worker who is gone
    assert tenant.activity_of(alice) == "Offline"  # as after a missed call
    assert tenant.instruction(first.sid).status == "ended"
    assert tenant.hang_ups(CALLER_SID) == []  # the caller waits in the room for the next worker

    tenant.deliver()
    second = tenant.reservation(task)
    assert second.worker_sid == bob
    assert [ring["To"] for ring in tenant.rings()] == [ALICE, BOB]
    worker_twiml = tenant.answer(second.sid)
    assert worker_twiml.find("Dial/Conference").text == task
    connect = f"{PUBLIC_BASE_URL}/voice/instructions/caller/connect?reservation="
    assert tenant.moves() == [connect + first.sid, connect + second.sid]
    assert sorted(tenant.offers(task)) == sorted([(alice, "rejected"), (bob, "accepted")])
    assert tenant.task(task).assignment_status == "assigned"


def test_a_worker_who_hangs_up_before_the_answer_is_handled_is_passed_over_once(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.leg_status(reservation.sid, "completed")  # Twilio's status callback won the race
    goodbye = tenant.answer(reservation.sid)
    assert goodbye.find("Dial") is None
    assert tenant.offers(task) == [(alice, "rejected")]
    assert tenant.activity_of(alice) == "Offline"
    assert tenant.moves() == []


# -- moving the caller: Twilio's answers read right ---------------------------------------------------

def test_a_caller_no_longer_in_the_given_queue_is_moved_with_the_calls_api(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller(queue_sid=QUEUE_SID)
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{CALLER_SID}", 404, 20404, "not found")

    worker_twiml = tenant.answer(reservation.sid)
    assert worker_twiml.find("Dial/Conference").text == task
    connect = f"{PUBLIC_BASE_URL}/voice/instructions/caller/connect?reservation={reservation.sid}"
    assert tenant.moves() == [connect, connect]  # Members API refused, Calls API moved the live call
    assert len(tenant.rest.sent("POST", f"Calls/{CALLER_SID}")) == 1
    assert tenant.offers(task) == [(alice, "accepted")]
    assert tenant.task(task).assignment_status == "assigned"


def test_a_live_caller_twilio_refuses_to_move_keeps_the_task_and_the_worker_as_they_are(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller(queue_sid=QUEUE_SID)
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{CALLER_SID}", 404, 20404, "not found")
    tenant.rest.fail("POST", f"Calls/{CALLER_SID}", 400, 21218, "Invalid value")

    goodbye = tenant.answer(reservation.sid)
    assert goodbye.find("Dial") is None
    assert tenant.rest.sent("GET", f"Calls/{CALLER_SID}") == [{}]  # still in-progress: not gone
    assert tenant.task(task).assignment_status == "pending"
    assert tenant.offers(task) == [(alice, "rejected")]
    assert tenant.activity_of(alice) == "Available"
    assert tenant.instruction(reservation.sid).status == "failed"


# -- Twilio refusing the dial -------------------------------------------------------------------------

@pytest.mark.parametrize("code, message", [(21210, "'From' phone number not verified"),
                                           (20003, "Authenticate"), (21215, "Geo permissions")])
def test_twilio_refusing_the_dial_for_no_fault_of_the_workers_moves_no_worker(app, clock, rest, code, message):
    tenant = Tenant(app, clock, rest, callback={"instruction": "dequeue", "from": NUMBER})
    alice = tenant.worker("alice", ALICE)
    clock.advance(1)
    bob = tenant.worker("bob", BOB)
    rest.fail("POST", "Calls", 401 if code == 20003 else 400, code, message)
    task = tenant.caller()
    tenant.deliver()

    # Each worker is tried once in this routing step; nobody is sent to the timeout activity.
    assert [ring["To"] for ring in tenant.rings()] == [ALICE, BOB]
    assert sorted(tenant.offers(task)) == sorted([(alice, "rejected"), (bob, "rejected")])  # (at one instant)
    assert (tenant.activity_of(alice), tenant.activity_of(bob)) == ("Available", "Available")
    assert tenant.task(task).assignment_status == "pending"
    tenant.advance(300)
    assert len(tenant.rings()) == 2


# -- hanging up after commit --------------------------------------------------------------------------

def test_a_ringing_phone_is_hung_up_through_the_outbox_never_from_the_thread_that_ended_the_offer(app, clock, rest):
    tenant = Tenant(app, clock, rest, reservation_timeout=30)
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    leg = tenant.worker_leg(reservation.sid)
    rest.break_network("POST", f"Calls/{leg}", "refused")

    clock.advance(30)
    tenant.router.run_due_timers()  # the sweeper fires the reservation's timeout
    assert tenant.offers(task) == [(alice, "timeout")]
    assert tenant.instruction(reservation.sid).status == "ended"
    assert rest.sent("POST", f"Calls/{leg}") == []  # nothing sent from the sweeper's thread
    assert tenant.outbox() == [f"{PUBLIC_BASE_URL}/voice/instructions/hang-up"]

    tenant.deliver()  # Twilio unreachable: the outbox keeps the hang-up
    assert len(rest.sent("POST", f"Calls/{leg}")) == 1 and rest.call_status[leg] == "queued"
    rest.network.clear()
    tenant.advance(5)
    assert rest.call_status[leg] == "canceled"
    assert tenant.hang_ups(leg) == [{"Status": "canceled"}] * 2
    assert tenant.outbox() == []


# -- status callbacks ---------------------------------------------------------------------------------

OWN_STATUS = f"{PUBLIC_BASE_URL}/voice/instructions/worker/status?reservation=WR" + "0" * 32


@pytest.mark.parametrize("params, code", [
    ({"instruction": "dequeue", "dequeue_from": NUMBER, "dequeue_status_callback_url": OWN_STATUS}, 40157),
    ({"instruction": "call", "call_from": NUMBER, "call_url": f"{CUSTOMER}/agent",
      "call_status_callback_url": "https://CC.example.com:8443/anything"}, 40158),
    ({"instruction": "conference", "from_": NUMBER, "status_callback": OWN_STATUS}, 40159),
    ({"instruction": "conference", "from_": NUMBER,
      "conference_status_callback": f"{PUBLIC_BASE_URL}/voice/instructions/conference/status"}, 20001),
])
def test_status_callbacks_pointing_at_this_server_are_refused(tenant, params, code):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    status, got, message = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(**params))
    assert (status, got) == (400, code) and "this server" in message
    tenant.deliver()
    _unchanged(tenant, task, reservation)


@pytest.mark.parametrize("url", [
    "https://cc.example.com./voice/agent/after?task=WT" + "0" * 32,  # DNS's absolute name: the same host
    "https://CC.Example.COM../voice/instructions/worker/status",
])
def test_another_spelling_of_this_servers_host_is_refused_too(tenant, url):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    status, got, message = rest_error(lambda: tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER, dequeue_status_callback_url=url))
    assert (status, got) == (400, 40157) and "this server" in message
    tenant.deliver()
    _unchanged(tenant, task, reservation)


@pytest.mark.parametrize("url, own", [
    ("http://127.0.0.1:5000/voice/status", True),
    ("http://127.1:5000/voice/status", True),  # inet_aton's spellings of 127.0.0.1
    ("http://2130706433:5000/voice/status", True),
    ("http://[::1]:5000/voice/status", True),
    ("http://[::ffff:127.0.0.1]:5000/voice/status", True),
    ("http://localhost.:5000/voice/status", True),
    ("http://0.0.0.0:5000/voice/status", True),
    ("http://localhost:3000/status", False),  # another application on this machine
    ("http://10.1.2.3:5000/status", False),
    ("https://bücher.example/status", False),
    ("not a url", False),
])
def test_this_server_is_known_by_every_spelling_of_its_loopback_address_and_port(app, url, own):
    from callcenter.voice.instructions import is_own_url

    local = {**app.config, "PUBLIC_BASE_URL": None, "CALLBACK_BASE_URL": "http://127.0.0.1:5000"}
    with patch.dict(app.config, local):
        assert is_own_url(app, url) is own


def test_a_status_callback_at_this_server_in_an_assignment_reply_changes_nothing(app, clock, rest):
    tenant = Tenant(app, clock, rest, callback={"instruction": "dequeue", "from": NUMBER,
                                                "status_callback_url": OWN_STATUS})
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.deliver()
    _unchanged(tenant, task, reservation)


def test_a_stored_status_callback_at_this_server_is_never_forwarded(tenant):
    tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from=NUMBER, dequeue_status_callback_url=f"{CUSTOMER}/status")
    tenant.deliver()
    with tenant.router.transaction(tenant.ws_sid) as tx:  # written before such URLs were refused
        row = tx.session.get(VoiceInstruction, reservation.sid)
        row.params = json.dumps({**row.options, "status_callback_url": OWN_STATUS})
    ours = tenant.customer.inner.sent
    before = len(ours)

    tenant.leg_status(reservation.sid, "no-answer")
    tenant.deliver()
    assert tenant.outbox() == []
    assert ours[before:] == [] and tenant.customer.received == []
    assert tenant.status_of(task, reservation.sid) == "rejected"


# -- conference: the task completes when the conference ends ------------------------------------------

def test_a_conference_the_worker_leaves_goes_on_and_its_task_completes_when_it_ends(tenant):
    alice = tenant.worker("alice", ALICE)
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="conference", from_=NUMBER, end_conference_on_exit=False,
        post_work_activity_sid=tenant.activities["Wrap Up"],
        conference_status_callback=f"{CUSTOMER}/conference", conference_status_callback_event=["leave"])
    tenant.deliver()
    conference = tenant.answer(reservation.sid).find("Dial/Conference")
    assert conference.get("endConferenceOnExit") == "false"
    assert conference.get("statusCallbackEvent") == "end leave"
    leg = tenant.worker_leg(reservation.sid)

    # The worker leaves; the caller stays (with a supervisor, say).
    tenant.post(f"/voice/instructions/worker/after?reservation={reservation.sid}", CallSid=leg,
                DialCallStatus="completed")
    tenant.leg_status(reservation.sid, "completed")
    tenant.conference_event(reservation.sid, task, "participant-leave", CallSid=leg)
    assert tenant.activity_of(alice) == "Wrap Up"  # the worker's part is over
    assert tenant.offers(task) == [(alice, "accepted")]
    assert tenant.task(task).assignment_status == "assigned"
    assert tenant.instruction(reservation.sid).status == "worker-left"

    tenant.conference_event(reservation.sid, task, "conference-end")
    assert tenant.offers(task) == [(alice, "completed")]
    assert tenant.task(task).assignment_status == "completed"
    assert tenant.instruction(reservation.sid).status == "ended"
    tenant.conference_event(reservation.sid, task, "conference-end")  # Twilio may say it twice
    other = tenant.conference_event(reservation.sid, "WT" + "0" * 32, "conference-end")  # not this task's room
    assert other.status_code == 204
    tenant.deliver()
    assert [params["StatusCallbackEvent"] for _, params, _ in tenant.customer.received] == ["participant-leave"]


def test_the_sip_credentials_of_a_conference_instruction_are_never_stored(tenant):
    tenant.worker("alice", "sip:alice@pbx.example.com")
    task = tenant.caller()
    reservation = tenant.reservation(task)
    tenant.ws.tasks(task).reservations(reservation.sid).update(
        instruction="conference", from_="support", sip_auth_username="alice", sip_auth_password="s3cret-pass")
    row = tenant.instruction(reservation.sid)
    assert "s3cret-pass" not in row.params and "sip_auth" not in row.params
    assert row.options["to"] == "sip:alice@pbx.example.com"


# -- retention ---------------------------------------------------------------------------------------

def dequeued_and_done(tenant) -> str:
    """Alice takes a caller by `dequeue`, hangs up, and the customer completes the task; returns the reservation."""
    tenant.worker("alice", ALICE)
    task = tenant.caller(queue_sid=QUEUE_SID)
    reservation = tenant.reservation(task).sid
    tenant.ws.tasks(task).reservations(reservation).update(instruction="dequeue", dequeue_from=NUMBER)
    tenant.deliver()
    tenant.answer(reservation)
    tenant.leg_status(reservation, "completed")
    tenant.ws.tasks(task).update(assignment_status="completed")
    tenant.advance(TASK_RETENTION_SECONDS)  # the task is deleted, and its reservations
    return reservation


def test_a_voice_instruction_goes_once_its_reservation_is_gone_and_the_event_retention_has_passed(tenant):
    reservation = dequeued_and_done(tenant)
    purge = dict(tenant.router.purgers)["call records"]
    tenant.clock.advance(30 * DAY - TASK_RETENTION_SECONDS - 60)
    assert purge(tenant.router) == 0
    assert tenant.instruction(reservation).status == "ended"  # kept: under 30 days old
    tenant.clock.advance(61)
    assert purge(tenant.router) == 1
    assert tenant.instruction(reservation) is None


def test_a_shorter_call_retention_takes_voice_instructions_with_it(tenant):
    reservation = dequeued_and_done(tenant)  # its parameters hold phone numbers
    tenant.clock.advance(7 * DAY)
    assert purge_call_records(tenant.router, timedelta(days=7)) == 1
    assert tenant.instruction(reservation) is None
