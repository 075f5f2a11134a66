"""Live updates: the SSE stream says something changed after a state change; on PostgreSQL a change made by
another process reaches this one through LISTEN/NOTIFY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.database import get_router
from callcenter.routing import workers
from callcenter.web.live import _concerns, hub_of

ROOT = Path(__file__).resolve().parents[2]


def next_change(stream, limit: int = 20) -> dict:
    """The next `event: change` of an SSE response (keep-alive comments skipped)."""
    for _ in range(limit):
        chunk = next(stream)
        chunk = chunk.decode() if isinstance(chunk, bytes) else chunk
        if chunk.startswith("event: change"):
            notice = json.loads(chunk.split("data: ", 1)[1])
            if not notice.get("reconnected"):  # PostgreSQL: the listener's first LISTEN says "re-fetch"
                return notice
    raise AssertionError("no change event in the stream")


def open_stream(browser):
    response = browser.get("/live", headers={"Accept": "text/event-stream"}, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    stream = iter(response.response)
    assert next(stream).startswith(b"retry:")
    return response, stream


def next_engine_notice(subscription, timeout: float = 30) -> dict | None:
    """The next notice of committed events (the listener's "reconnected" notice skipped)."""
    while True:
        notice = subscription.get(timeout=timeout)
        if notice is None or not notice.get("reconnected"):
            return notice


def wait_until_listening(app) -> None:
    hub = hub_of(app)
    if hub.postgres:
        assert hub._listener.listening.wait(10), "the LISTEN connection did not come up"


def test_stream_tells_the_supervisor_when_an_agent_changes_activity(scenario, supervisor):
    supervisor.app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    response, stream = open_stream(supervisor)
    try:
        wait_until_listening(supervisor.app)
        bob = scenario.worker("Bob").sid
        scenario.set_activity("Bob", "Available")

        notice = next_change(stream)

        assert notice["ws"] == scenario.center.workspace_sid
        assert ["worker.activity.update", None, bob, None, None] in notice["events"]
    finally:
        response.close()


def test_stream_tells_an_agent_about_their_own_offer_with_event_types_only(scenario, alice):
    alice.app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    response, stream = open_stream(alice)
    try:
        wait_until_listening(alice.app)
        scenario.set_activity("Alice", "Available")
        assert next_change(stream)["events"] == [["worker.activity.update"]]
        scenario.dial(digits="1")

        notice = next_change(stream)

        assert ["reservation.created"] in notice["events"]
        assert all(len(event) == 1 for event in notice["events"])  # no other agent's sids reach an agent's page
    finally:
        response.close()


def next_chunk(stream) -> str:
    chunk = next(stream)
    return chunk.decode() if isinstance(chunk, bytes) else chunk


def test_an_agent_hears_of_callers_entering_their_queues_at_most_once_per_interval(scenario, alice):
    """The console's "callers waiting in your queues": a task entering Alice's queue reaches her page (event
    types only); a burst is one notice per LIVE_QUEUE_NOTICE_SECONDS, and other queues' tasks none."""
    alice.app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    alice.app.config["LIVE_QUEUE_NOTICE_SECONDS"] = 3600
    response, stream = open_stream(alice)  # Alice is Offline, in the Sales queue
    try:
        wait_until_listening(alice.app)
        scenario.dial(digits="1")  # sales
        notice = next_change(stream)
        assert ["task-queue.entered"] in notice["events"]
        assert all(len(event) == 1 for event in notice["events"])
        assert alice.json("/agent/state.json")["waiting_in_my_queues"] == 1

        scenario.dial(digits="1")  # within the interval: held back
        scenario.dial(digits="2")  # support: not Alice's queue
        assert next_chunk(stream).startswith(": keep-alive")
    finally:
        response.close()


def test_an_agent_hears_of_callers_in_a_queue_made_while_their_page_is_open(scenario, alice):
    """Their queues were read when the stream opened, and again only when attributes or expressions changed:
    callers of a queue added since (REST, `contact-center load`) never reached "callers waiting in your queues"."""
    from callcenter.routing import queues, tasks, workflows

    alice.app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    alice.app.config["LIVE_QUEUE_NOTICE_SECONDS"] = 0
    response, stream = open_stream(alice)
    try:
        wait_until_listening(alice.app)
        vip = queues.create_task_queue(scenario.router, scenario.center.workspace_sid, friendly_name="VIP",
                                       target_workers="products HAS 'sales'")
        assert ["task-queue.created"] in next_change(stream)["events"]
        routing = {"task_routing": {"default_filter": {"queue": vip.sid}}}
        workflow = workflows.create_workflow(scenario.router, scenario.center.workspace_sid, friendly_name="VIP line",
                                             configuration=json.dumps(routing))
        tasks.create_task(scenario.router, scenario.center.workspace_sid, attributes={}, workflow_sid=workflow.sid)
        assert ["task-queue.entered"] in next_change(stream)["events"]
    finally:
        response.close()


def test_a_held_queue_notice_is_sent_when_its_interval_is_over(scenario, alice):
    alice.app.config["LIVE_HEARTBEAT_SECONDS"] = 30
    alice.app.config["LIVE_QUEUE_NOTICE_SECONDS"] = 0.2
    response, stream = open_stream(alice)
    try:
        wait_until_listening(alice.app)
        scenario.dial(digits="1")
        next_change(stream)
        scenario.dial(digits="1")  # held, then sent once 0.2 s have passed: long before the 30 s keep-alive
        assert ["task-queue.entered"] in next_change(stream, limit=1)["events"]
    finally:
        response.close()


def test_agents_hear_only_about_their_own_worker():
    ws, alice, bob = "WS1", "WK-alice", "WK-bob"
    about_bob = {"ws": ws, "events": [["worker.activity.update", None, bob, None, None]]}
    about_alice = {"ws": ws, "events": [["reservation.created", "WT1", alice, "WR1", "WQ1"]]}

    assert not _concerns(about_bob, ws, alice)
    assert _concerns(about_alice, ws, alice)
    assert _concerns(about_bob, ws, None)  # a supervisor hears everything of the workspace
    assert not _concerns(about_bob, "WS2", None)
    assert _concerns({"ws": None, "events": [], "reconnected": True}, ws, alice)


def test_subscriptions_end_when_the_stream_is_closed(scenario, supervisor):
    hub = hub_of(supervisor.app)
    response, _ = open_stream(supervisor)
    assert len(hub._subscriptions) == 1

    response.close()

    assert len(hub._subscriptions) == 0


@pytest.fixture
def postgres_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return database_url


def test_a_change_committed_by_another_process_reaches_this_processs_subscribers(postgres_url, scenario, app):
    hub = hub_of(app)
    subscription = hub.subscribe()
    try:
        assert hub._listener.listening.wait(10)
        bob = scenario.worker("Bob").sid
        script = (
            "import sys\n"
            "from callcenter.database import get_router\n"
            "from callcenter.routing import workers\n"
            "from tests.support import contact_center_app\n"
            "app = contact_center_app(sys.argv[1])\n"
            "center = app.extensions['contact_center']\n"
            "workers.update_worker(get_router(app), center.workspace_sid, sys.argv[2],\n"
            "                      activity_sid=center.activity_sids['Break'])\n"
        )
        subprocess.run([sys.executable, "-c", script, postgres_url, bob], cwd=ROOT, check=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})

        notice = next_engine_notice(subscription)

        assert notice is not None, "no notice from the other process"
        assert notice["ws"] == scenario.center.workspace_sid
        assert ["worker.activity.update", None, bob, None, None] in notice["events"]
    finally:
        subscription.close()
        hub.stop()


