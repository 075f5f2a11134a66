"""The REST API through the official twilio SDK: Calls, Queues, Members, Messages, and Twilio's errors."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from callcenter.simulator import Caller, WsgiHttpClient
from tests.simulator.conftest import ACCOUNT_SID, NUMBER, twiml


def test_outbound_call_posts_status_callbacks_and_runs_its_url_when_answered(sim, phone_app, client):
    sim.add_phone("+15559990001", answer_after=5, handle_time=None)
    phone_app.on("/voice/outbound", twiml("<Say>Your appointment is tomorrow</Say>"))
    call = client.calls.create(to="+15559990001", from_=NUMBER, url="http://app.test/voice/outbound",
                               status_callback="http://app.test/voice/status",
                               status_callback_event=["initiated", "ringing", "answered", "completed"], timeout=20)
    assert call.status == "queued" and call._from == NUMBER and call.direction == "outbound-api"
    sim.run_until_idle()
    statuses = phone_app.requests_to("/voice/status")
    assert [s["CallStatus"] for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s["SequenceNumber"] for s in statuses] == ["0", "1", "2", "3"]
    assert statuses[-1]["CallDuration"] == "2" and statuses[-1]["CallbackSource"] == "call-progress-events"
    fetched = client.calls(call.sid).fetch()
    assert fetched.status == "completed" and fetched.duration == "2" and fetched.start_time is not None
    assert [c.sid for c in client.calls.list(to="+15559990001")] == [call.sid]


def test_update_redirects_a_live_call_and_completes_it(sim, phone_app, client):
    phone_app.on("/voice/incoming", twiml('<Pause length="100"/>'))
    phone_app.on("/voice/moved", twiml('<Pause length="50"/>'))
    call = sim.place_call(Caller("+15551230001"))
    sim.advance(10)
    client.calls(call.sid).update(url="http://app.test/voice/moved", method="POST")
    sim.advance(5)
    assert call.webhooks("rest")[0]["url"] == "http://app.test/voice/moved"
    client.calls(call.sid).update(twiml="<Response><Say>Inline</Say><Pause length=\"40\"/></Response>")
    sim.advance(5)
    assert call.verbs()[-2:] == ["Say", "Pause"]
    client.calls(call.sid).update(status="completed")
    sim.advance(0)
    assert call.status == "completed" and call.duration() == 20


def test_canceling_a_ringing_call_stops_it(sim, client):
    sim.add_phone("client:alice", answer_after=None)
    call = client.calls.create(to="client:alice", from_=NUMBER, url="http://app.test/voice/agent")
    sim.advance(3)
    assert client.calls(call.sid).fetch().status == "ringing"
    client.calls(call.sid).update(status="canceled")
    sim.advance(0)
    assert client.calls(call.sid).fetch().status == "canceled"


def test_queues_create_list_fetch_and_members(sim, phone_app, client):
    queue = client.queues.create(friendly_name="sales", max_size=10)
    assert queue.max_size == 10 and queue.current_size == 0 and queue.sid.startswith("QU")
    phone_app.on("/voice/incoming", twiml('<Enqueue waitUrl="/voice/wait">sales</Enqueue>'))
    phone_app.on("/voice/wait", twiml('<Pause length="30"/>'))
    caller = sim.place_call(Caller("+15551230001"))
    sim.advance(12)
    fetched = client.queues(queue.sid).fetch()
    assert fetched.current_size == 1 and fetched.average_wait_time == 12 and fetched.friendly_name == "sales"
    assert [q.friendly_name for q in client.queues.list()] == ["sales"]
    front = client.queues(queue.sid).members("Front").fetch()
    assert (front.call_sid, front.position, front.wait_time) == (caller.sid, 1, 12)
    assert front.date_enqueued is not None  # RFC 2822, parsed by the SDK


def test_members_list_pages_through_the_sdk(sim, phone_app, client):
    phone_app.on("/voice/incoming", twiml('<Enqueue waitUrl="/voice/wait">sales</Enqueue>'))
    phone_app.on("/voice/wait", twiml('<Pause length="30"/>'))
    calls = [sim.place_call(Caller(f"+1555123000{i}")) for i in range(3)]
    sim.advance(1)
    queue = sim.queue_named("sales")
    assert [m.call_sid for m in client.queues(queue.sid).members.list(page_size=2)] == [c.sid for c in calls]


def test_messages_create_send_status_callbacks_and_list(sim, phone_app, client):
    message = client.messages.create(to="+15551230001", from_=NUMBER, body="Your callback is scheduled",
                                     status_callback="http://app.test/sms/status")
    assert message.status == "queued" and message.from_ == NUMBER and message.body == "Your callback is scheduled"
    sim.run_until_idle()
    assert [s["MessageStatus"] for s in phone_app.requests_to("/sms/status")] == ["sent", "delivered"]
    assert client.messages(message.sid).fetch().status == "delivered"
    assert [m.sid for m in client.messages.list(to="+15551230001")] == [message.sid]


def test_incoming_text_is_posted_signed_and_message_replies_are_sent(sim, phone_app, client):
    phone_app.on("/sms/incoming", lambda form: twiml(f"<Message>You said {form['Body']}</Message>"))
    sim.send_sms("+15551230001", "status")
    sim.run_until_idle()
    [posted] = phone_app.requests_to("/sms/incoming")
    assert posted["Body"] == "status" and posted["From"] == "+15551230001" and posted["To"] == NUMBER
    replies = client.messages.list(to="+15551230001")
    assert [(m.body, m.from_, m.direction) for m in replies] == [("You said status", NUMBER, "outbound-reply")]


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"to": "", "from_": NUMBER, "url": "http://app.test/x"}, 400, 21201),
    ({"to": "+15551230001", "from_": "", "url": "http://app.test/x"}, 400, 21213),
    ({"to": "+15551230001", "from_": NUMBER}, 400, 21205),
    ({"to": "+15551230001", "from_": NUMBER, "url": "not a url"}, 400, 21205),
    ({"to": "12ab", "from_": NUMBER, "url": "http://app.test/x"}, 400, 21211),
])
def test_bad_call_parameters_are_twilio_errors(client, params, status, code):
    with pytest.raises(TwilioRestException) as raised:
        client.calls.create(**params)
    assert (raised.value.status, raised.value.code) == (status, code)


def test_unknown_resources_are_404_with_code_20404(sim, client):
    unknown = "CA" + "0" * 32
    with pytest.raises(TwilioRestException) as raised:
        client.calls(unknown).update(url="http://app.test/x")
    assert (raised.value.status, raised.value.code) == (404, 20404) and unknown in raised.value.msg
    with pytest.raises(TwilioRestException) as raised:
        client.queues("QU" + "0" * 32).members("Front").fetch()
    assert raised.value.code == 20404
    queue = client.queues.create(friendly_name="empty")
    with pytest.raises(TwilioRestException) as raised:
        client.queues(queue.sid).members("Front").update(url="http://app.test/x")
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_redirecting_a_finished_call_is_21220(sim, phone_app, client):
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    with pytest.raises(TwilioRestException) as raised:
        client.calls(call.sid).update(url="http://app.test/voice/next")
    assert (raised.value.status, raised.value.code) == (400, 21220)


def test_message_errors(client):
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="+15551230001", from_=NUMBER, body="")
    assert raised.value.code == 21602
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="", from_=NUMBER, body="hi")
    assert raised.value.code == 21604


def test_duplicate_and_invalid_queue_names_are_refused(client):
    client.queues.create(friendly_name="support")
    with pytest.raises(TwilioRestException) as raised:
        client.queues.create(friendly_name="support")
    assert raised.value.status == 400
    with pytest.raises(TwilioRestException) as raised:
        client.queues.create(friendly_name="x" * 65)
    assert raised.value.code == 20002


def test_wrong_credentials_are_401_20003(twilio):
    intruder = Client(ACCOUNT_SID, "wrong-token", http_client=WsgiHttpClient(twilio), environment={"_": "_"})
    with pytest.raises(TwilioRestException) as raised:
        intruder.calls.create(to="+15551230001", from_=NUMBER, url="http://app.test/x")
    assert (raised.value.status, raised.value.code) == (401, 20003)
    with pytest.raises(TwilioException):
        intruder.queues.list()
