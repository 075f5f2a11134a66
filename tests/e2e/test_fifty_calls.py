"""End to end over real HTTP: the app on a local port, the phone simulator as Twilio on another, 50 calls, 5 agents.

Every webhook the simulator sends is signed and crosses a socket to the app; every REST call the app
makes to "Twilio" (ringing agents, dequeuing exactly the chosen caller, hanging up) crosses a socket
to the simulator; the engine's assignment and event callbacks go to the app over HTTP too. Time is
virtual and shared: the engine's clock is the simulator's, and the test moves it (no sleeping), so
callers' patience, the 5-minute wait before voicemail and the wrap-up timer all run as they would.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from callcenter import contact_center
from callcenter.database import get_router
from callcenter.routing import workers
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Worker
from callcenter.routing.statistics import workspace_cumulative
from callcenter.simulator import Caller, HttpTransport, VirtualClock, create_simulator, simulator_of
from callcenter.simulator.harness import Harness
from callcenter.voice.models import Call

pytestmark = pytest.mark.slow

ACCOUNT_SID = "AC" + "e2" * 16
AUTH_TOKEN = "end-to-end-auth-token-0123456789"
NUMBER = "+15550100000"
CONTACT_CENTER = Path(__file__).resolve().parents[2] / "demo" / "contact-center.toml"
CALLS = 50
# The simulator's outcome of a caller's call, and the voice app's name for the same ending.
SAME_OUTCOME = {"answered": "answered", "abandoned": "abandoned", "voicemail": "missed"}


class Server:
    """A WSGI app on a free local port, in a thread (the app is given once the port is known)."""

    def __init__(self) -> None:
        self.app = None
        self.server = make_server("127.0.0.1", 0, lambda environ, start: self.app(environ, start), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, app) -> Server:
        self.app = app
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def world(database_url):
    app_server, twilio_server = Server(), Server()
    clock = VirtualClock()
    app = create_app({
        "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False, "LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": NUMBER,
        "TWILIO_API_BASE_URL": twilio_server.url, "PUBLIC_BASE_URL": app_server.url,
        "CONTACT_CENTER_FILE": str(CONTACT_CENTER), "SECRET_KEY": "e2e",
    })
    router = get_router(app)
    router.clock = clock
    twilio = create_simulator(app_server.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, transport=HttpTransport(),
                              number=NUMBER, api_base_url=twilio_server.url)
    sim = simulator_of(twilio)
    sim.add_number(NUMBER, voice_url=f"{app_server.url}/voice/incoming", status_callback=f"{app_server.url}/voice/status")
    app_server.serve(app)
    twilio_server.serve(twilio)
    with app.app_context():
        center, _ = contact_center.load(app)
    try:
        yield app, router, sim, center
    finally:
        app_server.stop()
        twilio_server.stop()
        router.dispose()


def test_fifty_calls_against_five_agents_end_answered_abandoned_or_in_voicemail(world):
    _, router, sim, center = world
    assert len(center.spec.agents) == 5
    for agent in center.spec.agents:  # answer after 3 s and press 1; the caller decides how long they talk
        sim.add_phone(agent.contact_uri, answer_after=3, handle_time=None, then_digits="1")
    with router.read() as session:
        agents = session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)).all()
    for worker in agents:
        workers.update_worker(router, center.workspace_sid, worker.sid, activity_sid=center.activity_for("available"))

    rng = random.Random(6)
    start = sim.now()
    callers = []
    for n in range(CALLS):  # one every 15 s on average, for about 12 minutes: more than 5 agents can take
        caller = Caller(f"+1415555{n:04d}", digits=rng.choice(["1", "2", "2", None]),
                        patience=rng.choice([45, 90, None, None]), talk_time=rng.uniform(60, 240), voicemail=True)
        callers.append(caller)
        sim.scheduler.at(start + timedelta(seconds=rng.uniform(0, 720)), lambda c=caller: sim.place_call(c), "arrival")
    harness = Harness(router, sim)
    assert harness.run_until_quiet(max_seconds=3 * 3600)

    calls = [call for call in sim.calls.values() if call.direction == "inbound"]
    assert len(calls) == CALLS
    assert not sim.errors, sim.errors[:3]
    refused = [w for call in sim.calls.values() for w in call.webhooks() if w["status"] >= 400]
    assert not refused, refused[:3]  # every signed webhook was accepted, none failed

    # Every call ended in one of the three ways, and the app recorded the same ending for the same call.
    simulated = {call.sid: call.outcome for call in calls}
    assert set(simulated.values()) == {"answered", "abandoned", "voicemail"}, Counter(simulated.values())
    with router.read() as session:
        rows = {row.call_sid: row for row in session.scalars(select(Call).where(
            Call.workspace_sid == center.workspace_sid))}
    assert set(rows) == set(simulated)
    assert {sid: rows[sid].outcome for sid in rows} == {sid: SAME_OUTCOME[o] for sid, o in simulated.items()}
    for call in calls:
        row = rows[call.sid]
        if call.outcome == "answered":
            assert row.worker_sid is not None and row.date_answered is not None
        if call.outcome == "voicemail":
            assert row.recording_url and row.transcription == "Please call me back."

    # No agent was ever rung while on a call: not by the simulator's count, nor by the legs' times.
    for phone in sim.phones.values():
        assert phone.double_booked == []
        spans = sorted((sim.calls[sid].date_created, sim.calls[sid].end_time) for sid in phone.calls)
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans)), phone.contact
    assert sum(len(phone.calls) for phone in sim.phones.values()) >= Counter(simulated.values())["answered"]
    assert check_invariants(router, center.workspace_sid) == []

    # The engine's own statistics tell the same story.
    outcomes = Counter(simulated.values())
    stats = workspace_cumulative(router, center.workspace_sid, start_date=start - timedelta(minutes=1),
                                 end_date=sim.now() + timedelta(minutes=1))
    assert stats["tasks_created"] == CALLS
    assert stats["reservations_accepted"] == outcomes["answered"]
    assert stats["tasks_canceled"] == outcomes["abandoned"] + outcomes["voicemail"]
    assert stats["tasks_completed"] == outcomes["answered"]
    # Everyone is back to Available once the last wrap-up is over.
    with router.read() as session:
        activities = {w.friendly_name: w.activity_sid for w in session.scalars(
            select(Worker).where(Worker.workspace_sid == center.workspace_sid))}
    assert set(activities.values()) == {center.activity_for("available")}