def test_a_change_of_another_router_on_postgresql_reaches_a_listener(postgres_url, scenario, app):
    from tests.support import contact_center_app

    other = contact_center_app(postgres_url)  # a second engine and pool: as another app process would have
    hub = hub_of(app)
    subscription = hub.subscribe()
    try:
        assert hub._listener.listening.wait(10)
        carol = scenario.worker("Carol").sid
        center = other.extensions["contact_center"]
        workers.update_worker(get_router(other), center.workspace_sid, carol, activity_sid=center.activity_sids["Break"])

        notice = next_engine_notice(subscription)

        assert notice is not None and ["worker.activity.update", None, carol, None, None] in notice["events"]
    finally:
        subscription.close()
        hub.stop()
        get_router(other).dispose()


def test_a_head_request_on_the_stream_leaves_no_subscription_behind(app, supervisor):
    from callcenter.web.live import hub_of

    for _ in range(3):
        assert supervisor.client.head("/live").status_code == 200
    assert len(hub_of(app)._subscriptions) == 0


def test_a_head_request_says_429_when_the_user_holds_all_their_streams_and_takes_no_place(app, alice):
    """A page whose stream was refused asks why with a HEAD: an EventSource is never told the status."""
    app.config.update(LIVE_STREAMS_PER_USER=1, LIVE_HEARTBEAT_SECONDS=15)
    assert alice.client.head("/live").status_code == 200
    response, _ = open_stream(alice)
    try:
        refused = alice.client.head("/live")
        assert refused.status_code == 429
        assert (refused.headers["Retry-After"], refused.headers["X-Live-Streams-Limit"]) == ("15", "1")
    finally:
        response.close()
    assert alice.client.head("/live").status_code == 200


