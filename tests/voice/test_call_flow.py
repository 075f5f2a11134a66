"""A whole call, webhook by webhook: answered, passed to the next agent, abandoned, voicemail, retried webhooks."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from callcenter.routing.tasks import delete_task
from callcenter.voice.models import Call
from tests.support import PUBLIC_BASE_URL

from .conftest import CALLER, NUMBER, twiml

QUEUE_SID = "QU" + "9" * 32


def ring_alice(scenario):
    """Alice is available and a sales caller dials in: her phone rings. Returns (CallSid, the reservation)."""
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    [reservation] = scenario.reservations(caller)
    return caller, reservation


def answer(scenario, reservation_sid: str, digits: str | None = "1"):
    """The agent's phone is answered and (by default) the agent presses 1; returns the agent's TwiML."""
    leg = scenario.agent_leg(reservation_sid)
    root = twiml(scenario.post(f"/voice/agent/answer?reservation={reservation_sid}", CallSid=leg.call_sid,
                               CallStatus="in-progress"))
    assert root.find("Gather") is not None
    params = {"Digits": digits} if digits is not None else {}
    return twiml(scenario.post(f"/voice/agent/confirm?reservation={reservation_sid}", CallSid=leg.call_sid, **params))


def test_answered_call_bridges_exactly_this_caller_to_the_agent_then_wraps_up(scenario):
    other_caller = scenario.dial(digits="1")  # waits in the same Twilio queue, for sales: nobody is available
    caller = scenario.dial(digits="2")  # support: Bob can take it
    scenario.set_activity("Bob", "Available")
    scenario.deliver()

    task = scenario.task(caller)
    assert json.loads(task.attributes) == {"type": "inbound_call", "call_sid": caller, "from": CALLER, "to": NUMBER,
                                           "direction": "inbound", "selected_product": "support"}
    [reservation] = scenario.reservations(caller)
    assert reservation.worker_sid == scenario.worker("Bob").sid and reservation.reservation_status == "pending"
    [ring] = scenario.ring_requests()
    assert ring["To"] == "+15005550002" and ring["From"] == NUMBER and ring["Timeout"] == "12"
    assert ring["Url"] == f"{PUBLIC_BASE_URL}/voice/agent/answer?reservation={reservation.sid}"
    assert ring["StatusCallback"] == f"{PUBLIC_BASE_URL}/voice/agent/status?reservation={reservation.sid}"

    agent_twiml = answer(scenario, reservation.sid)
    conference = agent_twiml.find("Dial/Conference")
    assert conference.text == task.sid and conference.get("endConferenceOnExit") == "true"
    # Exactly this caller left the queue (by CallSid, not the head of the queue) for the same room.
    [dequeue] = scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{caller}")
    assert dequeue["Url"] == f"{PUBLIC_BASE_URL}/voice/caller/connect"
    assert not scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{other_caller}")
    caller_twiml = twiml(scenario.post("/voice/caller/connect", CallSid=caller))
    assert caller_twiml.find("Dial/Conference").text == task.sid
    assert scenario.task(caller).assignment_status == "assigned"
    assert scenario.activity_of("Bob") == "On a call"
    assert scenario.call(caller).outcome == "answered"

    # The agent hangs up: the conference ends, the task wraps up, the agent gets 30 s of wrap-up.
    twiml(scenario.post(f"/voice/agent/after?task={task.sid}", CallSid=scenario.agent_leg(reservation.sid).call_sid))
    assert scenario.task(caller).assignment_status == "wrapping"
    assert scenario.activity_of("Bob") == "Wrap-up"
    scenario.advance(29)
    assert scenario.task(caller).assignment_status == "wrapping"
    scenario.advance(1)
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Bob") == "Available"


def test_agent_who_does_not_answer_goes_offline_is_told_by_sms_and_the_next_agent_is_rung(scenario):
    scenario.set_activity("Bob", "Available")
    scenario.clock.advance(5)
    scenario.set_activity("Alice", "Available")  # Bob has been idle longer: he is rung first
    caller = scenario.dial(digits="2")
    scenario.deliver()
    [first] = scenario.reservations(caller)
    assert first.worker_sid == scenario.worker("Bob").sid

    leg = scenario.agent_leg(first.sid)
    scenario.post(f"/voice/agent/status?reservation={first.sid}", CallSid=leg.call_sid, CallStatus="no-answer")
    scenario.deliver()

    assert scenario.activity_of("Bob") == "Offline"
    by_worker = {r.worker_sid: r.reservation_status for r in scenario.reservations(caller)}
    assert by_worker == {scenario.worker("Bob").sid: "rejected", scenario.worker("Alice").sid: "pending"}
    assert [ring["To"] for ring in scenario.ring_requests()] == ["+15005550002", "+15005550001"]
    [text] = scenario.rest.texts()
    assert text["To"] == "+15005550002" and "Reply ON" in text["Body"]
    assert scenario.task(caller).assignment_status == "reserved"  # the caller still waits, now for Alice


def test_agent_who_declines_passes_the_call_on(scenario):
    caller, reservation = ring_alice(scenario)
    goodbye = answer(scenario, reservation.sid, digits="2")
    assert goodbye.find("Hangup") is not None
    assert scenario.reservations(caller)[0].reservation_status == "rejected"
    assert scenario.activity_of("Alice") == "Offline"
    assert scenario.task(caller).assignment_status == "pending"
    assert not scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/.*")


def test_a_wrong_key_asks_again_once_before_the_call_is_passed_on(scenario):
    """A slip of the finger took the agent offline with a text: now the prompt is repeated, once."""
    caller, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)

    again = answer(scenario, reservation.sid, digits="3")

    assert again.find("Gather/Say").text.startswith("Sorry, that key does nothing here. Call from")
    action = again.find("Gather").get("action")
    assert action.endswith("attempt=1") and scenario.reservations(caller)[0].reservation_status == "pending"
    path = action.removeprefix(PUBLIC_BASE_URL)
    taken = twiml(scenario.post(path, CallSid=leg.call_sid, Digits="1"))
    assert taken.find("Dial/Conference") is not None and scenario.activity_of("Alice") == "On a call"


def test_a_second_wrong_key_passes_the_call_on(scenario):
    caller, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)
    again = answer(scenario, reservation.sid, digits="7")
    path = again.find("Gather").get("action").removeprefix(PUBLIC_BASE_URL)

    goodbye = twiml(scenario.post(path, CallSid=leg.call_sid, Digits="7"))

    assert goodbye.find("Hangup") is not None
    assert scenario.reservations(caller)[0].reservation_status == "rejected"


def test_voicemail_box_answering_does_not_take_the_call(scenario):
    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid, digits=None)  # nobody pressed a key
    assert scenario.reservations(caller)[0].reservation_status == "rejected"
    assert scenario.task(caller).assignment_status == "pending"


def test_reservation_timeout_stops_the_ringing_phone_and_texts_the_agent(scenario):
    caller, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)

    scenario.advance(30)  # the workflow's task_reservation_timeout

    assert scenario.reservations(caller)[0].reservation_status == "timeout"
    assert scenario.activity_of("Alice") == "Offline"  # the workspace's timeout activity
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}") == [{"Status": "canceled"}]
    [text] = scenario.rest.texts()
    assert text["To"] == "+15005550001" and "Reply ON" in text["Body"]
    assert scenario.task(caller).assignment_status == "pending"


def test_caller_hanging_up_while_an_agent_rings_cancels_the_task_and_stops_the_ring(scenario):
    caller, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)

    root = twiml(scenario.post("/voice/queue-result", CallSid=caller, QueueResult="hangup", QueueSid=QUEUE_SID))
    scenario.deliver()

    assert list(root) == []
    assert scenario.task(caller).assignment_status == "canceled"
    assert scenario.reservations(caller)[0].reservation_status == "canceled"
    assert scenario.call(caller).outcome == "abandoned"
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}") == [{"Status": "canceled"}]  # once, not per notice
    assert scenario.activity_of("Alice") == "Available"
    # The agent picks up a moment too late: they are told, nothing is accepted.
    late = twiml(scenario.post(f"/voice/agent/answer?reservation={reservation.sid}", CallSid=leg.call_sid))
    assert late.find("Hangup") is not None and late.find("Gather") is None


def test_caller_status_callback_alone_cancels_a_waiting_task(scenario):
    caller = scenario.dial(digits="2")
    assert scenario.post("/voice/status", CallSid=caller, CallStatus="completed").status_code == 204
    assert scenario.task(caller).assignment_status == "canceled"
    assert scenario.call(caller).outcome == "abandoned"
    scenario.post("/voice/queue-result", CallSid=caller, QueueResult="hangup")  # the late twin changes nothing
    assert scenario.task(caller).reason == "caller hung up"


def test_no_agent_before_the_workflow_times_out_sends_the_caller_to_voicemail(scenario):
    caller = scenario.dial(digits="2")
    scenario.advance(120)  # the Support target's timeout: the task is canceled

    assert scenario.task(caller).assignment_status == "canceled"
    [moved] = scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{caller}")
    assert moved["Url"] == f"{PUBLIC_BASE_URL}/voice/voicemail"
    assert scenario.call(caller).outcome == "missed"

    record = twiml(scenario.post("/voice/voicemail", CallSid=caller)).find("Record")
    assert record.get("action") == f"{PUBLIC_BASE_URL}/voice/voicemail/recorded"
    assert record.get("transcribeCallback") == f"{PUBLIC_BASE_URL}/voice/voicemail/transcribed"
    bye = twiml(scenario.post("/voice/voicemail/recorded", CallSid=caller, RecordingUrl="https://api.twilio.com/RE1",
                              RecordingSid="RE" + "1" * 32, RecordingDuration="12"))
    assert bye.find("Hangup") is not None
    scenario.post("/voice/voicemail/transcribed", CallSid=caller, TranscriptionText="Please call me back")
    call = scenario.call(caller)
    assert (call.recording_url, call.recording_duration, call.transcription) == (
        "https://api.twilio.com/RE1", 12, "Please call me back")
    [text] = scenario.rest.texts()
    assert text["To"] == "+15005550999" and CALLER in text["Body"]
    assert f"{PUBLIC_BASE_URL}/dashboard/calls/{caller}/voicemail" in text["Body"]
    # The caller hangs up after the message: no second text.
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    assert len(scenario.rest.texts()) == 1


def test_missed_caller_who_leaves_no_message_is_still_reported(scenario):
    caller = scenario.dial(digits="2")
    scenario.advance(120)
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    [text] = scenario.rest.texts()
    assert "No voicemail" in text["Body"]


def test_wait_url_tells_the_place_among_the_callers_of_the_department_and_plays_hold_music(scenario):
    """Every caller waits in one Twilio queue: its QueuePosition counts the other departments' callers too."""
    scenario.dial(digits="1")  # sales: nobody is available
    scenario.advance(1)
    first = scenario.dial(digits="2")  # support: Bob is offline
    scenario.advance(1)
    second = scenario.dial(digits="2")

    said = [twiml(scenario.post("/voice/wait", CallSid=caller, QueueSid=QUEUE_SID, QueuePosition=twilios)).find("Say")
            .text for caller, twilios in ((first, "2"), (second, "3"))]

    assert said[0].startswith("You are next in line.") and said[1].startswith("You are caller number 2 in line.")
    root = twiml(scenario.post("/voice/wait", CallSid=first, QueueSid=QUEUE_SID, QueuePosition="2"))
    assert root.find("Play").text == "https://example.com/hold.mp3"


