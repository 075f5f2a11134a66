"""Agents change their activity by text: every command and error path, with signed (and badly signed) webhooks."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from app import create_app
from callcenter import contact_center
from callcenter.database import get_router
from callcenter.routing import IllegalState, tasks, workers, workspaces
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Reservation, Task, Worker
from callcenter.sms import commands
from callcenter.sms.messages import directory
from callcenter.sms.models import SmsMessage
from tests.support import ACCOUNT_SID, AUTH_TOKEN, CONTACT_CENTER_FILE, PUBLIC_BASE_URL, TwilioWebhooks, contact_center_app

NUMBER = "+15005550000"
ALICE, BOB, CAROL = "+15005550001", "+15005550002", "+15005550003"  # Sales+Support, Support, Sales
STRANGER = "+14155550199"
BRIEF_HELP = "Text ON, OFF, BREAK, STATUS, or one of: Available, Break, Offline, Unavailable."
HELP = BRIEF_HELP + " On a call and Wrap-up are set automatically."


class Phones:
    """Agents' phones texting the contact center's number, through Twilio's signed Messaging webhook."""

    def __init__(self, app) -> None:
        self.app = app
        self.router = get_router(app)
        self.center = contact_center.current(app)
        self.twilio = TwilioWebhooks(app)
        self.sids = (f"SM{n:032x}" for n in itertools.count(1))

    def post(self, sender: str, body: str, *, message_sid: str | None = None, signature: str | None = None):
        return self.twilio.post("/sms/incoming", signature=signature, MessageSid=message_sid or next(self.sids),
                                AccountSid=ACCOUNT_SID, From=sender, To=NUMBER, Body=body, NumMedia="0")

    def text(self, sender: str, body: str, *, message_sid: str | None = None) -> str:
        """Send a text; return the one SMS the app answers with."""
        response = self.post(sender, body, message_sid=message_sid)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/xml"
        root = ET.fromstring(response.get_data(as_text=True))
        assert root.tag == "Response"
        [message] = list(root)
        assert message.tag == "Message"
        return message.text

    def worker(self, name: str) -> Worker:
        with self.router.read() as session:
            return session.scalar(select(Worker).where(Worker.workspace_sid == self.center.workspace_sid,
                                                       Worker.friendly_name == name))

    def activity(self, name: str) -> str:
        worker = self.worker(name)
        return next(activity for activity, sid in self.center.activity_sids.items() if sid == worker.activity_sid)

    def set_activity(self, name: str, activity: str) -> None:
        workers.update_worker(self.router, self.center.workspace_sid, self.worker(name).sid,
                              activity_sid=self.center.activity_sids[activity])

    def call_in(self, product: str) -> Task:
        return tasks.create_task(self.router, self.center.workspace_sid, workflow_sid=self.center.workflow_sid,
                                 attributes={"selected_product": product}, task_channel="voice")

    def reservations(self, name: str, status: str = "pending") -> list[Reservation]:
        with self.router.read() as session:
            return list(session.scalars(select(Reservation).where(Reservation.worker_sid == self.worker(name).sid,
                                                                  Reservation.reservation_status == status)))

    def remembered(self) -> int:
        with self.router.read() as session:
            return session.scalar(select(func.count()).select_from(SmsMessage))


@pytest.fixture
def app(database_url, clock):
    app = contact_center_app(database_url, clock)
    yield app
    get_router(app).dispose()


@pytest.fixture
def phones(app):
    return Phones(app)


# -- commands ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["on", "ON", "  On  ", "available", "Available", "AVAILABLE!"])
def test_on_or_available_makes_the_agent_available(phones, body):
    version = phones.worker("Bob").version

    assert phones.text(BOB, body) == "You are now Available. No callers are waiting."

    assert phones.activity("Bob") == "Available"
    assert phones.worker("Bob").version == version + 1


@pytest.mark.parametrize("body", ["off", "Off", " OFFLINE ", "offline."])
def test_off_or_offline_makes_the_agent_offline(phones, body):
    phones.set_activity("Bob", "Available")

    assert phones.text(BOB, body) == "You are now Offline."

    assert phones.activity("Bob") == "Offline"


@pytest.mark.parametrize("body", ["break", "BREAK", " Break "])
def test_break_puts_the_agent_on_break(phones, body):
    phones.set_activity("Bob", "Available")

    assert phones.text(BOB, body) == "You are now Break."

    assert phones.activity("Bob") == "Break"