# -- holding threads: a cap per user, an end to every stream ------------------------------------------

def stream_request(browser):
    return browser.get("/live", headers={"Accept": "text/event-stream"}, buffered=False)


def test_a_user_gets_429_past_their_share_of_open_streams_and_a_place_back_when_one_closes(app, alice):
    app.config.update(LIVE_STREAMS_PER_USER=2, LIVE_HEARTBEAT_SECONDS=15)
    from tests.web.conftest import Browser

    first, _ = open_stream(alice)
    second, _ = open_stream(alice)
    bob = Browser(app)
    bob.login("bob")
    try:
        refused = stream_request(alice)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "15"
        assert refused.get_json() == {
            "code": 20429, "message": "Too many live pages open: 2 per user. Close one, or try again in 15 s.",
            "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}
        bobs, _ = open_stream(bob)  # the cap is per user
        bobs.close()

        first.close()  # a page closed: its place is free again
        again, _ = open_stream(alice)
        again.close()
    finally:
        first.close()
        second.close()
    assert len(hub_of(app)._subscriptions) == 0


def test_a_stream_whose_client_leaves_before_the_first_byte_gives_its_place_back(app, alice):
    from werkzeug.test import EnvironBuilder

    app.config["LIVE_STREAMS_PER_USER"] = 1
    cookie = alice.client.get_cookie("session").value
    for _ in range(3):
        # Straight to WSGI (the test client reads the first chunk itself): the server closes a body it never read.
        environ = EnvironBuilder(path="/live", headers={"Accept": "text/event-stream",
                                                        "Cookie": f"session={cookie}"}).get_environ()
        statuses: list[str] = []
        body = app(environ, lambda status, headers, exc_info=None, seen=statuses: seen.append(status))
        assert statuses == ["200 OK"]
        body.close()

    assert len(hub_of(app)._subscriptions) == 0


def test_a_stream_ends_after_its_maximum_duration_and_frees_its_place(scenario, app, alice):
    app.config["LIVE_STREAM_SECONDS"] = 60
    response, stream = open_stream(alice)
    try:
        wait_until_listening(app)
        scenario.clock.advance(59)
        scenario.set_activity("Alice", "Available")
        assert next_change(stream)["events"] == [["worker.activity.update"]]

        scenario.clock.advance(2)  # past its 60 s: the browser's EventSource opens a new one
        scenario.set_activity("Alice", "Break")

        assert list(stream) == []  # the response ends
        assert len(hub_of(app)._subscriptions) == 0
    finally:
        response.close()


def test_signing_out_ends_the_sessions_open_streams_at_once(app, alice):
    from tests.web.conftest import Browser

    bob = Browser(app)
    bob.login("bob")
    alices, alice_stream = open_stream(alice)
    bobs, _ = open_stream(bob)
    try:
        alice.client.post("/logout", data={"csrf_token": alice.page_token("/agent")})

        assert list(alice_stream) == []
        assert len(hub_of(app)._subscriptions) == 1  # Bob's stays open
    finally:
        alices.close()
        bobs.close()
