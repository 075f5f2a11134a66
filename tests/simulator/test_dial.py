"""<Dial> to simulated phones, and conferences."""

from __future__ import annotations

from callcenter.simulator import Caller
from tests.simulator.conftest import twiml


def test_dial_client_rings_connects_and_reports_completed_when_the_agent_hangs_up(sim, phone_app):
    alice = sim.add_phone("client:alice", answer_after=4, handle_time=90)
    phone_app.on("/voice/incoming", twiml('<Dial action="/voice/dialed" timeout="20"><Client statusCallback="/voice/leg"'
                                          ' statusCallbackEvent="initiated ringing answered completed">alice</Client>'
                                          "</Dial>"))
    phone_app.on("/voice/dialed", twiml("<Say>Thanks</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    [dialed] = phone_app.requests_to("/voice/dialed")
    assert dialed["DialCallStatus"] == "completed" and dialed["DialCallDuration"] == "90"
    leg = sim.calls[dialed["DialCallSid"]]
    assert leg.to == "client:alice" and leg.parent_call_sid == call.sid and leg.direction == "outbound-dial"
    assert [form["CallStatus"] for form in phone_app.requests_to("/voice/leg")] == [
        "initiated", "ringing", "in-progress", "completed"]
    assert alice.calls == [leg.sid] and alice.active_calls == set()
    assert call.outcome == "answered" and call.duration() == 4 + 90 + 1


def test_dial_to_a_phone_that_never_answers_is_no_answer_after_the_timeout(sim, phone_app):
    sim.add_phone("+15559990001", answer_after=None)
    phone_app.on("/voice/incoming", twiml('<Dial action="/voice/dialed" timeout="15"><Number>+15559990001</Number></Dial>'))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    [dialed] = phone_app.requests_to("/voice/dialed")
    assert dialed["DialCallStatus"] == "no-answer"
    assert call.duration() == 15
    legs = [c for c in sim.calls.values() if c.parent_call_sid == call.sid]
    assert [leg.status for leg in legs] == ["no-answer"]


def test_dial_to_a_busy_phone_is_busy_and_continues_without_action(sim, phone_app):
    sim.add_phone("client:bob", busy=True)
    phone_app.on("/voice/incoming", twiml("<Dial><Client>bob</Client></Dial>", "<Say>Bob is busy</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.verbs() == ["Dial", "Say"]
    assert [e["DialCallStatus"] for e in call.entries("dial-ended")] == ["busy"]


def test_first_phone_to_answer_wins_and_the_others_stop_ringing(sim, phone_app):
    sim.add_phone("client:slow", answer_after=10)
    sim.add_phone("client:fast", answer_after=2, handle_time=30)
    phone_app.on("/voice/incoming", twiml('<Dial action="/voice/dialed"><Client>slow</Client><Client>fast</Client></Dial>'))
    sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    [dialed] = phone_app.requests_to("/voice/dialed")
    assert sim.calls[dialed["DialCallSid"]].to == "client:fast"
    slow = next(c for c in sim.calls.values() if c.to == "client:slow")
    assert slow.status == "canceled"


def test_caller_hanging_up_during_the_conversation_ends_the_agents_leg(sim, phone_app):
    sim.add_phone("client:alice", answer_after=1, handle_time=None)
    phone_app.on("/voice/incoming", twiml('<Dial action="/voice/dialed"><Client>alice</Client></Dial>'))
    call = sim.place_call(Caller("+15551230001", talk_time=40))
    sim.run_until_idle()
    [dialed] = phone_app.requests_to("/voice/dialed")
    assert dialed["DialCallStatus"] == "completed" and dialed["CallStatus"] == "completed"
    leg = sim.calls[dialed["DialCallSid"]]
    assert leg.status == "completed" and leg.end_time == call.end_time


def test_conference_bridges_an_agent_call_and_a_dequeued_caller(sim, phone_app, client):
    sim.add_phone("client:alice", answer_after=2, handle_time=60)
    phone_app.on("/voice/incoming", twiml('<Enqueue action="/voice/after-queue" waitUrl="/voice/wait">support</Enqueue>',
                                          "<Say>after the queue</Say>"))
    phone_app.on("/voice/wait", twiml('<Pause length="20"/>'))
    phone_app.on("/voice/agent", twiml('<Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="true" '
                                       'statusCallback="/voice/conference" statusCallbackEvent="start end join leave">'
                                       "room-1</Conference></Dial>"))
    phone_app.on("/voice/customer", twiml('<Dial action="/voice/customer-done"><Conference startConferenceOnEnter="false">'
                                          "room-1</Conference></Dial>", "<Say>never</Say>"))
    phone_app.on("/voice/customer-done", twiml("<Say>Goodbye</Say>"))
    other = sim.place_call(Caller("+15551230009"))
    caller = sim.place_call(Caller("+15551230001"))
    sim.advance(10)

    agent = client.calls.create(to="client:alice", from_="+15550100000", url="http://app.test/voice/agent")
    sim.advance(3)
    queue = sim.queue_named("support")
    client.queues(queue.sid).members(caller.sid).update(url="http://app.test/voice/customer")
    sim.advance(1)
    assert caller.conference == "room-1" and sim.calls[agent.sid].conference == "room-1"
    sim.advance(70)

    events = [(form["StatusCallbackEvent"], form["CallSid"]) for form in phone_app.requests_to("/voice/conference")]
    assert events[:2] == [("participant-join", agent.sid), ("conference-start", agent.sid)]
    assert ("participant-leave", agent.sid) in events and ("conference-end", agent.sid) in events
    assert sim.calls[agent.sid].status == "completed" and sim.calls[agent.sid].duration() == 61  # 1 s alone
    assert phone_app.requests_to("/voice/customer-done")[0]["DialCallStatus"] == "completed"
    assert caller.status == "completed" and caller.outcome == "answered" and caller.verbs()[-1] == "Say"
    assert [m.call.sid for m in queue.members] == [other.sid]
    assert sim.errors == []