def test_going_available_counts_the_callers_waiting_in_the_agents_queues_only(phones):
    phones.call_in("sales")  # Sales: Bob is not a member
    phones.call_in("support")
    phones.call_in("support")

    assert phones.text(BOB, "on") == "You are now Available. 2 callers are waiting."

    # One of the two is now offered to Bob (reserved): its caller still waits, and still counts.
    assert len(phones.reservations("Bob")) == 1
    assert phones.text(BOB, "status") == "You are Available (for 0 s). 2 callers are waiting. A call is ringing for you."


def test_status_tells_the_activity_and_the_time_in_it(phones, clock):
    phones.text(ALICE, "on")
    clock.advance(125)
    phones.call_in("support")  # offered to Alice at once; Bob is in the Support queue too

    assert phones.text(ALICE, "Status") == "You are Available (for 2 min). 1 caller is waiting. A call is ringing for you."
    phones.set_activity("Bob", "Break")
    assert phones.text(BOB, " status ") == "You are Break (for 0 s). 1 caller is waiting."
    assert phones.activity("Alice") == "Available"  # status changes nothing


def test_status_counts_hours_in_an_activity(phones, clock):
    clock.advance(3 * 3600 + 5 * 60)
    assert phones.text(CAROL, "status") == "You are Offline (for 3 h 5 min). No callers are waiting."


def test_an_activity_of_the_workspace_is_chosen_by_its_name(phones):
    workspaces.create_activity(phones.router, phones.center.workspace_sid, friendly_name="Team  Meeting",
                               available=False)

    assert phones.text(BOB, "team meeting") == "You are now Team  Meeting."
    assert phones.worker("Bob").activity_sid != phones.center.activity_sids["Offline"]
    assert "Team  Meeting" in phones.text(BOB, "help")


@pytest.mark.parametrize("body, name", [("on a call", "On a call"), ("Wrap-up", "Wrap-up"), ("WRAP-UP", "Wrap-up")])
def test_activities_the_call_flow_sets_cannot_be_chosen(phones, body, name):
    phones.set_activity("Bob", "Available")

    assert phones.text(BOB, body) == f"{name} is set automatically. {BRIEF_HELP}"

    assert phones.activity("Bob") == "Available"


def test_choosing_the_activity_the_agent_is_in_changes_nothing(phones):
    phones.set_activity("Bob", "Available")
    version = phones.worker("Bob").version

    assert phones.text(BOB, "on") == "You are already Available. No callers are waiting."
    assert phones.text(CAROL, "off") == "You are already Offline."

    assert phones.worker("Bob").version == version


def test_help_lists_the_commands_and_the_activities_an_agent_may_choose(phones):
    assert phones.text(BOB, "help") == HELP
    assert phones.text(BOB, " HELP ") == HELP
    assert phones.activity("Bob") == "Offline"


@pytest.mark.parametrize("body", ["lunch please", "what is going on here today, I wonder?", "On\u2019 \U0001F600"])
def test_an_unknown_command_gets_a_short_help_text_and_changes_nothing(phones, body):
    """Not echoed: an emoji or a curly quote would make the whole reply UCS-2, three segments."""
    reply = phones.text(BOB, body)
    assert reply == f"Not a command. {BRIEF_HELP}"
    assert phones.activity("Bob") == "Offline"


def test_every_reply_fits_one_sms_segment(phones):
    phones.set_activity("Bob", "Available")
    for body in ("help", "status", "wrap-up", "on a call", "nonsense of some length, and then some more", "off",
                 "break", "on", ""):
        reply = phones.text(BOB, body)
        assert len(reply) <= 160 and reply.isascii(), (body, reply)


def test_a_picture_with_no_text_gets_the_help_text(phones):
    assert phones.text(BOB, "") == HELP


@pytest.mark.parametrize("keyword", ["STOP", "stop", "Unsubscribe", "START", "UNSTOP", "yes"])
def test_twilios_opt_out_and_opt_in_keywords_get_no_reply_of_ours_and_change_nothing(phones, keyword):
    """Twilio answers them itself, and refuses to text a number that sent STOP."""
    phones.set_activity("Bob", "Available")
    response = phones.post(BOB, keyword)
    assert response.status_code == 200 and ET.fromstring(response.get_data(as_text=True)).find("Message") is None
    assert phones.activity("Bob") == "Available"


# -- who is texting ---------------------------------------------------------------------------------

