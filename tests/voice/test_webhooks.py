"""Every Twilio webhook is signed; the menu; the public URL behind a tunnel; a number without a contact center."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from callcenter.database import get_router
from callcenter.routing.models import Event, Task
from callcenter.voice.models import Call
from tests.support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, TwilioWebhooks

from .conftest import CALLER, NUMBER, twiml


def _webhook_routes() -> list[str]:
    """Every route of the Twilio-facing blueprints (voice, and SMS when present)."""
    from flask import Flask

    import callcenter.voice

    bare = Flask(__name__)
    bare.register_blueprint(callcenter.voice.bp)
    try:
        import callcenter.sms
    except ImportError:
        pass
    else:
        bare.register_blueprint(callcenter.sms.bp)
    return sorted(rule.rule for rule in bare.url_map.iter_rules() if rule.rule.startswith(("/voice/", "/sms/")))


WEBHOOKS = _webhook_routes()
PARAMS = {"CallSid": "CA" + "5" * 32, "From": CALLER, "To": NUMBER, "Digits": "1", "QueueResult": "hangup",
          "CallStatus": "completed", "EventType": "workflow.timeout", "Body": "on"}


def test_every_voice_route_is_covered_here():
    assert "/voice/incoming" in WEBHOOKS and "/voice/assignment" in WEBHOOKS and "/voice/events" in WEBHOOKS
    assert len(WEBHOOKS) >= 16


@pytest.fixture(scope="module")
def shared_app(sqlite_template, tmp_path_factory):
    """One app for the many signature cases: each must change nothing, so they can share it."""
    import shutil

    from tests.support import contact_center_app

    path = tmp_path_factory.mktemp("signatures") / "callcenter.db"
    shutil.copyfile(sqlite_template, path)
    app = contact_center_app(f"sqlite:///{path}")
    yield app
    get_router(app).dispose()


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize("signature", [None, "bm90IHRoZSBzaWduYXR1cmU=", "wrong-token"])
def test_webhook_refuses_unsigned_and_wrongly_signed_requests(shared_app, path, signature):
    app = shared_app
    client = app.test_client()
    headers = {}
    if signature == "wrong-token":
        headers["X-Twilio-Signature"] = TwilioWebhooks(app, auth_token="not-the-token").signature(path, PARAMS)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    router = get_router(app)
    with router.read() as session:
        events_before = session.scalar(select(func.count()).select_from(Event))
    response = client.post(path, data=PARAMS, headers=headers, base_url=PUBLIC_BASE_URL)
    assert response.status_code == 403
    with router.read() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0
        assert session.scalar(select(func.count()).select_from(Event)) == events_before


def test_signature_covers_the_parameters(app):
    twilio = TwilioWebhooks(app)
    good = twilio.signature("/voice/incoming", PARAMS)
    response = twilio.post("/voice/incoming", signature=good, **{**PARAMS, "From": "+19995550000"})
    assert response.status_code == 403


def test_signature_is_checked_against_the_public_url_behind_a_tunnel(database_url, clock):
    from tests.support import contact_center_app

    app = contact_center_app(database_url, clock, PUBLIC_BASE_URL=None)
    public = "https://abc123.ngrok-free.app"
    signature = TwilioWebhooks(app, base_url=public).signature("/voice/incoming", PARAMS)
    # ngrok forwards to http://127.0.0.1:5000 and says where the request was made in X-Forwarded-*.
    response = app.test_client().post("/voice/incoming", data=PARAMS, base_url="http://127.0.0.1:5000", headers={
        "X-Twilio-Signature": signature, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc123.ngrok-free.app"})
    assert response.status_code == 200
    gather = twiml(response).find("Gather")
    assert gather.get("action") == f"{public}/voice/menu"
    get_router(app).dispose()


def test_incoming_call_greets_and_offers_the_menu_by_key_and_voice(scenario):
    root = twiml(scenario.post("/voice/incoming", CallSid="CA" + "1" * 32, From=CALLER, To=NUMBER))
    gather = root.find("Gather")
    assert gather.get("input") == "dtmf speech" and gather.get("numDigits") == "1"
    assert gather.get("action") == f"{PUBLIC_BASE_URL}/voice/menu"
    said = [say.text for say in gather.findall("Say")]
    assert said == ["Thank you for calling Test Corp.", "For sales, press 1.", "For support, press 2."]
    assert "sales" in gather.get("hints")
    assert root.find("Redirect").text == f"{PUBLIC_BASE_URL}/voice/menu"  # silence still reaches the menu
    with scenario.router.read() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0  # no task before a choice


@pytest.mark.parametrize(("choice", "product"), [
    ({"Digits": "1"}, "sales"),
    ({"SpeechResult": "I'd like to talk to sales please"}, "sales"),
    ({"SpeechResult": "I need help"}, "support"),
])
def test_menu_choice_becomes_task_attributes(scenario, choice, product):
    call_sid = "CA" + "2" * 32
    scenario.post("/voice/incoming", CallSid=call_sid, From=CALLER, To=NUMBER)
    root = twiml(scenario.post("/voice/menu", CallSid=call_sid, From=CALLER, To=NUMBER, **choice))
    enqueue = root.find("Enqueue")
    assert enqueue.text == "test-callers"
    assert enqueue.get("waitUrl") == f"{PUBLIC_BASE_URL}/voice/wait"
    assert enqueue.get("action") == f"{PUBLIC_BASE_URL}/voice/queue-result"
    import json
    assert json.loads(scenario.task(call_sid).attributes)["selected_product"] == product
    assert scenario.task(call_sid).task_channel_sid is not None


@pytest.mark.parametrize("miss", [{}, {"Digits": "9"}, {"SpeechResult": "pizza"}])
def test_no_or_invalid_input_repeats_the_menu_once_then_routes_to_the_default(scenario, miss):
    call_sid = "CA" + "3" * 32
    params = {"CallSid": call_sid, "From": CALLER, "To": NUMBER}
    scenario.post("/voice/incoming", **params)
    again = twiml(scenario.post("/voice/menu", **params, **miss))
    assert again.find("Gather") is not None
    assert again.find("Gather/Say").text == "Sorry, I didn't get that."
    assert again.find("Gather").get("action") == f"{PUBLIC_BASE_URL}/voice/menu?attempt=1"
    assert scenario.call(call_sid) is None
    queued = twiml(scenario.post("/voice/menu?attempt=1", **params, **miss))
    assert queued.find("Enqueue") is not None
    import json
    assert json.loads(scenario.task(call_sid).attributes)["selected_product"] == "support"  # default_option = 2


def test_caller_hanging_up_in_the_menu_leaves_no_task(scenario):
    call_sid = "CA" + "4" * 32
    scenario.post("/voice/incoming", CallSid=call_sid, From=CALLER, To=NUMBER)
    assert scenario.post("/voice/status", CallSid=call_sid, CallStatus="completed").status_code == 204
    with scenario.router.read() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0


def test_number_without_a_loaded_contact_center_says_so_instead_of_silence(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
                      "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                      "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "CONTACT_CENTER_FILE": "/nonexistent/contact-center.toml"})
    root = twiml(TwilioWebhooks(app).post("/voice/incoming", **PARAMS))
    assert "not taking calls" in root.find("Say").text and root.find("Hangup") is not None
    get_router(app).dispose()