def test_a_caller_sent_back_in_line_keeps_their_place_ahead_of_later_callers(scenario):
    caller, reservation = ring_alice(scenario)
    later = scenario.dial(digits="1")
    scenario.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{caller}", 503, 20500, "Service unavailable")
    scenario.rest.fail("POST", f"Calls/{caller}", 503, 20500, "Service unavailable")
    answer(scenario, reservation.sid)  # the caller cannot be moved: a new task, back in line

    ahead = twiml(scenario.post("/voice/wait", CallSid=caller, QueueSid=QUEUE_SID, QueuePosition="2")).find("Say")
    behind = twiml(scenario.post("/voice/wait", CallSid=later, QueueSid=QUEUE_SID, QueuePosition="1")).find("Say")
    assert ahead.text.startswith("You are next in line.") and "number 2" in behind.text


def test_wait_url_lets_a_caller_without_a_task_leave_for_voicemail(scenario):
    caller = scenario.dial(digits="2")
    scenario.advance(120)
    root = twiml(scenario.post("/voice/wait", CallSid=caller, QueueSid=QUEUE_SID, QueuePosition="1"))
    assert [child.tag for child in root] == ["Leave"]
    after = twiml(scenario.post("/voice/queue-result", CallSid=caller, QueueResult="leave"))
    assert after.find("Record") is not None