def test_the_phone_attribute_identifies_an_agent_whose_contact_uri_is_not_a_number(phones):
    assert phones.text(CAROL, "on").startswith("You are now Available.")
    assert phones.activity("Carol") == "Available"


def test_numbers_are_compared_in_e164_whatever_the_worker_attributes_hold(phones):
    workers.create_worker(phones.router, phones.center.workspace_sid, friendly_name="Dave",
                          activity_sid=phones.center.activity_sids["Offline"],
                          attributes={"contact_uri": "client:dave", "phone": "(415) 555-0142", "products": ["sales"]})
    workers.create_worker(phones.router, phones.center.workspace_sid, friendly_name="Erin",
                          activity_sid=phones.center.activity_sids["Offline"],
                          attributes={"contact_uri": "+1 415-555-0143"})

    assert phones.text("+14155550142", "on").startswith("You are now Available.")
    assert phones.text("+14155550143", "break") == "You are now Break."

    assert phones.activity("Dave") == "Available"
    assert phones.activity("Erin") == "Break"


def test_an_unknown_sender_is_refused_politely_and_nothing_changes(phones):
    before = {name: phones.worker(name).version for name in ("Alice", "Bob", "Carol")}

    reply = phones.text(STRANGER, "on")

    assert reply == ("Sorry, this phone number is not registered to an agent, so nothing was changed. "
                     "Please ask your supervisor to add it.")
    assert {name: phones.worker(name).version for name in before} == before
    assert phones.remembered() == 0


def test_a_number_registered_to_two_agents_changes_nobody(phones):
    workers.create_worker(phones.router, phones.center.workspace_sid, friendly_name="Bob's twin",
                          attributes={"contact_uri": "client:twin", "phone": BOB})

    assert "registered to more than one agent" in phones.text(BOB, "on")

    assert phones.activity("Bob") == "Offline"


def test_a_changed_phone_number_is_seen_at_once_and_activity_changes_do_not_rebuild_the_index(phones):
    phones.text(BOB, "on")
    phones.text(BOB, "break")
    phones.set_activity("Alice", "Available")
    phones.text(BOB, "status")
    assert directory(phones.app).rebuilds == 1  # built once, kept through activity changes

    workers.update_worker(phones.router, phones.center.workspace_sid, phones.worker("Bob").sid,
                          attributes={"contact_uri": "+15005550002", "phone": "+15005550222", "products": ["support"]})

    assert "not registered" in phones.text(BOB, "on")
    assert phones.text("+15005550222", "on").startswith("You are now Available.")
    assert directory(phones.app).rebuilds == 2


def test_a_deleted_agent_can_no_longer_text(phones):
    workers.delete_worker(phones.router, phones.center.workspace_sid, phones.worker("Carol").sid)

    assert "not registered" in phones.text(CAROL, "status")


# -- reservations and engine rules ------------------------------------------------------------------

@pytest.mark.parametrize("body, activity", [("off", "Offline"), ("break", "Break")])
def test_going_unavailable_with_a_call_ringing_declines_it(phones, body, activity):
    phones.set_activity("Alice", "Available")
    task = phones.call_in("support")
    [reservation] = phones.reservations("Alice")
    reply = phones.text(ALICE, body)

    assert reply == f"You are now {activity}. The call ringing for you was declined and goes to another agent."

    assert phones.activity("Alice") == activity
    assert phones.reservations("Alice") == []
    assert [r.sid for r in phones.reservations("Alice", "rejected")] == [reservation.sid]
    with phones.router.read() as session:
        assert session.get(Task, task.sid).assignment_status == "pending"
    assert check_invariants(phones.router, phones.center.workspace_sid) == []


def test_the_declined_call_is_offered_to_the_next_available_agent(phones):
    phones.set_activity("Alice", "Available")
    phones.call_in("support")
    phones.set_activity("Bob", "Available")  # Alice holds the call: Bob is idle

    phones.text(ALICE, "off")

    assert len(phones.reservations("Bob")) == 1


