"""Queues: waiting with a wait URL, patience, Leave, dequeue through Members, and <Dial><Queue>."""

from __future__ import annotations

from callcenter.simulator import Caller
from tests.simulator.conftest import twiml

ENQUEUE = twiml('<Enqueue action="/voice/after-queue" waitUrl="/voice/wait">support</Enqueue>')


def test_wait_url_is_looped_with_queue_position_and_time(sim, phone_app):
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", twiml("<Say>Please hold</Say>", '<Pause length="8"/>'))
    first = sim.place_call(Caller("+15551230001"))
    sim.advance(1)
    second = sim.place_call(Caller("+15551230002"))
    sim.advance(25)
    waits = [form for form in phone_app.requests_to("/voice/wait") if form["CallSid"] == second.sid]
    assert [w["QueuePosition"] for w in waits] == ["2", "2", "2"]
    assert [w["QueueTime"] for w in waits] == ["0", "9", "18"]  # "Please hold" 1 s + 8 s pause
    assert waits[-1]["CurrentQueueSize"] == "2" and waits[-1]["QueueSid"].startswith("QU")
    assert first.status == second.status == "in-progress"


def test_patience_expiring_hangs_up_with_queue_result_hangup(sim, phone_app):
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", twiml('<Play loop="0">https://example.com/hold.mp3</Play>'))
    call = sim.place_call(Caller("+15551230001", patience=45))
    sim.run_until_idle()
    [after] = phone_app.requests_to("/voice/after-queue")
    assert after["QueueResult"] == "hangup" and after["QueueTime"] == "45" and after["CallStatus"] == "completed"
    assert call.status == "completed" and call.outcome == "abandoned" and call.duration() == 45
    assert sim.queue_named("support").members == []


def test_leave_in_the_wait_url_continues_with_the_action(sim, phone_app):
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", lambda form: twiml("<Leave/>") if int(form["QueueTime"]) >= 10
                 else twiml('<Pause length="10"/>'))
    phone_app.on("/voice/after-queue", twiml("<Say>Nobody is free, goodbye</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    [after] = phone_app.requests_to("/voice/after-queue")
    assert after["QueueResult"] == "leave" and after["QueueTime"] == "10"
    assert call.verbs() == ["Enqueue", "Pause", "Leave", "Say"]


def test_full_queue_sends_queue_full_at_once(sim, phone_app):
    sim.create_queue("support", max_size=1)
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", twiml('<Pause length="60"/>'))
    sim.place_call(Caller("+15551230001"))
    sim.advance(1)
    second = sim.place_call(Caller("+15551230002"))
    sim.advance(1)
    after = phone_app.requests_to("/voice/after-queue")
    assert [(a["CallSid"], a["QueueResult"]) for a in after] == [(second.sid, "queue-full")]


def test_dequeue_by_call_sid_takes_exactly_that_caller(sim, phone_app, client):
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", twiml('<Pause length="30"/>'))
    phone_app.on("/voice/connect", twiml("<Say>Connecting you to Alice</Say>"))
    first = sim.place_call(Caller("+15551230001"))
    sim.advance(5)
    second = sim.place_call(Caller("+15551230002"))
    sim.advance(5)
    queue = sim.queue_named("support")
    members = client.queues(queue.sid).members.list()
    assert [(m.call_sid, m.position) for m in members] == [(first.sid, 1), (second.sid, 2)]

    member = client.queues(queue.sid).members(second.sid).update(url="http://app.test/voice/connect", method="POST")
    assert member.call_sid == second.sid
    sim.advance(1)

    [after] = phone_app.requests_to("/voice/after-queue")
    assert after["CallSid"] == second.sid and after["QueueResult"] == "redirected"
    [connect] = phone_app.requests_to("/voice/connect")
    assert connect["CallSid"] == second.sid
    assert [m.call.sid for m in queue.members] == [first.sid]
    assert client.queues(queue.sid).members("Front").fetch().call_sid == first.sid


def test_dial_queue_bridges_the_front_caller_until_the_agent_hangs_up(sim, phone_app, client):
    sim.add_phone("client:alice", answer_after=3, handle_time=120)
    phone_app.on("/voice/incoming", ENQUEUE)
    phone_app.on("/voice/wait", twiml('<Pause length="30"/>'))
    phone_app.on("/voice/agent", twiml('<Dial action="/voice/agent-done">',
                                       '<Queue url="/voice/whisper">support</Queue></Dial>'))
    phone_app.on("/voice/whisper", twiml("<Say>An agent is ready</Say>"))
    phone_app.on("/voice/after-queue", twiml("<Say>Thanks for calling</Say>"))
    caller = sim.place_call(Caller("+15551230001"))
    sim.advance(10)
    agent = client.calls.create(to="client:alice", from_="+15550100000", url="http://app.test/voice/agent")
    sim.run_until_idle()

    [whisper] = phone_app.requests_to("/voice/whisper")
    assert whisper["CallSid"] == caller.sid and whisper["DequeingCallSid"] == agent.sid
    [agent_done] = phone_app.requests_to("/voice/agent-done")
    assert agent_done["DialCallStatus"] == "completed" and agent_done["DialCallSid"] == caller.sid
    [after] = phone_app.requests_to("/voice/after-queue")
    assert after["QueueResult"] == "bridged" and after["QueueTime"] == "13"
    assert caller.outcome == "answered" and caller.verbs()[-1] == "Say"
    assert client.calls(agent.sid).fetch().status == "completed"
    assert sim.errors == []
