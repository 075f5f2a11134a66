"""Live updates: the engine's committed events, as small notices, to every open page of every process.

A notice names what changed (event types and sids), never state: a page that hears one re-fetches
its JSON snapshot. Where the notices come from depends on the database:

- SQLite (one process): `router.listeners` hands each committed transaction's events to the hub.
- PostgreSQL (any number of processes): every process publishes its committed events with
  `pg_notify`, and one thread per process LISTENs and feeds its hub, so a change made by any
  process (or the sweeper of another) reaches the pages served by all of them.

Each open stream holds a server thread, so a user has at most LIVE_STREAMS_PER_USER of them per
process (more get 429 with Retry-After), and a stream ends after LIVE_STREAM_SECONDS (the browser
reconnects by itself), when its session ends, or when the client is gone (noticed at the next
write, a keep-alive at the latest).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from callcenter.database import get_router

from . import bp, error_body
from .auth import login_required

log = logging.getLogger("callcenter.web")

CHANNEL = "callcenter_events"
# NOTIFY payloads must stay under 8,000 bytes; a transaction rarely writes more than a dozen events.
MAX_EVENTS_PER_NOTICE = 40
SUBSCRIBER_BACKLOG = 100


def notice_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The small form of one transaction's events: `{"ws": WS..., "events": [[type, task, worker, res, queue]]}`."""
    rows = [[event.get("event_type"), event.get("task_sid"), event.get("worker_sid"), event.get("reservation_sid"),
             event.get("task_queue_sid")] for event in events[:MAX_EVENTS_PER_NOTICE]]
    notice: dict[str, Any] = {"ws": events[0].get("workspace_sid") if events else None, "events": rows}
    if len(events) > MAX_EVENTS_PER_NOTICE:
        notice["more"] = True  # a page re-fetches everything anyway; the list is only a hint
    return notice


class TooManyStreams(Exception):
    """The user already has as many open streams in this process as they may."""


class Subscription:
    """One open event stream: notices wait here until the stream's response sends them."""

    def __init__(self, hub: Hub, user_id: int | None = None, session_id: int | None = None) -> None:
        self.hub = hub
        self.user_id, self.session_id = user_id, session_id
        self.notices: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self.ended = False

    def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.notices.get(timeout=timeout)
        except queue.Empty:
            return None

    def end(self) -> None:
        """Its session ended: the stream stops at once instead of at its next notice or keep-alive."""
        self.ended = True
        try:
            self.notices.put_nowait({"ws": None, "events": [], "ended": True})  # wakes the waiting stream
        except queue.Full:
            pass  # it has notices to read: it finds `ended` after the next one

    def close(self) -> None:
        """Release its place (idempotent: the end of the body and the response's close both call it)."""
        self.hub.unsubscribe(self)


class Hub:
    """The open event streams of this process, and the source that feeds them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._listener: PostgresListener | None = None
        router = get_router(app)
        self.postgres = router.writer.dialect.name == "postgresql"
        if self.postgres:
            router.listeners.append(self._publish_to_postgres)
        else:
            router.listeners.append(self._publish_here)

    # -- the streams -----------------------------------------------------------------------------
    def subscribe(self, user_id: int | None = None, session_id: int | None = None, *,
                  limit: int | None = None) -> Subscription:
        """A new subscription; TooManyStreams if `user_id` already holds `limit` of them."""
        if self.postgres:
            self._start_listener()
        with self._lock:
            if limit is not None and sum(1 for s in self._subscriptions if s.user_id == user_id) >= limit:
                raise TooManyStreams(user_id)
            subscription = Subscription(self, user_id, session_id)
            self._subscriptions.add(subscription)
        return subscription

    def streams_of(self, user_id: int | None) -> int:
        with self._lock:
            return sum(1 for s in self._subscriptions if s.user_id == user_id)

    def end_sessions(self, session_ids: list[int]) -> None:
        """Signed out: the streams of these sessions stop now."""
        ended = set(session_ids)
        with self._lock:
            subscriptions = [s for s in self._subscriptions if s.session_id in ended]
        for subscription in subscriptions:
            subscription.end()

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def deliver(self, notice: dict[str, Any]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.notices.put_nowait(notice)
            except queue.Full:
                # A stalled page: it re-fetches everything on the next notice it reads, so a dropped one is harmless.
                pass

    # -- the sources -----------------------------------------------------------------------------
    def _publish_here(self, events: list[dict[str, Any]]) -> None:
        self.deliver(notice_of(events))

    def _publish_to_postgres(self, events: list[dict[str, Any]]) -> None:
        # After commit, on a pooled connection: one round trip per transaction that wrote events.
        payload = json.dumps(notice_of(events), separators=(",", ":"))
        with get_router(self.app).writer.connect() as connection:
            connection.execute(select(func.pg_notify(CHANNEL, payload)))
            connection.commit()

    def publish_call_change(self, workspace_sid: str, call_sid: str) -> None:
        """A call's row changed without an engine event (sent to voicemail, a voicemail or transcription
        arrived): supervisors' dashboards re-fetch, in every process."""
        events = [{"event_type": "call.updated", "workspace_sid": workspace_sid, "task_sid": None,
                   "worker_sid": None, "reservation_sid": None, "task_queue_sid": None}]
        try:
            (self._publish_to_postgres if self.postgres else self._publish_here)(events)
        except Exception:  # a live update must never break the call flow
            log.exception("live updates: could not publish a change of call %s", call_sid)

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = PostgresListener(get_router(self.app).database_url, self.deliver)
                self._listener.start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


