"""Real-time mode (the demo): a runner thread fires events as the wall clock reaches them; `stop()` ends it.

No sleeping: the test waits on an event the app sets when the call's final status callback arrives.
"""

from __future__ import annotations

import threading

import pytest

from callcenter.simulator import Caller, WallClock, WsgiTransport, create_simulator, simulator_of
from callcenter.simulator.demo import DEMO_ACCOUNT_SID, settings, wanted
from tests.simulator.conftest import ACCOUNT_SID, APP_URL, AUTH_TOKEN, NUMBER, twiml


def test_calls_run_on_the_wall_clock_from_a_runner_thread(phone_app):
    sim = simulator_of(create_simulator(APP_URL, ACCOUNT_SID, AUTH_TOKEN, clock=WallClock(),
                                        transport=WsgiTransport(phone_app.flask), number=NUMBER))
    sim.add_number(NUMBER, voice_url=f"{APP_URL}/voice/incoming", status_callback=f"{APP_URL}/voice/status")
    ended = threading.Event()
    phone_app.on("/voice/incoming", twiml("<Hangup/>"))
    phone_app.on("/voice/status", lambda form: ended.set() or twiml())
    with pytest.raises(RuntimeError, match="virtual clock"):
        sim.advance(1)  # time cannot be pushed by hand in real time
    sim.start()
    try:
        call = sim.place_call(Caller("+15551230077"))
        assert ended.wait(timeout=10), call.transcript()
    finally:
        sim.stop()
    assert call.status == "completed" and call.verbs() == ["Hangup"]
    assert phone_app.rejected == []  # signed as Twilio signs
    assert sim._runner is None  # the runner thread was joined


def test_demo_mode_only_without_twilio_credentials(monkeypatch):
    from callcenter.routing.db import DEFAULT_DATABASE_URL

    monkeypatch.delenv("DEMO", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    default = {"DATABASE_URL": DEFAULT_DATABASE_URL}
    assert wanted(default) and wanted({**default, "TWILIO_ACCOUNT_SID": "AC1"})
    assert not wanted({**default, "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "secret"})
    monkeypatch.setenv("DEMO", "false")
    assert not wanted(default)


def test_demo_mode_needs_to_be_asked_for_on_another_database_or_a_public_address(monkeypatch):
    from callcenter.routing.db import DEFAULT_DATABASE_URL

    monkeypatch.delenv("DEMO", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    production = {"DATABASE_URL": "postgresql+psycopg://cc@db/callcenter"}
    assert not wanted(production)  # a typo in the credentials must not turn production into a demo
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert not wanted({"DATABASE_URL": DEFAULT_DATABASE_URL})
    monkeypatch.setenv("DEMO", "true")
    assert wanted(production)


def test_demo_settings_make_the_simulator_the_apps_twilio(monkeypatch):
    monkeypatch.delenv("CONTACT_CENTER_FILE", raising=False)
    config = settings("0.0.0.0", 5099)
    assert config["TWILIO_API_BASE_URL"] == "http://127.0.0.1:5099/simulator"
    assert config["PUBLIC_BASE_URL"] == "http://127.0.0.1:5099"
    assert config["TWILIO_ACCOUNT_SID"] == DEMO_ACCOUNT_SID and len(config["TWILIO_AUTH_TOKEN"]) == 32
    assert config["CONTACT_CENTER_FILE"].endswith("demo/contact-center.toml")
    assert settings("0.0.0.0", 5099)["TWILIO_AUTH_TOKEN"] != config["TWILIO_AUTH_TOKEN"]
