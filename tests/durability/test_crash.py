"""SIGKILL the server at ten random moments under load; nothing acknowledged is lost.

The app runs as it does in production: gunicorn, two worker processes of four threads, the
sweeper thread in each, on a SQLite file or a PostgreSQL database. Three client threads drive
the /v1 API over HTTP (task creations with short TTLs, accepts, completions, workers made
available again after a reservation timed out) while the test kills the whole process group with
SIGKILL at random moments and starts it again. Reservations time out after 1 s, so timers come
due while the server is down and are fired by the restarted one; every event has a callback
to a local server.

Afterwards the processes are gone and the engine's own sweep runs once in the test (the same code
as the sweeper thread, on a clock past the outbox leases the killed processes held), then:
every task acknowledged with a 2xx exists, with its task.created event, in a legal state; no
timer fired twice (at most one ending per reservation, one cancel or completion per task); no
overdue timer is left; every event's callback was received; and the invariant check is clean.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from callcenter.routing import FakeClock, Router
from callcenter.routing.clock import SystemClock
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Event, OutboxMessage, Reservation, Task, Timer
from callcenter.routing.outbox import LEASE_SECONDS
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, _build_schema, _drop_postgres_database, _postgres_database
from tests.durability.test_callback_faults import CallbackServer, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "crash-test-token"
KILLS = 10
LEGAL = {"pending", "reserved", "assigned", "wrapping", "completed", "canceled"}
RESERVATION_ENDINGS = ("reservation.rejected", "reservation.timeout", "reservation.canceled",
                       "reservation.rescinded", "reservation.completed")


class Server:
    """gunicorn in its own process group, so that one SIGKILL takes the master and its workers at once."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "AUTO_MIGRATE": "false", "RUN_SWEEPER": "true",
                    "SWEEP_INTERVAL": "0.1", "CONTACT_CENTER_FILE": str(log_path.parent / "none.toml")}
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115  (handed to the child)
        command = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
                   "--no-control-socket", "-c", str(Path(__file__).with_name("gunicorn_preimport.py")),
                   "-b", f"127.0.0.1:{self.port}", "app:create_app()"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a real process: the only way to know it listens is to ask
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or still booting its workers
            time.sleep(0.1)
        raise AssertionError(f"server not up after 30 s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


class Load:
    """Client threads using the API the way an integration would; they ride out the server's deaths."""

    def __init__(self, base: str, ws: dict, seed: int) -> None:
        self.base, self.ws = base, ws
        self.rng = random.Random(seed)
        self.acknowledged: list[str] = []
        self.server_errors: list[str] = []
        self.ops: Counter = Counter()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.base}/v1/Workspaces/{self.ws['sid']}/{path}"

    def run(self, index: int) -> None:
        session = requests.Session()
        session.auth = (ACCOUNT_SID, AUTH_TOKEN)
        rng = random.Random(self.rng.random() + index)
        while not self.stop.is_set():
            try:
                self.one(session, rng)
            except requests.RequestException:  # refused, reset, cut off mid-answer: the server died
                self.ops["connection lost"] += 1
                time.sleep(0.2)  # the server is down: try again shortly, as a client would

    def one(self, session: requests.Session, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.5:
            response = session.post(self.url("Tasks"), timeout=5, data={
                "WorkflowSid": self.ws["workflow"], "Timeout": rng.choice([2, 4, 600]),
                "Attributes": json.dumps({"n": rng.randrange(1000)})})
            self.check(response, "create")
            if response.status_code == 201:
                with self._lock:
                    self.acknowledged.append(response.json()["sid"])
        elif roll < 0.7:
            tasks = session.get(self.url("Tasks"), params={"AssignmentStatus": "reserved", "PageSize": 20},
                                timeout=5).json().get("tasks", [])
            if tasks:
                task = rng.choice(tasks)["sid"]
                pending = session.get(self.url(f"Tasks/{task}/Reservations"), params={"ReservationStatus": "pending"},
                                      timeout=5).json().get("reservations", [])
                if pending:
                    self.check(session.post(self.url(f"Tasks/{task}/Reservations/{pending[0]['sid']}"), timeout=5,
                                            data={"ReservationStatus": "accepted"}), "accept")
        elif roll < 0.85:
            tasks = session.get(self.url("Tasks"), params={"AssignmentStatus": "assigned", "PageSize": 20},
                                timeout=5).json().get("tasks", [])
            if tasks:
                self.check(session.post(self.url(f"Tasks/{rng.choice(tasks)['sid']}"), timeout=5,
                                        data={"AssignmentStatus": "completed", "Reason": "done"}), "complete")
        else:
            self.check(session.post(self.url(f"Workers/{rng.choice(self.ws['workers'])}"), timeout=5,
                                    data={"ActivitySid": self.ws["available"]}), "available")

    def check(self, response: requests.Response, op: str) -> None:
        self.ops[f"{op} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{op}: {response.status_code} {response.text[:300]}")


def _setup(base: str, callbacks: CallbackServer) -> dict:
    http = requests.Session()
    http.auth = (ACCOUNT_SID, AUTH_TOKEN)
    ws = http.post(f"{base}/v1/Workspaces", data={"FriendlyName": "Crash",
                                                   "EventCallbackUrl": f"{callbacks.base}/events"}).json()["sid"]
    url = f"{base}/v1/Workspaces/{ws}"
    queue = http.post(f"{url}/TaskQueues", data={"FriendlyName": "All", "TargetWorkers": "1==1"}).json()["sid"]
    workflow = http.post(f"{url}/Workflows", data={
        "FriendlyName": "Inbound", "AssignmentCallbackUrl": f"{callbacks.base}/assign", "TaskReservationTimeout": 1,
        "Configuration": json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queue}}}),
    }).json()["sid"]
    activities = http.get(f"{url}/Activities").json()["activities"]
    available = next(a["sid"] for a in activities if a["friendly_name"] == "Available")
    workers = [http.post(f"{url}/Workers", data={"FriendlyName": f"agent-{i}", "ActivitySid": available}).json()["sid"]
               for i in range(6)]
    return {"sid": ws, "workflow": workflow, "available": available, "workers": workers}


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_database_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        _build_schema(url)
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    url = _postgres_database()
    _build_schema(url)
    yield url
    _drop_postgres_database(url)