def test_retried_webhooks_never_create_a_second_task(scenario):
    caller = scenario.dial(digits="1")
    first = scenario.call(caller).task_sid
    params = {"CallSid": caller, "From": CALLER, "To": NUMBER}
    again = twiml(scenario.post("/voice/menu", Digits="1", **params))
    also = twiml(scenario.post("/voice/incoming", **params))
    assert again.find("Enqueue") is not None and also.find("Enqueue") is not None
    assert scenario.call(caller).task_sid == first
    from callcenter.routing.models import Task
    with scenario.router.read() as session:
        assert session.query(Task).count() == 1


def test_retried_assignment_callback_rings_the_agent_once(scenario, app):
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    assert len(scenario.reservations(caller)) == 1
    transport = scenario.router.deliverer.transport
    url, params = next((u, p) for u, p in transport.sent if u.endswith("/voice/assignment"))
    reply = transport(url, params, {"X-Twilio-Signature": scenario.twilio.validator.compute_signature(url, params)}, 5)
    assert reply.status == 200
    assert len(scenario.ring_requests()) == 1


def test_caller_who_hung_up_as_the_agent_accepted_frees_the_agent_once_their_phone_hangs_up(scenario):
    """Made available while the phone still says goodbye, the agent was rung at once for the next caller, on a
    line still in use: busy, and taken offline for it."""
    caller, reservation = ring_alice(scenario)
    second = scenario.dial(digits="1")  # waits: only Alice takes sales calls here
    scenario.deliver()
    scenario.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{caller}", 404, 20404, "Member not found")
    scenario.rest.fail("POST", f"Calls/{caller}", 400, 21220, "Call is not in-progress. Cannot redirect.")

    root = answer(scenario, reservation.sid)

    assert root.find("Hangup") is not None and root.find("Dial") is None
    assert "the caller hung up" in root.find("Say").text
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.call(caller).outcome == "abandoned"
    scenario.deliver()
    assert scenario.activity_of("Alice") == "On a call" and scenario.reservations(second) == []
    assert len(scenario.ring_requests()) == 1

    agent_hangs_up(scenario, reservation)
    scenario.deliver()

    assert scenario.activity_of("Alice") == "Available"
    [offer] = scenario.reservations(second)
    assert offer.reservation_status == "pending" and len(scenario.ring_requests()) == 2


def answer_a_caller_who_is_gone(scenario, caller: str, reservation) -> None:
    """Alice answers and presses 1 just after the caller hung up (Twilio's webhooks of it not in yet): her phone
    says "Sorry, the caller hung up" and hangs up."""
    scenario.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{caller}", 404, 20404, "Member not found")
    scenario.rest.fail("POST", f"Calls/{caller}", 400, 21220, "Call is not in-progress. Cannot redirect.")
    answer(scenario, reservation.sid)


def pick_up(scenario, reservation):
    """Alice answers her phone (and hears who calls); returns her leg."""
    leg = scenario.agent_leg(reservation.sid)
    twiml(scenario.post(f"/voice/agent/answer?reservation={reservation.sid}", CallSid=leg.call_sid,
                        CallStatus="in-progress"))
    return leg


def agent_hangs_up(scenario, reservation) -> None:
    leg = scenario.agent_leg(reservation.sid)
    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=leg.call_sid, CallStatus="completed")


