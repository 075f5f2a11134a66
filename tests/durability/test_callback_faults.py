"""Callbacks against a real HTTP server that refuses, fails, answers too late, never answers, then recovers.

The engine's own urllib transport posts to a local server on a real socket. Retries are scheduled
on the FakeClock: the test moves time and calls `router.deliver_outbox()`. The assignment deadline
is shortened (`router.deliverer.assignment_deadline`) so that "slower than the deadline" costs a
fraction of a second instead of Twilio's 5.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from app import create_app
from callcenter.routing import accounts, workspaces
from callcenter.routing.models import OutboxMessage
from callcenter.routing.outbox import MAX_ATTEMPTS

ACCEPT = '{"instruction": "accept"}'


class CallbackServer:
    """A local webhook receiver. `script[path]` lists replies, one per request; `default` after that.

    A reply is `(status, body)`, `("slow", seconds, body)` (answers after the delay), `("redirect", url)`
    (a 302 to `url`) or `"stall"` (answers nothing until `release()`). `start()` on a port nobody
    listens on yet: until then the port refuses connections.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.script: dict[str, list] = {}
        self.default: object = (200, "")
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stalled = threading.Event()  # a request is being held right now
        self.released = threading.Event()
        self.finished: list[str] = []  # paths of the requests answered, in order
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CallbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                params = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
                owner.requests.append((self.path, params))
                queue = owner.script.get(self.path) or []
                reply = queue.pop(0) if queue else owner.default
                if reply == "stall":
                    owner.stalled.set()
                    owner.released.wait(60)
                    reply = (200, "")
                elif reply[0] == "slow":
                    owner.released.wait(reply[1])
                    reply = (200, reply[2])
                elif reply[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", reply[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    owner.finished.append(self.path)
                    return
                try:
                    self.send_response(reply[0])
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(reply[1].encode())
                except OSError:
                    pass  # the caller gave up waiting and closed the connection
                owner.finished.append(self.path)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture
def server():
    server = CallbackServer()
    yield server
    server.stop()


def staffed(center, *names, **workflow_options):
    center.workflow(default=center.queue(), task_reservation_timeout=120, **workflow_options)
    return [center.worker(name) for name in names]


def messages(center, kind="assignment") -> list[OutboxMessage]:
    with center.router.read() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.workspace_sid == center.ws,
                                                                OutboxMessage.kind == kind)
                                    .order_by(OutboxMessage.id)))


def retry_delay(center, message_id: int) -> float:
    with center.router.read() as session:
        message = session.get(OutboxMessage, message_id)
        return (message.next_attempt_at - center.clock.now()).total_seconds()


def test_refused_connection_is_retried_with_growing_backoff_until_the_server_comes_up(center, server):
    staffed(center, "alice", assignment_callback_url=f"{server.base}/assign")
    task = center.task()
    (message,) = messages(center)

    # Nobody listens on the port yet: each attempt is refused and the next waits longer.
    for attempt, ceiling in enumerate((1.0, 2.0, 4.0)[:MAX_ATTEMPTS["assignment"] - 1], start=1):
        assert center.router.deliver_outbox() == 1
        (message,) = messages(center)
        assert (message.attempts, message.status) == (attempt, "pending")
        assert "refused" in message.last_error.lower()
        delay = retry_delay(center, message.id)
        assert 0.5 <= delay <= ceiling
        center.clock.advance(delay / 2)
        assert center.router.deliver_outbox() == 0  # not before its backoff is over
        center.clock.advance(delay / 2 + 0.001)

    # The server comes up on that port, answers, and its reply is carried out.
    server.default = (200, ACCEPT)
    server.start()
    assert center.router.deliver_outbox() == 1
    assert server.paths() == ["/assign"]
    assert server.requests[0][1]["TaskSid"] == task
    assert center.get_task(task).assignment_status == "assigned"
    assert messages(center) == []


def test_retries_of_messages_that_failed_together_are_spread_by_jitter(center, server):
    center.workflow(default=center.queue())
    workspaces.update_workspace(center.router, center.ws, event_callback_url=f"{server.base}/events",
                                events_filter="task.created")
    for _ in range(8):
        center.task()
    assert center.router.deliver_outbox() == 8
    delays = [retry_delay(center, message.id) for message in messages(center, "event") if message.attempts == 1]
    assert len(delays) == 8
    assert all(0.5 <= delay <= 1.0 for delay in delays)
    assert len({round(delay, 6) for delay in delays}) > 1, "every retry was scheduled at the same moment"


def test_answer_500_goes_to_the_fallback_url(center, server):
    server.script["/primary"] = [(500, "oops")]
    server.script["/fallback"] = [(200, ACCEPT)]
    server.start()
    staffed(center, "alice", assignment_callback_url=f"{server.base}/primary",
            fallback_assignment_callback_url=f"{server.base}/fallback")
    task = center.task()
    assert center.router.deliver_outbox() == 1
    assert server.paths() == ["/primary", "/fallback"]
    assert center.get_task(task).assignment_status == "assigned"


