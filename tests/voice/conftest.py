"""Fixtures for the voice app: the test contact center, signed webhooks, and Twilio's REST API mocked with `responses`."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import parse_qsl

import pytest
import requests
import responses
import urllib3
from sqlalchemy import select

from callcenter import contact_center
from callcenter.database import get_router
from callcenter.routing import workers
from callcenter.routing.models import Reservation, Task, Worker
from callcenter.voice.models import AgentLeg, Call
from tests.support import TWILIO_API, TwilioWebhooks, contact_center_app, deliver_callbacks

CALLER = "+14155550100"
NUMBER = "+15005550000"


class TwilioRest:
    """Twilio's REST API as the app sees it: every request recorded, answers shaped like Twilio's."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.sids = (f"CA{n:032x}" for n in itertools.count(0xA6E000))
        self.call_status: dict[str, str] = {}
        self.placed: list[str] = []  # the calls Twilio created, whether or not its answer came back
        self.call_to: dict[str, str | None] = {}
        self.failures: dict[tuple[str, str], tuple[int, int, str]] = {}
        self.network: dict[tuple[str, str], str] = {}
        self.meanwhile: list[tuple[str, str, Callable[[], object]]] = []
        base = re.compile(re.escape(TWILIO_API) + r"/(.*)\.json")
        for method in ("GET", "POST"):
            mock.add_callback(method, base, callback=self._answer)

    def fail(self, method: str, path_pattern: str, status: int, code: int, message: str) -> None:
        """Make matching requests fail as Twilio would (e.g. 400, 21220 "Call is not in-progress")."""
        self.failures[(method, path_pattern)] = (status, code, message)

    def break_network(self, method: str, path_pattern: str, how: str) -> None:
        """Make matching requests fail on the way: "refused" (they never reach Twilio) or "lost" (Twilio
        does what was asked, and its answer never comes back: a read timeout)."""
        self.network[(method, path_pattern)] = how

    def when(self, method: str, path_pattern: str, action: Callable[[], object]) -> None:
        """Run `action` once when a matching request arrives, before Twilio answers: what happens meanwhile."""
        self.meanwhile.append((method, path_pattern, action))

    def _answer(self, request):
        path = request.path_url.split("/Accounts/")[1].split("/", 1)[1].split("?")[0].removesuffix(".json")
        for hook in list(self.meanwhile):
            if hook[0] == request.method and re.fullmatch(hook[1], path):
                self.meanwhile.remove(hook)
                hook[2]()
        for (method, pattern), how in self.network.items():
            if method == request.method and re.fullmatch(pattern, path):
                if how == "refused":
                    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")
                    raise requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, request.url, reason))
                self._twilio(request, path)
                raise requests.ReadTimeout("Read timed out. (read timeout=10)")
        return self._twilio(request, path)

    def _twilio(self, request, path: str):
        for (method, pattern), (status, code, message) in self.failures.items():
            if method == request.method and re.fullmatch(pattern, path):
                return status, {}, json.dumps({"code": code, "message": message, "status": status,
                                               "more_info": f"https://www.twilio.com/docs/errors/{code}"})
        form = dict(parse_qsl(request.body or ""))
        if request.method == "POST" and path == "Calls":
            sid = next(self.sids)
            self.call_status[sid] = "queued"
            self.call_to[sid] = form.get("To")
            self.placed.append(sid)
            return 201, {}, json.dumps({"sid": sid, "status": "queued", "to": form.get("To"), "from": form.get("From")})
        if request.method == "POST" and path.startswith("Calls/"):
            sid = path.split("/")[1]
            status = self.call_status.get(sid, "in-progress")
            if form.get("Status") == "canceled" and status in ("queued", "ringing"):
                status = "canceled"
            elif form.get("Status") == "completed":
                status = "completed"
            self.call_status[sid] = status
            return 200, {}, json.dumps({"sid": sid, "status": status})
        if request.method == "GET" and path == "Calls":  # newest first, as Twilio lists them
            to = dict(parse_qsl(request.url.split("?", 1)[1] if "?" in request.url else "")).get("To")
            calls = [{"sid": sid, "status": self.call_status[sid], "to": self.call_to[sid], "date_created": None}
                     for sid in reversed(self.placed) if to in (None, self.call_to[sid])]
            return 200, {}, json.dumps({"calls": calls, "next_page_uri": None, "page": 0, "page_size": 50})
        if request.method == "GET" and path.startswith("Calls/"):
            sid = path.split("/")[1]
            return 200, {}, json.dumps({"sid": sid, "status": self.call_status.get(sid, "in-progress")})
        if request.method == "POST" and "/Members/" in path:
            return 200, {}, json.dumps({"call_sid": path.rsplit("/", 1)[1], "queue_sid": path.split("/")[1]})
        if request.method == "POST" and path == "Messages":
            return 201, {}, json.dumps({"sid": "SM" + "0" * 32, "to": form.get("To"), "body": form.get("Body")})
        return 404, {}, json.dumps({"code": 20404, "message": "not found", "status": 404})

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path after the account, form) of every request the app made, in order."""
        sent = []
        for call in self.mock.calls:
            path = call.request.path_url.split(f"/Accounts/{TWILIO_API.rsplit('/', 1)[1]}/")[1].split("?")[0]
            sent.append((call.request.method, path.removesuffix(".json"), dict(parse_qsl(call.request.body or ""))))
        return sent

    def sent(self, method: str, path_pattern: str) -> list[dict[str, str]]:
        return [form for m, path, form in self.requests if m == method and re.fullmatch(path_pattern, path)]

    def texts(self) -> list[dict[str, str]]:
        return self.sent("POST", "Messages")


def twiml(response) -> ET.Element:
    """The TwiML of a webhook response, parsed (tests compare structure, never strings)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