def test_an_agent_held_after_the_goodbye_is_freed_even_if_the_hang_up_is_never_heard_of(scenario):
    caller, reservation = ring_alice(scenario)
    answer_a_caller_who_is_gone(scenario, caller, reservation)

    scenario.advance(59)
    assert scenario.activity_of("Alice") == "On a call"
    scenario.advance(2)
    assert scenario.activity_of("Alice") == "Available"
    leg = scenario.agent_leg(reservation.sid)  # a late status callback changes nothing more
    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=leg.call_sid, CallStatus="completed")
    assert scenario.activity_of("Alice") == "Available" and leg.status == "ended"


def test_an_agent_held_after_the_goodbye_is_freed_even_if_the_task_was_deleted_meanwhile(scenario):
    """The release read the activity to go back to off the reservation, which goes with its task: the agent
    stayed "On a call" for good."""
    caller, reservation = ring_alice(scenario)
    answer_a_caller_who_is_gone(scenario, caller, reservation)
    delete_task(scenario.router, scenario.center.workspace_sid, reservation.task_sid)

    agent_hangs_up(scenario, reservation)

    assert scenario.activity_of("Alice") == "Available"


def test_a_wrong_key_and_the_prompt_again_leave_the_agent_the_time_to_press_1(scenario):
    caller, reservation = ring_alice(scenario)
    leg = pick_up(scenario, reservation)
    scenario.advance(27)
    again = twiml(scenario.post(f"/voice/agent/confirm?reservation={reservation.sid}", CallSid=leg.call_sid,
                                Digits="3"))
    scenario.advance(34)  # 61 s after the answer: the prompt again, and the agent thinks

    taken = twiml(scenario.post(again.find("Gather").get("action").removeprefix(PUBLIC_BASE_URL),
                                CallSid=leg.call_sid, Digits="1"))

    assert taken.find("Dial/Conference") is not None and scenario.activity_of("Alice") == "On a call"
    assert scenario.call(caller).outcome == "answered"


def test_an_agent_who_takes_a_break_during_the_goodbye_keeps_it(scenario):
    caller, reservation = ring_alice(scenario)
    answer_a_caller_who_is_gone(scenario, caller, reservation)
    scenario.advance(1)

    scenario.set_activity("Alice", "Break")
    agent_hangs_up(scenario, reservation)

    assert scenario.activity_of("Alice") == "Break"


def test_twilio_outage_at_the_bridge_keeps_the_caller_in_line_with_a_new_task(scenario):
    caller, reservation = ring_alice(scenario)
    scenario.clock.advance(5)  # the phone rang a while
    old_task = scenario.call(caller).task_sid
    scenario.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{caller}", 503, 20500, "Service unavailable")
    scenario.rest.fail("POST", f"Calls/{caller}", 503, 20500, "Service unavailable")

    answer(scenario, reservation.sid)

    new_task = scenario.task(caller)
    assert new_task.sid != old_task and new_task.assignment_status in ("pending", "reserved")
    assert json.loads(new_task.attributes)["call_sid"] == caller
    assert scenario.call(caller).outcome is None
    # In their place in line (the dashboard's wait counts from it), and not offered back to Alice, whose phone
    # still says "Sorry, we could not connect the caller": she is freed when it hangs up.
    assert new_task.virtual_start_time == scenario.call(caller).date_enqueued < new_task.date_created
    scenario.deliver()
    assert scenario.activity_of("Alice") == "On a call" and len(scenario.reservations(caller)) == 0
    agent_hangs_up(scenario, reservation)
    scenario.deliver()
    assert scenario.activity_of("Alice") == "Available"
    [offer] = scenario.reservations(caller)
    assert offer.task_sid == new_task.sid and offer.reservation_status == "pending"


def test_an_agent_who_answers_late_in_the_ring_has_the_prompt_to_decide(scenario):
    """The reservation's timeout (30 s here) is sized for the ring (12 s); a prompt reading a long number digit by
    digit ran past it, and the agent who pressed 1 in time was cut off and taken offline."""
    caller, reservation = ring_alice(scenario)
    scenario.advance(11)
    leg = pick_up(scenario, reservation)

    scenario.advance(25)  # 36 s after the offer: the prompt ends, the agent thinks, presses 1
    assert scenario.reservations(caller)[0].reservation_status == "pending"
    root = twiml(scenario.post(f"/voice/agent/confirm?reservation={reservation.sid}", CallSid=leg.call_sid,
                               Digits="1"))

    assert root.find("Dial/Conference") is not None
    assert scenario.activity_of("Alice") == "On a call" and scenario.call(caller).outcome == "answered"


def test_an_answered_offer_still_times_out_if_nothing_more_is_heard(scenario):
    caller, reservation = ring_alice(scenario)
    pick_up(scenario, reservation)
    scenario.advance(59)
    assert scenario.reservations(caller)[0].reservation_status == "pending"
    scenario.advance(2)
    assert scenario.reservations(caller)[0].reservation_status == "timeout"