def test_an_answer_later_than_the_deadline_is_not_carried_out_and_the_callback_is_retried(center, server):
    server.script["/assign"] = [("slow", 3, ACCEPT)]  # would accept, but too late
    server.default = (200, "")  # the retry gets an answer in time, without an instruction
    server.start()
    staffed(center, "alice", assignment_callback_url=f"{server.base}/assign")
    task = center.task()

    assert center.router.deliver_outbox() == 1
    (message,) = messages(center)
    assert message.attempts == 1 and "timed out" in message.last_error.lower()
    reservation = center.pending_reservation(task)  # the late "accept" changed nothing

    center.clock.advance(retry_delay(center, message.id))
    assert center.router.deliver_outbox() == 1
    assert server.paths() == ["/assign", "/assign"]
    assert messages(center) == []
    assert center.pending_reservation(task).sid == reservation.sid  # answered: the worker accepts by REST


def test_a_server_that_never_answers_gets_bounded_attempts_then_the_reservation_timeout_decides(center, server):
    server.default = "stall"
    server.start()
    alice, bob = staffed(center, "alice", "bob", assignment_callback_url=f"{server.base}/primary",
                         fallback_assignment_callback_url=f"{server.base}/fallback")
    task = center.task()
    first = center.pending_reservation(task)

    for _ in range(MAX_ATTEMPTS["assignment"]):
        assert center.router.deliver_outbox() == 1
        (message,) = [m for m in messages(center) if m.reservation_sid == first.sid]
        center.clock.advance(max(0.0, retry_delay(center, message.id)) + 0.001)
    (message,) = [m for m in messages(center) if m.reservation_sid == first.sid]
    assert (message.status, message.attempts) == ("dead", MAX_ATTEMPTS["assignment"])
    assert server.paths() == ["/primary", "/fallback"] * MAX_ATTEMPTS["assignment"]
    center.clock.advance(100)  # much later, still inside the reservation's 120 s: nothing is attempted again
    assert center.router.deliver_outbox() == 0
    assert len(server.requests) == 2 * MAX_ATTEMPTS["assignment"]

    # The reservation timeout is the final guard: the task goes to the next worker.
    center.clock.advance(120)
    center.router.run_due_timers()
    with center.router.read() as session:
        from callcenter.routing.models import Reservation

        assert session.get(Reservation, first.sid).reservation_status == "timeout"
    assert center.activity_name(first.worker_sid) == "Offline"
    second = center.pending_reservation(task)
    assert second.worker_sid == ({alice, bob} - {first.worker_sid}).pop()


def test_a_retry_due_after_the_reservation_ended_is_dropped_without_a_request(center, server):
    staffed(center, "alice", assignment_callback_url=f"{server.base}/assign")  # refused: nobody listens
    task = center.task()
    assert center.router.deliver_outbox() == 1
    center.accept(center.pending_reservation(task).sid)  # the worker answered through REST meanwhile
    server.start()
    center.clock.advance(timedelta(minutes=5).total_seconds())
    assert center.router.deliver_outbox() == 1
    assert server.requests == []
    assert messages(center) == []


def test_no_request_thread_waits_for_a_stalled_callback(database_url, server):
    server.default = "stall"
    server.start()
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "AUTO_MIGRATE": False,
                      "RUN_SWEEPER": True, "SWEEP_INTERVAL": 0.05})
    router = app.extensions["router"]
    router.deliverer.assignment_deadline = 60  # the callback would hold its thread for a minute
    try:
        credentials = accounts.create_account(router, "Stall test")
        ws = workspaces.create_workspace(router, account_sid=credentials.sid, friendly_name="Stalled").sid
        client = app.test_client()
        auth = (credentials.sid, credentials.secret)
        queue = client.post(f"/v1/Workspaces/{ws}/TaskQueues", auth=auth,
                            data={"FriendlyName": "All", "TargetWorkers": "1==1"}).get_json()["sid"]
        workflow = client.post(f"/v1/Workspaces/{ws}/Workflows", auth=auth, data={
            "FriendlyName": "Inbound", "AssignmentCallbackUrl": f"{server.base}/assign",
            "Configuration": json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queue}}}),
        }).get_json()["sid"]
        activities = client.get(f"/v1/Workspaces/{ws}/Activities", auth=auth).get_json()["activities"]
        available = next(a["sid"] for a in activities if a["friendly_name"] == "Available")
        for name in ("alice", "bob"):
            response = client.post(f"/v1/Workspaces/{ws}/Workers", auth=auth,
                                   data={"FriendlyName": name, "ActivitySid": available})
            assert response.status_code == 201

        first = client.post(f"/v1/Workspaces/{ws}/Tasks", auth=auth, data={"WorkflowSid": workflow})
        assert first.status_code == 201
        assert server.stalled.wait(30), "the sweeper never delivered the assignment callback"

        # The callback server holds that request open. The API still answers, and routes.
        second = client.post(f"/v1/Workspaces/{ws}/Tasks", auth=auth, data={"WorkflowSid": workflow})
        assert second.status_code == 201
        assert second.get_json()["assignment_status"] == "reserved"
        reservations = client.get(f"/v1/Workspaces/{ws}/Tasks/{first.get_json()['sid']}/Reservations",
                                  auth=auth).get_json()["reservations"]
        (reservation,) = reservations
        accepted = client.post(f"/v1/Workspaces/{ws}/Tasks/{first.get_json()['sid']}/Reservations/"
                               f"{reservation['sid']}", auth=auth, data={"ReservationStatus": "accepted"})
        assert accepted.status_code == 200
        assert accepted.get_json()["reservation_status"] == "accepted"
        assert not server.released.is_set() and "/assign" not in server.finished  # still stalled meanwhile
    finally:
        server.release()
        app.extensions["sweeper"].stop()
        router.dispose()
