"""End to end through the phone simulator: TaskRouter's canonical voice quickstart, run against our server.

A customer's own app answers its number with `<Enqueue>`, creates the caller's task through our
TaskRouter API (the official SDK), and answers each assignment callback with `{"instruction":
"dequeue"}`. The simulator plays Twilio: it rings the workers' phones, fetches and follows the
TwiML, and signs every webhook. Time is virtual and shared with the engine.
"""

from __future__ import annotations

import json

import pytest
from flask import Flask, Response, jsonify, request
from sqlalchemy import select
from twilio.rest import Client

from app import create_app
from callcenter.database import get_router
from callcenter.routing.models import Reservation
from callcenter.simulator import Caller, WsgiTransport, simulator_of
from callcenter.simulator.harness import Harness, WsgiCallbacks, wire_in_process
from tests.api.conftest import FlaskAppHttpClient

pytestmark = pytest.mark.slow

ACCOUNT_SID = "AC" + "e3" * 16
AUTH_TOKEN = "instructions-end-to-end-token-0123"
OUR_URL = "https://taskrouter.example.com"
CUSTOMER = "https://customer.example.com"
CUSTOMER_NUMBER = "+15550107000"
ALICE, BOB = "+15550107001", "+15550107002"


class ByHost:
    """Hands a request to the customer's app or to ours, by the URL's host (the simulator's and the outbox's)."""

    def __init__(self, ours, customer) -> None:
        self.ours, self.customer = ours, customer

    def send(self, method, url, params, headers):  # the simulator's transport
        return (self.customer if url.startswith(CUSTOMER) else self.ours).send(method, url, params, headers)

    def __call__(self, url, params, headers, timeout):  # the engine's outbox transport
        return (self.customer if url.startswith(CUSTOMER) else self.ours)(url, params, headers, timeout)


class CustomerReply:
    """What the customer's app answers to each assignment callback (the quickstart's dequeue by default)."""

    def __init__(self, wrap_up: str) -> None:
        self.wrap_up = wrap_up
        self.instruction = "dequeue"
        self.conference_events: list[str] = []

    def __call__(self, form) -> dict:
        if self.instruction == "dequeue":
            return {"instruction": "dequeue", "timeout": 15, "post_work_activity_sid": self.wrap_up}
        if self.instruction == "conference":
            return {"instruction": "conference", "timeout": 15, "post_work_activity_sid": self.wrap_up,
                    "conference_status_callback": f"{CUSTOMER}/conference",
                    "conference_status_callback_event": "join leave end"}
        caller = json.loads(form["TaskAttributes"])["call_sid"]
        return {"instruction": "redirect", "call_sid": caller, "url": f"{CUSTOMER}/room", "accept": True,
                "post_work_activity_sid": self.wrap_up}


def customer_app(taskrouter, workspace_sid: str, workflow_sid: str, reply: CustomerReply) -> Flask:
    """The quickstart's server: enqueue the caller with a task; answer each assignment with `reply`."""
    app = Flask("customer")

    @app.post("/incoming")
    def incoming():
        taskrouter.workspaces(workspace_sid).tasks.create(
            workflow_sid=workflow_sid, task_channel="voice",
            attributes=json.dumps({"call_sid": request.form["CallSid"], "from": request.form["From"],
                                   "to": request.form["To"]}))
        return Response("<Response><Enqueue>support</Enqueue></Response>", mimetype="text/xml")

    @app.post("/assignment")
    def assignment():
        return jsonify(reply(request.form))

    @app.post("/conference")
    def conference():  # the conference's events the instruction asked for
        reply.conference_events.append(request.form["StatusCallbackEvent"])
        return Response(status=204)

    @app.post("/room")
    def room():  # where a redirected caller goes: a short message, then the call ends
        return Response("<Response><Say>Thanks for waiting, goodbye.</Say><Hangup/></Response>", mimetype="text/xml")

    return app


@pytest.fixture
def world(database_url):
    app = create_app({
        "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False, "LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": OUR_URL,
        "SECRET_KEY": "e2e", "TESTING": True,
    })
    twilio = wire_in_process(app, number="+15550100000")
    sim, router = simulator_of(twilio), get_router(app)
    taskrouter = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=FlaskAppHttpClient(app),
                        environment={"_": "_"}).taskrouter.v1
    workspace_sid = taskrouter.workspaces.create(friendly_name="Quickstart", multi_task_enabled=False).sid
    workspace = taskrouter.workspaces(workspace_sid)
    activities = {a.friendly_name: a.sid for a in workspace.activities.list()}
    wrap_up = workspace.activities.create(friendly_name="Wrap Up", available=False).sid
    queue = workspace.task_queues.create(friendly_name="Support", target_workers="1==1").sid
    workflow = workspace.workflows.create(
        friendly_name="Quickstart", assignment_callback_url=f"{CUSTOMER}/assignment",
        configuration=json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queue}}})).sid
    reply = CustomerReply(wrap_up)
    customer = customer_app(taskrouter, workspace_sid, workflow, reply)
    sim.transport = ByHost(sim.transport, WsgiTransport(customer))
    router.deliverer.transport = ByHost(router.deliverer.transport, WsgiCallbacks(customer))
    sim.add_number(CUSTOMER_NUMBER, voice_url=f"{CUSTOMER}/incoming")
    try:
        yield router, sim, workspace, activities, wrap_up, reply
    finally:
        router.dispose()