def test_a_hang_up_racing_the_menu_choice_leaves_no_task_and_rings_nobody(scenario, monkeypatch):
    """The status callback reads "no call yet", then the menu's transaction commits a task, then the status
    callback takes the lock: it found the row and did nothing, and the task rang an agent for nobody."""
    scenario.set_activity("Alice", "Available")
    call_sid = "CA" + "7" * 32
    params = {"CallSid": call_sid, "From": CALLER, "To": NUMBER}
    scenario.post("/voice/incoming", **params)
    original, raced = scenario.router.transaction, []

    def transaction(workspace_sid):
        if not raced:  # the menu's request, on another thread, commits between the read and the lock
            raced.append("menu")
            raced.append(scenario.post("/voice/menu", Digits="1", **params).status_code)
        return original(workspace_sid)

    monkeypatch.setattr(scenario.router, "transaction", transaction)
    assert scenario.post("/voice/status", CallSid=call_sid, CallStatus="completed").status_code == 204
    monkeypatch.undo()
    scenario.deliver()

    assert raced == ["menu", 200]
    assert scenario.task(call_sid).assignment_status == "canceled" and scenario.ring_requests() == []
    assert scenario.call(call_sid).outcome == "abandoned"


def test_a_ring_whose_sid_is_learnt_after_its_offer_ended_is_hung_up(scenario):
    scenario.rest.break_network("POST", "Calls", "lost")  # Twilio places the call; its answer never comes back
    caller, reservation = ring_alice(scenario)
    scenario.rest.network.clear()
    [placed] = scenario.rest.placed
    scenario.post("/voice/queue-result", CallSid=caller, QueueResult="hangup", QueueSid=QUEUE_SID)
    scenario.deliver()
    assert scenario.reservations(caller)[0].reservation_status == "canceled"

    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=placed, CallStatus="ringing")

    assert scenario.rest.sent("POST", f"Calls/{placed}") == [{"Status": "canceled"}]
    assert scenario.agent_leg(reservation.sid).status == "ended"


@pytest.mark.parametrize(("phone", "texted"), [
    ("(500) 555-0042", "+15005550042"),  # as people write it: texted in E.164, the form ON is recognized by
    (15005550042, "+15005550002"),  # not text: the contact_uri, which the SMS commands also know Bob by
    ("ask reception", "+15005550002"),
])
def test_the_missed_call_text_goes_to_the_number_the_agent_texts_from(scenario, phone, texted):
    from callcenter.routing import workers

    bob = scenario.worker("Bob")
    attributes = {**json.loads(bob.attributes), "phone": phone}
    workers.update_worker(scenario.router, scenario.center.workspace_sid, bob.sid, attributes=json.dumps(attributes))
    scenario.set_activity("Bob", "Available")
    caller = scenario.dial(digits="2")
    scenario.deliver()
    [offer] = scenario.reservations(caller)
    leg = scenario.agent_leg(offer.sid)

    answered = scenario.post(f"/voice/agent/status?reservation={offer.sid}", CallSid=leg.call_sid, CallStatus="busy")

    assert answered.status_code == 204 and scenario.activity_of("Bob") == "Offline"
    [text] = scenario.rest.texts()
    assert text["To"] == texted and "Reply ON" in text["Body"]


@pytest.mark.parametrize("withheld", ["+266696687", "+7378742833", "anonymous", "Restricted"])
def test_supervisors_are_told_a_withheld_number_is_withheld(scenario, withheld):
    caller = scenario.dial(digits="2")
    with scenario.router.transaction(scenario.center.workspace_sid) as tx:
        tx.session.get(Call, caller).from_number = withheld
    scenario.advance(120)  # nobody answered: voicemail
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")  # hung up without a message
    [text] = scenario.rest.texts()
    assert text["Body"].startswith("Missed call from a withheld number") and withheld not in text["Body"]


def test_agent_with_an_unreachable_number_is_taken_offline(scenario):
    scenario.rest.fail("POST", "Calls", 400, 21217, "Phone number is not a valid phone number")
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    assert scenario.reservations(caller)[0].reservation_status == "rejected"
    assert scenario.activity_of("Alice") == "Offline"
    assert scenario.task(caller).assignment_status == "pending"


def test_an_account_refusal_to_ring_passes_the_caller_on_without_taking_agents_offline(scenario):
    """Caller ID not verified is the account's fault: each agent in turn would fail the same way."""
    scenario.rest.fail("POST", "Calls", 400, 21210, "The source phone number is not verified")
    scenario.set_activity("Alice", "Available")
    scenario.set_activity("Bob", "Available")
    caller = scenario.dial(digits="2")
    scenario.deliver()
    assert len(scenario.reservations(caller)) == 2  # both agents were tried
    assert {r.reservation_status for r in scenario.reservations(caller)} == {"rejected"}
    assert (scenario.activity_of("Alice"), scenario.activity_of("Bob")) == ("Available", "Available")
    assert scenario.task(caller).assignment_status == "pending"  # waits for the workflow's timeout: voicemail
    assert scenario.rest.texts() == []


def test_a_ring_that_never_reached_twilio_is_retried_by_the_engine(scenario):
    scenario.rest.break_network("POST", "Calls", "refused")
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    [reservation] = scenario.reservations(caller)
    assert reservation.reservation_status == "pending" and scenario.rest.placed == []
    scenario.rest.network.clear()
    scenario.advance(5)  # the outbox's backoff
    assert len(scenario.rest.placed) == 1
    assert scenario.agent_leg(reservation.sid).call_sid == scenario.rest.placed[0]


