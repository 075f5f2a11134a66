"""The demo page (demo mode): place a test call, then watch it routed, answered and completed in the page's state."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app
from callcenter import contact_center
from callcenter.database import get_router
from callcenter.routing import workers
from callcenter.routing.models import Worker
from callcenter.simulator import page, simulator_of
from callcenter.simulator.harness import Harness, wire_in_process

DEMO_CENTER = str(Path(__file__).resolve().parents[2] / "demo" / "contact-center.toml")


@pytest.fixture
def demo(sqlite_url):
    app = create_app({
        "TESTING": True, "DATABASE_URL": sqlite_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
        "TWILIO_ACCOUNT_SID": "AC" + "de" * 16, "TWILIO_AUTH_TOKEN": "demo-page-token", "DEMO_MODE": True,
        "PUBLIC_BASE_URL": "http://demo.test", "TWILIO_PHONE_NUMBER": "+15550100000",
        "CONTACT_CENTER_FILE": DEMO_CENTER, "SECRET_KEY": "demo",
    })
    sim = simulator_of(wire_in_process(app))
    app.extensions["simulator"] = sim
    page.register(app)
    with app.app_context():
        center, _ = contact_center.load(app)
    router = get_router(app)
    for agent in center.spec.agents:
        sim.add_phone(agent.contact_uri, answer_after=3, handle_time=60, then_digits="1")
    with router.read() as session:
        for worker in session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)).all():
            workers.update_worker(router, center.workspace_sid, worker.sid, activity_sid=center.activity_for("available"))
    yield app, Harness(router, sim)
    router.dispose()


def test_a_test_call_is_shown_routed_answered_and_completed(demo):
    app, harness = demo
    client = app.test_client()
    assert b"For sales, press 1." in client.get("/demo").data

    placed = client.post("/demo/calls", data={"digit": "1"})
    assert placed.status_code == 201
    harness.advance(30)
    state = client.get("/demo/state.json").get_json()
    [call] = state["calls"]
    assert call["call_sid"] == placed.get_json()["call_sid"] and call["status"] == "in-progress"
    lines = [(line["who"], line["text"]) for line in call["log"]]
    assert ("caller", "pressed 1") in lines
    assert ("caller", "waiting in queue demo-callers (position 1)") in lines
    agent = next(who for who, text in lines if who != "caller")  # the agent rung, by name
    assert agent in ("Alice", "Bob") and (agent, "pressed 1") in lines and (agent, "connected: talking") in lines
    assert {a["name"]: a["activity"] for a in state["agents"]}[agent] == "On a call"

    assert harness.run_until_quiet(max_seconds=600)
    [call] = client.get("/demo/state.json").get_json()["calls"]
    assert call["status"] == "completed" and call["outcome"] == "answered"
    assert ("caller", "call completed") in [(line["who"], line["text"]) for line in call["log"]]


@pytest.mark.parametrize(("form", "message"), [({"digit": "12"}, "digit must be one key"),
                                               ({"digit": "1", "patience": "soon"}, "patience must be a number")])
def test_a_bad_request_gets_a_twilio_style_error(demo, form, message):
    app, _ = demo
    reply = app.test_client().post("/demo/calls", data=form)
    assert reply.status_code == 400
    body = reply.get_json()
    assert body["status"] == 400 and body["code"] == 20001 and message in body["message"]


def test_a_caller_who_hangs_up_in_line_shows_as_abandoned(demo):
    app, harness = demo
    client = app.test_client()
    with app.app_context():
        center = contact_center.current(app)
    router = harness.router
    with router.read() as session:  # nobody is free: everyone on a break
        for worker in session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)).all():
            workers.update_worker(router, center.workspace_sid, worker.sid, activity_sid=center.activity_for("break"))
    client.post("/demo/calls", data={"digit": "2", "patience": "20"})
    assert harness.run_until_quiet(max_seconds=600)
    [call] = client.get("/demo/state.json").get_json()["calls"]
    assert call["outcome"] == "abandoned"
    assert any(line["text"] == "hangs up (patience)" for line in call["log"])


def test_another_site_cannot_place_test_calls_through_a_visitors_browser(demo):
    demo_client = demo[0].test_client()
    refused = demo_client.post("/demo/calls", data={"digit": "1"}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403


def test_patience_must_be_a_sane_number_of_seconds(demo):
    demo_client = demo[0].test_client()
    for bad in ("nan", "inf", "1e300", "-5"):
        assert demo_client.post("/demo/calls", data={"digit": "1", "patience": bad}).status_code == 400