def test_sigkill_at_ten_random_moments_loses_nothing_acknowledged(crash_database_url, tmp_path):
    callbacks = CallbackServer().start()
    server = Server(crash_database_url, tmp_path / "server.log")
    rng = random.Random()
    try:
        server.start()
        ws = _setup(server.base, callbacks)
        load = Load(server.base, ws, rng.randrange(10**6))
        threads = [threading.Thread(target=load.run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.2, 0.8))  # a random moment of the load
                server.kill()
                server.start()
            time.sleep(0.3)
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(10)
            server.kill()
    except BaseException:
        callbacks.stop()
        raise

    assert server.starts == KILLS + 1
    assert load.server_errors == []
    print(f"\n{crash_database_url.split(':')[0]}: {server.starts - 1} kills; {len(load.acknowledged)} tasks "
          f"acknowledged; requests: {dict(load.ops)}")
    assert len(load.acknowledged) > 20

    # The restart, with every process gone: the engine's sweep, past the leases of the killed deliveries.
    clock = FakeClock(SystemClock().now() + timedelta(seconds=LEASE_SECONDS + 1))
    router = Router(crash_database_url, clock=clock)
    try:
        with router.read() as session:
            rows = dict(session.execute(select(Task.sid, Task.assignment_status)
                                        .where(Task.workspace_sid == ws["sid"])).all())
            created = set(session.scalars(select(Event.resource_sid).where(Event.event_type == "task.created")))
        missing = [sid for sid in load.acknowledged if sid not in rows]
        assert missing == [], f"{len(missing)} acknowledged tasks lost"
        assert [sid for sid in load.acknowledged if sid not in created] == []
        assert set(rows.values()) <= LEGAL

        overdue_before = _count(router, select(func.count()).select_from(Timer).where(Timer.due_at <= clock.now()))
        fired = 0
        while (done := router.run_due_timers()):
            fired += done
        assert _count(router, select(func.count()).select_from(Timer).where(Timer.due_at <= clock.now())) == 0
        attempted = 0
        while (done := router.deliver_outbox()):
            attempted += done
        with router.read() as session:
            left = list(session.execute(select(OutboxMessage.kind, OutboxMessage.status, OutboxMessage.last_error)))
            assert [row for row in left if row.kind == "event"] == []
            event_sids = set(session.scalars(select(Event.sid).where(Event.workspace_sid == ws["sid"])))
            endings = Counter(session.execute(select(Event.resource_sid).where(
                Event.event_type.in_(RESERVATION_ENDINGS))).scalars())
            task_endings = Counter(session.execute(select(Event.resource_sid).where(
                Event.event_type.in_(("task.canceled", "task.completed")))).scalars())
            reservations = session.scalar(select(func.count()).select_from(Reservation))
        received = Counter(params.get("Sid") for path, params in callbacks.requests if path == "/events")
        assert sorted(event_sids - set(received)) == [], "events whose callback never arrived"
        assert [sid for sid, n in endings.items() if n > 1] == [], "a reservation ended twice"
        assert [sid for sid, n in task_endings.items() if n > 1] == [], "a task ended twice"
        assert check_invariants(router) == []
        print(f"after restart: {overdue_before} overdue timers, {fired} fired; {attempted} callbacks attempted; "
              f"{len(event_sids)} events, {sum(received.values()) - len(received)} delivered twice "
              f"(cut off by a kill); {reservations} reservations, {sum(endings.values())} ended once each")
    finally:
        router.dispose()
        callbacks.stop()


def _count(router: Router, query) -> int:
    with router.read() as session:
        return session.scalar(query)