def test_a_ring_twilio_may_have_placed_is_not_placed_again_and_its_call_is_adopted(scenario):
    """Twilio placed the call but its answer was lost: a second ring would find the agent busy, and take them
    offline. The call's own webhooks make it the leg: the agent answers it and talks to the caller."""
    scenario.rest.break_network("POST", "Calls", "lost")
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    scenario.rest.network.clear()
    scenario.advance(5)
    [reservation] = scenario.reservations(caller)
    [placed] = scenario.rest.placed  # rung once
    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=placed, CallStatus="ringing")
    assert (scenario.agent_leg(reservation.sid).call_sid, scenario.agent_leg(reservation.sid).status) == (
        placed, "ringing")
    root = answer(scenario, reservation.sid)
    assert root.find("Dial/Conference").text == scenario.call(caller).task_sid
    assert scenario.task(caller).assignment_status == "assigned"
    assert scenario.activity_of("Alice") != "Offline"


def test_a_ring_twilio_failed_at_is_not_placed_again_and_the_reservation_timeout_passes_the_caller_on(scenario):
    scenario.rest.fail("POST", "Calls", 500, 20500, "Internal error")  # placed or not: Twilio does not say
    scenario.set_activity("Alice", "Available")
    scenario.set_activity("Bob", "Available")
    caller = scenario.dial(digits="2")
    scenario.deliver()
    scenario.advance(5)
    [first] = scenario.reservations(caller)
    assert len(scenario.ring_requests()) == 1 and first.reservation_status == "pending"
    scenario.rest.failures.clear()
    scenario.advance(30)  # no webhook came: the reservation (30 s) times out, and the next agent is rung
    statuses = {r.worker_sid: r.reservation_status for r in scenario.reservations(caller)}
    assert statuses[first.worker_sid] == "timeout" and "pending" in statuses.values()
    assert len(scenario.ring_requests()) == 2


def test_a_lost_answer_to_the_move_is_made_good_by_a_redirect_and_the_call_connects(scenario):
    """Twilio moved the caller but its answer was lost: sending them again (a redirect, to the same room) is
    harmless, and the agent joins them; nobody is told the caller "stays in line"."""
    caller, reservation = ring_alice(scenario)
    task = scenario.call(caller).task_sid
    scenario.rest.break_network("POST", f"Queues/{QUEUE_SID}/Members/{caller}", "lost")

    agent = answer(scenario, reservation.sid)

    assert agent.find("Dial/Conference").text == task
    assert scenario.rest.sent("POST", f"Calls/{caller}")[-1]["Url"].endswith("/voice/caller/connect")
    assert twiml(scenario.post("/voice/caller/connect", CallSid=caller)).find("Dial/Conference").text == task
    assert scenario.task(caller).assignment_status == "assigned"


def test_a_caller_who_arrives_at_the_room_after_being_given_up_for_lost_goes_back_in_line(scenario):
    """The move and the redirect both failed as far as the app knows, so the caller got a new task; if Twilio
    had moved them after all, the room's URL puts them back in the queue rather than alone in a room."""
    caller, reservation = ring_alice(scenario)
    scenario.rest.break_network("POST", f"Queues/{QUEUE_SID}/Members/{caller}", "lost")
    scenario.rest.fail("POST", f"Calls/{caller}", 503, 20500, "Service unavailable")
    answer(scenario, reservation.sid)
    assert scenario.task(caller).assignment_status in ("pending", "reserved")

    root = twiml(scenario.post("/voice/caller/connect", CallSid=caller))
    assert root.find("Enqueue") is not None and root.find("Dial") is None
    assert scenario.call(caller).outcome is None


def test_a_caller_whose_call_has_no_task_left_at_the_room_is_offered_voicemail(scenario):
    caller, reservation = ring_alice(scenario)
    scenario.rest.fail("POST", f"Queues/{QUEUE_SID}/Members/{caller}", 503, 20500, "Service unavailable")
    scenario.rest.fail("POST", f"Calls/{caller}", 503, 20500, "Service unavailable")
    answer(scenario, reservation.sid)
    scenario.advance(3600)  # the new task waited past the workflow's timeouts: canceled
    assert scenario.task(caller).assignment_status == "canceled"

    root = twiml(scenario.post("/voice/caller/connect", CallSid=caller))
    assert root.find("Record") is not None
    assert scenario.call(caller).outcome == "missed"


def test_agent_dropping_after_pressing_1_but_before_joining_sends_the_caller_back_in_line(scenario):
    caller, reservation = ring_alice(scenario)
    old_task = scenario.call(caller).task_sid
    answer(scenario, reservation.sid)  # the caller is moved to the room; the agent hears "Connecting." and drops
    twiml(scenario.post("/voice/caller/connect", CallSid=caller))
    agent_hangs_up(scenario, reservation)

    assert scenario.call(caller).task_sid != old_task
    assert scenario.task(caller).assignment_status in ("pending", "reserved")
    assert scenario.rest.sent("POST", f"Calls/{caller}")[-1]["Url"].endswith("/voice/caller/connect")
    assert twiml(scenario.post("/voice/caller/connect", CallSid=caller)).find("Enqueue") is not None
    assert scenario.activity_of("Alice") != "Wrap-up"


def test_agent_hanging_up_while_the_caller_is_being_moved_sends_the_caller_back_in_line(scenario):
    caller, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)
    scenario.rest.when("POST", f"Queues/{QUEUE_SID}/Members/{caller}", lambda: scenario.post(
        f"/voice/agent/status?reservation={reservation.sid}", CallSid=leg.call_sid, CallStatus="completed"))

    answer(scenario, reservation.sid)  # the move succeeds, but the agent is gone

    assert scenario.task(caller).assignment_status in ("pending", "reserved")
    assert twiml(scenario.post("/voice/caller/connect", CallSid=caller)).find("Enqueue") is not None
    assert scenario.agent_leg(reservation.sid).status == "ended"


