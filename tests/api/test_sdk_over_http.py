"""The real app served over HTTP on a local port, driven by the official twilio SDK exactly as a user would.

The other API tests run the app in-process; these check what only a socket shows: the SDK's own
`requests` transport, absolute `next_page_url`s naming this server's host and port, and the public
URL that a proxy's `X-Forwarded-*` headers give (ProxyFix in app.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from werkzeug.serving import make_server

from app import create_app

from .conftest import ACCOUNT_SID, AUTH_TOKEN

AUTH = (ACCOUNT_SID, AUTH_TOKEN)


@dataclass
class Server:
    """The app listening on 127.0.0.1; `requests` lists each (method, path, query) it was asked for."""

    base_url: str
    dialect: str
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def sdk(self) -> Client:
        client = Client(ACCOUNT_SID, AUTH_TOKEN, environment={"_": "_"})
        client.taskrouter.base_url = self.base_url
        return client


@pytest.fixture
def server(database_url) -> Iterator[Server]:
    app = create_app({"DATABASE_URL": database_url, "AUTO_MIGRATE": False, "RUN_SWEEPER": False,
                      "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    router = app.extensions["router"]
    served = Server(base_url="", dialect=router.writer.dialect.name)
    inner = app.wsgi_app

    def recording(environ, start_response):
        served.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", "")))
        return inner(environ, start_response)

    app.wsgi_app = recording
    # Port 0: the kernel picks a free port; threaded, as a real deployment answers concurrent clients.
    http_server = make_server("127.0.0.1", 0, app, threaded=True)
    served.base_url = f"http://127.0.0.1:{http_server.server_port}"
    # A short poll interval: `shutdown()` waits up to one interval for the loop to notice.
    thread = threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.02},
                              name="test-http-server", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        http_server.shutdown()
        thread.join(timeout=10)
        http_server.server_close()
        router.dispose()


@pytest.fixture
def taskrouter(server):
    return server.sdk().taskrouter.v1


# -- health ----------------------------------------------------------------------------------------

def test_health_answers_over_http_with_the_database_it_reached(server):
    response = requests.get(f"{server.base_url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": server.dialect}


# -- the canonical sequence ------------------------------------------------------------------------

def test_canonical_sequence_through_the_sdk_over_http(server, taskrouter):
    workspace = taskrouter.workspaces.create(friendly_name="Over HTTP")
    assert workspace.url == f"{server.base_url}/v1/Workspaces/{workspace.sid}"
    ws = taskrouter.workspaces(workspace.sid)
    activities = {activity.friendly_name: activity.sid for activity in ws.activities.list()}
    busy = ws.activities.create(friendly_name="Busy", available=False)
    assert busy.available is False
    queue = ws.task_queues.create(friendly_name="Support", target_workers="skills HAS 'support'")
    workflow = ws.workflows.create(friendly_name="Routing", configuration=json.dumps(
        {"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}}))
    alice = ws.workers.create(friendly_name="alice", activity_sid=activities["Available"],
                              attributes=json.dumps({"skills": ["support"]}))
    assert (alice.activity_name, alice.available) == ("Available", True)

    task = ws.tasks.create(workflow_sid=workflow.sid, attributes=json.dumps({"type": "support"}))
    assert task.assignment_status == "reserved"
    pending = ws.tasks(task.sid).reservations.list(reservation_status="pending")
    assert [(r.worker_sid, r.worker_name) for r in pending] == [(alice.sid, "alice")]

    accepted = ws.tasks(task.sid).reservations(pending[0].sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"

    completed = ws.tasks(task.sid).update(assignment_status="completed", reason="call ended")
    assert (completed.assignment_status, completed.reason) == ("completed", "call ended")
    assert ws.tasks(task.sid).reservations(pending[0].sid).fetch().reservation_status == "completed"


# -- paging ----------------------------------------------------------------------------------------

def test_stream_follows_absolute_next_page_urls_on_this_server(server, taskrouter):
    ws_sid = taskrouter.workspaces.create(friendly_name="Paged").sid
    ws = taskrouter.workspaces(ws_sid)
    names = {f"agent{number}" for number in range(5)}
    for name in sorted(names):
        ws.workers.create(friendly_name=name)
    del server.requests[:]

    streamed = [worker.friendly_name for worker in ws.workers.stream(page_size=2)]

    assert sorted(streamed) == sorted(names)  # every worker once, none repeated across pages
    pages = [(path, query) for method, path, query in server.requests if method == "GET"]
    assert [path for path, _ in pages] == [f"/v1/Workspaces/{ws_sid}/Workers"] * 3
    assert ["PageToken=PT" in query for _, query in pages] == [False, True, True]


def test_next_page_url_names_this_servers_host_and_port(server, taskrouter):
    ws_sid = taskrouter.workspaces.create(friendly_name="Paged").sid
    for number in range(3):
        taskrouter.workspaces(ws_sid).workers.create(friendly_name=f"agent{number}")
    page = taskrouter.workspaces(ws_sid).workers.page(page_size=2)
    assert page.next_page_url.startswith(f"{server.base_url}/v1/Workspaces/{ws_sid}/Workers?")


# -- errors ----------------------------------------------------------------------------------------

def test_unknown_workspace_raises_twilio_rest_exception_404(taskrouter):
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces("WS" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code, raised.value.method) == (404, 20404, "GET")


def test_invalid_attributes_raise_twilio_rest_exception_400(taskrouter):
    ws = taskrouter.workspaces(taskrouter.workspaces.create(friendly_name="Errors").sid)
    with pytest.raises(TwilioRestException) as raised:
        ws.workers.create(friendly_name="alice", attributes="{not json")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert ws.workers.list() == []  # the refused request changed nothing


def test_wrong_auth_token_raises_twilio_rest_exception_401(server):
    client = Client(ACCOUNT_SID, "not-the-token", environment={"_": "_"})
    client.taskrouter.base_url = server.base_url
    with pytest.raises(TwilioRestException) as raised:
        client.taskrouter.v1.workspaces.create(friendly_name="Refused")
    assert (raised.value.status, raised.value.code) == (401, 20003)


# -- behind a proxy --------------------------------------------------------------------------------

def test_forwarded_proto_and_host_give_urls_on_the_public_host(server):
    # The SDK cannot add headers per request: a proxy in front of the app would, so send them raw.
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "callcenter.example.com"}
    response = requests.post(f"{server.base_url}/v1/Workspaces", data={"FriendlyName": "Public"}, auth=AUTH,
                             headers=forwarded, timeout=10)
    assert response.status_code == 201
    sid = response.json()["sid"]
    assert response.json()["url"] == f"https://callcenter.example.com/v1/Workspaces/{sid}"
    assert response.json()["links"]["workers"] == f"https://callcenter.example.com/v1/Workspaces/{sid}/Workers"


def test_forwarded_headers_also_move_next_page_urls_to_the_public_host(server):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "callcenter.example.com"}
    for number in range(2):
        requests.post(f"{server.base_url}/v1/Workspaces", data={"FriendlyName": f"Public {number}"}, auth=AUTH,
                      timeout=10).raise_for_status()
    response = requests.get(f"{server.base_url}/v1/Workspaces", params={"PageSize": 1}, auth=AUTH,
                            headers=forwarded, timeout=10)
    assert response.status_code == 200
    assert response.json()["meta"]["next_page_url"].startswith("https://callcenter.example.com/v1/Workspaces?")


def test_without_forwarded_headers_urls_name_the_server_itself(server):
    response = requests.post(f"{server.base_url}/v1/Workspaces", data={"FriendlyName": "Direct"}, auth=AUTH,
                             timeout=10)
    assert response.json()["url"] == f"{server.base_url}/v1/Workspaces/{response.json()['sid']}"