def test_dequeue_quickstart_an_unanswered_worker_passes_the_caller_to_the_next_who_talks_to_them(world):
    router, sim, workspace, activities, wrap_up, _ = world
    sim.add_phone(ALICE, answer_after=None)  # rings out
    sim.add_phone(BOB, answer_after=3, handle_time=None)  # talks until the caller hangs up
    alice = workspace.workers.create(friendly_name="alice", activity_sid=activities["Available"],
                                     attributes=json.dumps({"contact_uri": ALICE})).sid
    sim.clock.advance(1)  # alice has waited longest: she is offered the first caller
    bob = workspace.workers.create(friendly_name="bob", activity_sid=activities["Available"],
                                   attributes=json.dumps({"contact_uri": BOB})).sid
    harness = Harness(router, sim)
    harness.touch()

    caller = sim.place_call(Caller("+14155550199", talk_time=40), to=CUSTOMER_NUMBER)
    assert harness.run_until_quiet(max_seconds=600)

    assert not sim.errors, sim.errors[:3]
    refused = [hook for call in sim.calls.values() for hook in call.webhooks() if hook["status"] >= 400]
    assert not refused, refused[:3]
    assert caller.outcome == "answered" and caller.talked
    legs = [call for call in sim.calls.values() if call.direction == "outbound-api"]
    assert [(leg.to, leg.status) for leg in legs] == [(ALICE, "no-answer"), (BOB, "completed")]
    assert legs[0].from_ == CUSTOMER_NUMBER  # the number the caller dialled, as TaskRouter uses

    [listed] = workspace.tasks.list()
    task = workspace.tasks(listed.sid).fetch()
    assert task.assignment_status == "assigned"  # a dequeued task stays assigned until the app completes it
    assert json.loads(task.attributes)["worker_call_sid"] == legs[1].sid
    with router.read() as session:
        outcomes = [(r.worker_sid, r.reservation_status) for r in session.scalars(
            select(Reservation).where(Reservation.task_sid == task.sid).order_by(Reservation.date_created))]
    assert outcomes == [(alice, "rejected"), (bob, "accepted")]
    assert workspace.workers(alice).fetch().activity_name == "Offline"  # the workspace's timeout activity
    assert workspace.workers(bob).fetch().activity_sid == wrap_up  # post_work_activity_sid, at the call's end


def test_redirect_moves_the_caller_to_the_customers_twiml_and_the_call_end_applies_post_work(world):
    router, sim, workspace, activities, wrap_up, reply = world
    reply.instruction = "redirect"
    dana = workspace.workers.create(friendly_name="dana", activity_sid=activities["Available"]).sid
    harness = Harness(router, sim)
    harness.touch()

    caller = sim.place_call(Caller("+14155550198"), to=CUSTOMER_NUMBER)
    assert harness.run_until_quiet(max_seconds=600)

    assert not sim.errors, sim.errors[:3]
    assert [hook["url"].split("?")[0] for hook in caller.webhooks()] == [
        f"{CUSTOMER}/incoming", f"{CUSTOMER}/room", f"{OUR_URL}/voice/instructions/call/status"]
    [listed] = workspace.tasks.list()
    assert listed.assignment_status == "assigned"  # accepted at once ("accept": true)
    assert workspace.workers(dana).fetch().activity_sid == wrap_up


def test_conference_quickstart_the_worker_leaves_first_and_the_task_completes_when_the_conference_ends(world):
    router, sim, workspace, activities, wrap_up, reply = world
    reply.instruction = "conference"
    sim.add_phone(ALICE, answer_after=2, handle_time=20)  # hangs up after 20 s; the caller stays on
    alice = workspace.workers.create(friendly_name="alice", activity_sid=activities["Available"],
                                     attributes=json.dumps({"contact_uri": ALICE})).sid
    harness = Harness(router, sim)
    harness.touch()

    caller = sim.place_call(Caller("+14155550197", talk_time=45), to=CUSTOMER_NUMBER)
    assert harness.run_until_quiet(max_seconds=600)

    assert not sim.errors, sim.errors[:3]
    refused = [hook for call in sim.calls.values() for hook in call.webhooks() if hook["status"] >= 400]
    assert not refused, refused[:3]
    assert caller.outcome == "answered" and caller.talked
    [leg] = [call for call in sim.calls.values() if call.direction == "outbound-api"]
    assert (leg.to, leg.status) == (ALICE, "completed")
    [listed] = workspace.tasks.list()
    assert listed.assignment_status == "completed"  # at the conference's end, not at the worker's leaving
    [reservation] = workspace.tasks(listed.sid).reservations.list()
    assert reservation.reservation_status == "completed"
    assert workspace.workers(alice).fetch().activity_sid == wrap_up
    # The customer heard what it asked for, in order: both joined, alice left, the caller left, the end.
    assert reply.conference_events == ["participant-join", "participant-join", "participant-leave",
                                       "participant-leave", "conference-end"]