def test_agent_hanging_up_after_joining_the_caller_ends_the_conversation(scenario):
    caller, reservation = ring_alice(scenario)
    agent = answer(scenario, reservation.sid)
    conference = agent.find("Dial/Conference")
    assert conference.get("statusCallbackEvent") == "join"
    leg = scenario.agent_leg(reservation.sid)
    scenario.post(conference.get("statusCallback").removeprefix(PUBLIC_BASE_URL), CallSid=leg.call_sid,
                  StatusCallbackEvent="participant-join", FriendlyName=conference.text)
    assert scenario.agent_leg(reservation.sid).status == "joined"

    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=leg.call_sid, CallStatus="completed")

    assert scenario.task(caller).assignment_status == "wrapping"
    assert scenario.activity_of("Alice") == "Wrap-up"
    assert not scenario.rest.sent("POST", f"Calls/{caller}")  # the caller is not moved anywhere


def test_caller_hanging_up_in_the_queue_after_a_console_accept_is_an_abandoned_call(scenario):
    from callcenter.voice import flow

    caller, reservation = ring_alice(scenario)
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        assert flow.accept(scenario.center, reservation.sid) is not None
    leg = scenario.agent_leg(reservation.sid)

    scenario.post("/voice/queue-result", CallSid=caller, QueueResult="hangup", QueueSid=QUEUE_SID)
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")

    assert scenario.call(caller).outcome == "abandoned"
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.agent_leg(reservation.sid).status == "ended"
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}")  # the agent's phone stops ringing
    assert scenario.activity_of("Alice") == "Available"


def test_caller_status_callback_before_the_queue_result_after_a_console_accept_is_abandoned_too(scenario):
    from callcenter.voice import flow

    caller, reservation = ring_alice(scenario)
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        assert flow.accept(scenario.center, reservation.sid) is not None
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    assert (scenario.call(caller).outcome, scenario.task(caller).assignment_status) == ("abandoned", "completed")
    assert scenario.activity_of("Alice") == "Available"


def test_caller_hanging_up_after_the_bridge_wraps_the_task(scenario):
    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid)
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    assert scenario.task(caller).assignment_status == "wrapping"
    assert scenario.activity_of("Alice") == "Wrap-up"


def test_agent_choosing_a_break_during_wrap_up_stays_on_break(scenario):
    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid)
    twiml(scenario.post("/voice/caller/after", CallSid=caller, From=CALLER, To=NUMBER))
    scenario.set_activity("Alice", "Break")
    scenario.advance(30)
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Alice") == "Break"


def test_agent_confirm_prompt_says_who_calls_and_about_what(scenario):
    _, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)
    root = twiml(scenario.post(f"/voice/agent/answer?reservation={reservation.sid}", CallSid=leg.call_sid))
    gather = root.find("Gather")
    assert "4 1 5 5 5 5 0 1 0 0" in gather.find("Say").text and "sales" in gather.find("Say").text
    action = urlsplit(gather.get("action"))
    assert action.path == "/voice/agent/confirm" and parse_qs(action.query) == {"reservation": [reservation.sid]}


def test_agent_going_offline_by_text_while_the_phone_rings_stops_the_ring(scenario):
    from callcenter.routing import workers

    _, reservation = ring_alice(scenario)
    leg = scenario.agent_leg(reservation.sid)
    workers.update_worker(scenario.router, scenario.center.workspace_sid, scenario.worker("Alice").sid,
                          activity_sid=scenario.center.activity_sids["Offline"], reject_pending_reservations=True)
    scenario.deliver()
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}") == [{"Status": "canceled"}]
    assert scenario.agent_leg(reservation.sid).status == "ended"
    assert not scenario.rest.texts()  # the agent chose to go offline: no "reply ON" text