def test_on_during_wrap_up_ends_it_and_the_waiting_caller_is_offered_at_once(phones):
    from callcenter.routing import reservations as engine

    phones.set_activity("Alice", "Available")
    first = phones.call_in("sales")
    [offer] = phones.reservations("Alice")
    engine.update_reservation(phones.router, phones.center.workspace_sid, offer.sid, reservation_status="accepted")
    tasks.update_task(phones.router, phones.center.workspace_sid, first.sid, assignment_status="wrapping")
    phones.set_activity("Alice", "Wrap-up")  # as the call flow does when the conversation ends
    phones.call_in("sales")  # waits: Alice's one slot is held by the call she wraps up

    reply = phones.text(ALICE, "on")

    assert reply == "You are now Available. Wrap-up ended. 1 caller is waiting."
    with phones.router.read() as session:
        assert session.get(Task, first.sid).assignment_status == "completed"
    assert len(phones.reservations("Alice")) == 1  # the waiting caller rings for her now


def test_going_available_with_a_call_ringing_keeps_it(phones):
    phones.set_activity("Alice", "Available")
    phones.call_in("sales")
    [reservation] = phones.reservations("Alice")

    assert phones.text(ALICE, "available") == "You are already Available. 1 caller is waiting."

    assert [r.sid for r in phones.reservations("Alice")] == [reservation.sid]


def test_an_engine_error_becomes_a_clear_text_and_changes_nothing(phones, monkeypatch):
    def refuse(*args, **kwargs):
        raise IllegalState("Worker Bob cannot change activity now")

    monkeypatch.setattr(commands, "set_activity", refuse)

    response = phones.post(BOB, "on")

    assert response.status_code == 200
    [message] = list(ET.fromstring(response.get_data(as_text=True)))
    assert message.text == "Sorry, that did not work: Worker Bob cannot change activity now"
    assert phones.activity("Bob") == "Offline"
    assert phones.remembered() == 0  # not remembered: Twilio's retry may try again


# -- signatures and retries -------------------------------------------------------------------------

@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
def test_unsigned_or_badly_signed_texts_are_forbidden_and_change_nothing(phones, signature):
    response = phones.post(BOB, "on", signature=signature)

    assert response.status_code == 403
    assert phones.activity("Bob") == "Offline"
    assert phones.remembered() == 0


def test_a_text_signed_with_another_accounts_token_is_forbidden(app, phones):
    other = TwilioWebhooks(app, auth_token="not-our-auth-token")
    params = {"MessageSid": "SM" + "e" * 32, "From": BOB, "To": NUMBER, "Body": "on"}

    response = other.post("/sms/incoming", **params)

    assert response.status_code == 403
    assert phones.activity("Bob") == "Offline"


def test_a_text_whose_body_was_altered_after_signing_is_forbidden(phones):
    signed = {"MessageSid": "SM" + "f" * 32, "AccountSid": ACCOUNT_SID, "From": BOB, "To": NUMBER, "Body": "status",
              "NumMedia": "0"}
    signature = phones.twilio.signature("/sms/incoming", signed)

    response = phones.post(BOB, "on", message_sid=signed["MessageSid"], signature=signature)

    assert response.status_code == 403
    assert phones.activity("Bob") == "Offline"


def test_twilio_retrying_a_message_sid_does_not_apply_it_twice(phones):
    sid = "SM" + "a" * 32
    first = phones.text(BOB, "on", message_sid=sid)
    phones.set_activity("Bob", "Offline")  # e.g. on the agent page, between Twilio's two attempts
    version = phones.worker("Bob").version

    again = phones.text(BOB, "on", message_sid=sid)

    assert again == first == "You are now Available. No callers are waiting."
    assert phones.activity("Bob") == "Offline"
    assert phones.worker("Bob").version == version
    assert phones.text(BOB, "on", message_sid="SM" + "b" * 32).startswith("You are now Available.")
    assert phones.remembered() == 2


def test_message_sids_are_forgotten_after_a_day(phones, clock):
    phones.text(BOB, "status", message_sid="SM" + "c" * 32)
    clock.advance(25 * 3600)
    phones.text(BOB, "status", message_sid="SM" + "d" * 32)

    with phones.router.read() as session:
        assert session.scalars(select(SmsMessage.message_sid)).all() == ["SM" + "d" * 32]


def test_without_a_loaded_contact_center_the_agent_is_told_so(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
                      "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                      "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "CONTACT_CENTER_FILE": CONTACT_CENTER_FILE})
    try:
        response = TwilioWebhooks(app).post("/sms/incoming", MessageSid="SM" + "0" * 32, From=BOB, To=NUMBER, Body="on")
        assert response.status_code == 200
        [message] = list(ET.fromstring(response.get_data(as_text=True)))
        assert message.text == "Sorry, text commands are not set up on this number yet."
    finally:
        get_router(app).dispose()