class Scenario:
    """One contact center and the calls placed to it, driven like Twilio and the engine would."""

    def __init__(self, app, clock, rest: TwilioRest) -> None:
        self.app, self.clock, self.rest = app, clock, rest
        self.router = get_router(app)
        self.twilio = TwilioWebhooks(app)
        with app.app_context():
            self.center = contact_center.current(app)
        self.calls = (f"CA{n:032x}" for n in itertools.count(0xC0FFEE))

    # -- agents -------------------------------------------------------------------------------------
    def worker(self, name: str) -> Worker:
        with self.router.read() as session:
            return session.scalar(select(Worker).where(Worker.workspace_sid == self.center.workspace_sid,
                                                       Worker.friendly_name == name))

    def activity_of(self, name: str) -> str:
        worker = self.worker(name)
        return next(n for n, sid in self.center.activity_sids.items() if sid == worker.activity_sid)

    def set_activity(self, name: str, activity: str) -> None:
        workers.update_worker(self.router, self.center.workspace_sid, self.worker(name).sid,
                              activity_sid=self.center.activity_sids[activity])

    # -- the caller ---------------------------------------------------------------------------------
    def dial(self, digits: str | None = "2", call_sid: str | None = None) -> str:
        """A caller dials in and picks a menu option; returns the CallSid. The caller is now in queue."""
        call_sid = call_sid or next(self.calls)
        params = {"CallSid": call_sid, "From": CALLER, "To": NUMBER, "CallStatus": "ringing", "Direction": "inbound"}
        twiml(self.post("/voice/incoming", **params))
        choice = {"Digits": digits} if digits is not None else {}
        root = twiml(self.post("/voice/menu", **params, **choice))
        assert root.find("Enqueue") is not None
        self.post("/voice/wait", CallSid=call_sid, QueueSid="QU" + "9" * 32, QueuePosition="1", QueueTime="0")
        return call_sid

    def post(self, path: str, **params):
        with self.app.app_context():
            return self.twilio.post(path, **params)

    def deliver(self) -> int:
        return deliver_callbacks(self.app)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.router.run_due_timers()
        self.deliver()

    # -- looking ------------------------------------------------------------------------------------
    def call(self, call_sid: str) -> Call:
        with self.router.read() as session:
            return session.get(Call, call_sid)

    def task(self, call_sid: str) -> Task:
        with self.router.read() as session:
            return session.get(Task, self.call(call_sid).task_sid)

    def reservations(self, call_sid: str) -> list[Reservation]:
        with self.router.read() as session:
            return list(session.scalars(select(Reservation).where(Reservation.task_sid == self.call(call_sid).task_sid)
                                        .order_by(Reservation.date_created)))

    def legs(self, call_sid: str) -> list[AgentLeg]:
        with self.router.read() as session:
            return list(session.scalars(select(AgentLeg).where(AgentLeg.task_sid == self.call(call_sid).task_sid)
                                        .order_by(AgentLeg.date_created)))

    def agent_leg(self, reservation_sid: str) -> AgentLeg:
        with self.router.read() as session:
            return session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))

    def ring_requests(self) -> list[dict[str, str]]:
        return self.rest.sent("POST", "Calls")


@pytest.fixture
def rest():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield TwilioRest(mock)


@pytest.fixture
def app(database_url, clock):
    app = contact_center_app(database_url, clock)
    yield app
    get_router(app).dispose()


@pytest.fixture
def scenario(app, clock, rest):
    return Scenario(app, clock, rest)