def test_a_browser_agent_is_rung_as_a_client_and_sees_the_callers_number(scenario):
    scenario.set_activity("Carol", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    [ring] = scenario.ring_requests()
    assert ring["To"] == "client:carol" and ring["From"] == CALLER
    [reservation] = scenario.reservations(caller)
    assert reservation.worker_sid == scenario.worker("Carol").sid


def test_agent_who_accepted_on_the_console_joins_the_caller_when_picking_up(scenario):
    from callcenter.voice import flow

    caller, reservation = ring_alice(scenario)
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        accepted = flow.accept(scenario.center, reservation.sid)
        assert flow.bridge_caller(scenario.center, accepted) == "connected"
    leg = scenario.agent_leg(reservation.sid)
    root = twiml(scenario.post(f"/voice/agent/answer?reservation={reservation.sid}", CallSid=leg.call_sid))
    assert root.find("Dial/Conference").text == scenario.task(caller).sid
    assert root.find("Gather") is None


def test_a_ring_after_a_console_accept_that_twilio_placed_despite_a_lost_answer_is_kept(scenario):
    """Accepted on the console before the agent was rung; ringing them then loses Twilio's answer. Twilio is
    asked: the call exists, so it is the agent's leg, and the caller is not routed again."""
    from callcenter.voice import flow

    scenario.rest.fail("POST", "Calls", 503, 20503, "Service unavailable")  # the assignment callback's ring fails
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    [reservation] = scenario.reservations(caller)
    scenario.rest.failures.clear()
    assert scenario.agent_leg(reservation.sid).status == "dialing"
    scenario.rest.break_network("POST", "Calls", "lost")  # the console's ring is placed, its answer lost
    task = scenario.call(caller).task_sid
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        flow.release_claim(scenario.center, reservation.sid)  # as if the first ring never reached Twilio
        assert flow.accept(scenario.center, reservation.sid) is not None
        message = flow.ring_after_console_accept(scenario.center, reservation.sid, scenario.call(caller))

    [placed] = scenario.rest.placed
    assert message.startswith("Accepted: your phone rings now")
    assert (scenario.agent_leg(reservation.sid).call_sid, scenario.call(caller).task_sid) == (placed, task)
    assert scenario.task(caller).assignment_status == "assigned"


def test_a_ring_after_a_console_accept_that_twilio_did_not_place_routes_the_caller_again(scenario):
    from callcenter.voice import flow

    scenario.rest.fail("POST", "Calls", 503, 20503, "Service unavailable")
    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    [reservation] = scenario.reservations(caller)
    task = scenario.call(caller).task_sid
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        flow.release_claim(scenario.center, reservation.sid)
        assert flow.accept(scenario.center, reservation.sid) is not None
        message = flow.ring_after_console_accept(scenario.center, reservation.sid, scenario.call(caller))

    assert message.startswith("Accepted, but your phone could not be rung")
    assert scenario.rest.placed == [] and scenario.call(caller).task_sid != task
    assert scenario.task(caller).assignment_status in ("pending", "reserved")


def test_voicemail_reported_after_the_hang_up_still_reaches_supervisors_once(scenario):
    caller = scenario.dial(digits="2")
    scenario.advance(120)
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")  # Twilio's callbacks race
    recording = {"CallSid": caller, "RecordingUrl": "https://api.twilio.com/RE2", "RecordingSid": "RE" + "2" * 32,
                 "RecordingDuration": "7"}
    scenario.post("/voice/voicemail/recorded", **recording)
    scenario.post("/voice/voicemail/recorded", **recording)  # and Twilio retries
    bodies = [text["Body"] for text in scenario.rest.texts()]
    link = f"{PUBLIC_BASE_URL}/dashboard/calls/{caller}/voicemail"  # signed in; Twilio's URL may need credentials
    assert len(bodies) == 2 and "No voicemail" in bodies[0] and link in bodies[1]


def test_an_assignment_callback_retried_while_dialing_rings_the_agent_once(scenario):
    from callcenter.voice import flow

    scenario.set_activity("Alice", "Available")
    caller = scenario.dial(digits="1")
    [reservation] = scenario.reservations(caller)
    offer = flow.Offer(reservation.sid, reservation.task_sid, reservation.worker_sid, scenario.call(caller),
                       "+15005550001", False)
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        assert flow.claim_ring(scenario.center, offer)  # the first delivery is still waiting for Twilio
    scenario.deliver()  # the engine's retry
    assert scenario.ring_requests() == []
    assert scenario.agent_leg(reservation.sid).status == "dialing"


def test_a_status_callback_of_a_stray_call_decides_nothing(scenario):
    caller, reservation = ring_alice(scenario)
    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid="CA" + "e" * 32, CallStatus="busy")
    assert scenario.reservations(caller)[0].reservation_status == "pending"
    assert scenario.activity_of("Alice") == "Available"


def test_accepted_on_the_console_but_the_phone_never_answered_sends_the_caller_to_the_next_agent(scenario):
    from callcenter.voice import flow

    caller, reservation = ring_alice(scenario)
    first_task = scenario.call(caller).task_sid
    with scenario.app.test_request_context(base_url=PUBLIC_BASE_URL):
        assert flow.accept(scenario.center, reservation.sid) is not None
    leg = scenario.agent_leg(reservation.sid)
    scenario.post(f"/voice/agent/status?reservation={reservation.sid}", CallSid=leg.call_sid, CallStatus="no-answer")
    call = scenario.call(caller)
    assert call.task_sid != first_task and scenario.task(caller).assignment_status in ("pending", "reserved")
    assert call.outcome is None  # still in line, not a conference alone
    assert scenario.activity_of("Alice") == "Offline"
    assert not scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{caller}")


def test_a_choice_arriving_after_the_caller_hung_up_creates_no_task(scenario):
    call_sid = "CA" + "6" * 32
    params = {"CallSid": call_sid, "From": CALLER, "To": NUMBER}
    scenario.post("/voice/incoming", **params)
    scenario.post("/voice/status", CallSid=call_sid, CallStatus="completed")
    scenario.post("/voice/menu", Digits="1", **params)
    assert scenario.call(call_sid).task_sid is None and scenario.call(call_sid).outcome == "abandoned"


def test_an_agent_who_went_offline_during_the_call_stays_offline_after_it(scenario):
    from callcenter.routing import workers

    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid)
    workers.update_worker(scenario.router, scenario.center.workspace_sid, scenario.worker("Alice").sid,
                          activity_sid=scenario.center.activity_sids["Offline"])  # texted OFF while talking
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    scenario.advance(30)
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Alice") == "Offline"


def test_the_agent_is_not_left_alone_in_the_conference_when_the_caller_leaves_on_the_way(scenario):
    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid)  # the caller was moved, but hangs up before joining
    leg = scenario.agent_leg(reservation.sid)
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}")[0] == {"Status": "canceled"}
    assert scenario.task(caller).assignment_status == "wrapping"