PROBE_QUIET_SECONDS = 30


class PostgresListener:
    """A thread holding one connection that LISTENs on the events channel; reconnects after a failure."""

    def __init__(self, database_url: str, deliver, *, poll_seconds: float = 1.0) -> None:
        self.database_url = database_url
        self.deliver = deliver
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callcenter-live-listener", daemon=True)

    def start(self) -> PostgresListener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        self._backoff = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                self._backoff = 0.5
            except Exception as err:  # the database went away: pages keep their last state and we retry
                self.listening.clear()
                log.warning("live updates: lost the LISTEN connection (%s); retrying in %.1f s", err, self._backoff)
                self._stop.wait(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)

    def _listen(self) -> None:
        engine = create_engine(self.database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                raw = connection.connection.driver_connection  # psycopg 3: notifies() lives there
                raw.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                self._backoff = 0.5  # connected again: the next outage starts over with a short wait
                # Pages missed whatever happened while we were not listening: tell them to re-fetch.
                self.deliver({"ws": None, "events": [], "reconnected": True})
                quiet_since = time.monotonic()
                while not self._stop.is_set():
                    for notify in raw.notifies(timeout=self.poll_seconds, stop_after=50):
                        quiet_since = time.monotonic()
                        try:
                            self.deliver(json.loads(notify.payload))
                        except ValueError:
                            log.warning("live updates: a notice that is not JSON: %.80s", notify.payload)
                    if time.monotonic() - quiet_since > PROBE_QUIET_SECONDS:
                        # A half-open connection (a failover without a reset) never errors by itself: ask.
                        raw.execute("SELECT 1")
                        quiet_since = time.monotonic()
        finally:
            engine.dispose()


def hub_of(app: Flask) -> Hub:
    return app.extensions["live_updates"]


def init_app(app: Flask) -> None:
    app.extensions["live_updates"] = hub = Hub(app)
    app.extensions.setdefault("session_end_listeners", []).append(hub.end_sessions)


# -- the stream ---------------------------------------------------------------------------------------

def _concerns(notice: dict[str, Any], workspace_sid: str, worker_sid: str | None) -> bool:
    """Supervisors hear about their workspace; an agent only about their own worker."""
    if notice.get("reconnected"):
        return True
    if notice.get("ws") not in (None, workspace_sid):
        return False
    return worker_sid is None or any(event[2] == worker_sid for event in notice.get("events", []))


def _about_queues(notice: dict[str, Any], workspace_sid: str, queue_sids: set[str]) -> bool:
    """A task entered or left one of these queues (an agent's "callers waiting in your queues")."""
    return notice.get("ws") == workspace_sid and any(
        event[4] in queue_sids and event[0].startswith(("task-queue.", "task.")) for event in notice.get("events", []))


def _changes_membership(notice: dict[str, Any], workspace_sid: str, worker_sid: str) -> bool:
    """The worker's queues may have changed: their attributes, a queue's TargetWorkers, a queue made or deleted."""
    return notice.get("ws") == workspace_sid and any(
        (event[0] == "worker.attributes.update" and event[2] == worker_sid) or event[0] in _QUEUE_CHANGES
        for event in notice.get("events", []))


_QUEUE_CHANGES = ("task-queue.expression.updated", "task-queue.created", "task-queue.deleted")


def _member_queues(worker_sid: str) -> set[str]:
    from callcenter.routing.models import TaskQueueMember

    with get_router(current_app).read() as session:
        return set(session.scalars(select(TaskQueueMember.task_queue_sid)
                                   .where(TaskQueueMember.worker_sid == worker_sid)))


@bp.get("/live")
@login_required()
def stream():
    """Server-Sent Events: `event: change` with the notice as data; a comment every few seconds keeps it open."""
    from callcenter.contact_center import current

    workspace_sid = current(current_app).workspace_sid
    worker_sid = None if g.user.is_supervisor else g.user.worker_sid
    heartbeat = float(current_app.config.get("LIVE_HEARTBEAT_SECONDS", 15))
    # A stream ends after a while and the browser reconnects (and re-fetches): no server worker is held forever.
    lifetime = timedelta(seconds=float(current_app.config.get("LIVE_STREAM_SECONDS", 300)))
    limit = int(current_app.config.get("LIVE_STREAMS_PER_USER", 4))
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    hub = hub_of(current_app)
    retry = max(1, round(heartbeat))
    if request.method == "HEAD":
        # No body: nothing to hold. A page whose stream was refused asks this way why, without taking a place.
        if hub.streams_of(g.user.id) >= limit:
            return Response(status=429, headers={**headers, "Retry-After": str(retry),
                                                 "X-Live-Streams-Limit": str(limit)})
        return Response(mimetype="text/event-stream", headers=headers)
    try:
        subscription = hub.subscribe(g.user.id, g.web_session_id, limit=limit)
    except TooManyStreams:
        # A page that was closed without a goodbye keeps its place until its next keep-alive finds it gone.
        refused = jsonify(error_body(429, f"Too many live pages open: {limit} per user. Close one, or try again "
                                          f"in {retry} s.", 20429))
        refused.status_code = 429
        refused.headers["Retry-After"] = str(retry)
        return refused
    clock = get_router(current_app).clock
    ends = clock.now() + lifetime
    # An agent's page counts the callers waiting in their queues: it hears of those queues' tasks too, at most
    # once per this many seconds (a busy center would otherwise make every console re-fetch on every call).
    queue_interval = float(current_app.config.get("LIVE_QUEUE_NOTICE_SECONDS", 5))
    queues = _member_queues(worker_sid) if worker_sid is not None else set()
    app = current_app._get_current_object()

    def change(notice: dict[str, Any]) -> str:
        if worker_sid is not None:  # event types only: no other agent's sids reach an agent's page
            notice = {**notice, "events": [e[:1] for e in notice.get("events", [])]}
        return f"event: change\ndata: {json.dumps(notice, separators=(',', ':'))}\n\n"

    def events():
        nonlocal queues
        held: dict[str, Any] | None = None  # a queue notice waiting for its interval to pass
        next_queue_notice = 0.0  # time.monotonic()
        try:
            yield "retry: 2000\n: connected\n\n"
            while not subscription.ended:
                remaining = (ends - clock.now()).total_seconds()
                if remaining <= 0:
                    break
                wait = min(heartbeat, remaining)
                if held is not None:
                    wait = max(0.0, min(wait, next_queue_notice - time.monotonic()))
                notice = subscription.get(timeout=wait)
                if subscription.ended or clock.now() >= ends:
                    break
                if notice is None:
                    if held is not None and time.monotonic() >= next_queue_notice:
                        yield change(held)
                        held, next_queue_notice = None, time.monotonic() + queue_interval
                    else:
                        yield ": keep-alive\n\n"
                    continue
                if worker_sid is not None and _changes_membership(notice, workspace_sid, worker_sid):
                    with app.app_context():
                        queues = _member_queues(worker_sid)
                if _concerns(notice, workspace_sid, worker_sid):
                    if worker_sid is not None and not notice.get("reconnected"):
                        held, next_queue_notice = None, time.monotonic() + queue_interval  # the page re-fetches all
                    yield change(notice)
                elif worker_sid is not None and _about_queues(notice, workspace_sid, queues):
                    if held is None and time.monotonic() >= next_queue_notice:
                        yield change(notice)
                        next_queue_notice = time.monotonic() + queue_interval
                    else:
                        held = notice
        finally:
            subscription.close()

    response = Response(events(), mimetype="text/event-stream", headers=headers)
    # The place is taken now: released when the body ends, or when the server closes a response whose body
    # never started (the client went away first).
    response.call_on_close(subscription.close)
    return response
