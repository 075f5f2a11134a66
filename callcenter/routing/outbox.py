"""The outbox: assignment and event callbacks, delivered after the transaction that wrote them.

Rows are claimed with a lease (and `FOR UPDATE SKIP LOCKED` on PostgreSQL) so that several
processes share the work and a process that dies mid-delivery only delays a message until its
lease runs out. Each claim raises the row's `attempts`, which fences it: a claim whose lease ran out
can no longer post, retry or end the message, so no stale copy goes out after a newer one. A process
claims only what its threads can post at once, assignment callbacks on threads of their own, and an
assignment reply is carried out in the transaction that ends its message. Requests are signed with
`X-Twilio-Signature` as Twilio signs webhooks. An assignment callback has 5 seconds, then its fallback
URL is tried; failures are retried with exponential backoff and jitter while the reservation is still
pending (its timeout is the final guard). Event callbacks of one task go out in the order they were
written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import aliased

from callcenter.logs import log_context

from . import callback_network
from .callback_network import CallbackPolicy
from .errors import RoutingError
from .models import OutboxMessage, Reservation, Workspace

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger("callcenter.routing.outbox")

ASSIGNMENT_DEADLINE = 5.0
EVENT_DEADLINE = 15.0
LEASE_SECONDS = 60
MAX_ATTEMPTS = {"assignment": 4, "event": 8}
# Told of every POST and of every message given up: fn(outcome, kind, seconds), outcome "delivered",
# "failed" or "abandoned" (seconds None). callcenter/metrics.py turns these into Prometheus metrics.
DELIVERY_OBSERVERS: list[Callable[[str, str, float | None], None]] = []


def _observe(outcome: str, kind: str, seconds: float | None) -> None:
    for observer in DELIVERY_OBSERVERS:
        try:
            observer(outcome, kind, seconds)
        except Exception:  # metrics must never break delivery
            log.exception("delivery observer failed")


@dataclass(frozen=True)
class Response:
    status: int
    body: str


Transport = Callable[[str, dict[str, str], dict[str, str], float], Response]


def urllib_transport(url: str, params: dict[str, str], headers: dict[str, str], timeout: float, *,
                     opener: urllib.request.OpenerDirector) -> Response:
    """POST a form with the standard library, through `opener`; connection errors raise OSError."""
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "callcenter-taskrouter/1", **headers,
    })
    try:
        with opener.open(request, timeout=timeout) as reply:
            return Response(reply.status, reply.read(65536).decode("utf-8", "replace"))
    except urllib.error.HTTPError as err:
        return Response(err.code, err.read(65536).decode("utf-8", "replace"))


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's webhook signature: HMAC-SHA1 over the URL and the sorted POST parameters, base64."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2**(attempt-1), capped."""
    return random.uniform(base / 2, min(cap, base * 2 ** max(0, attempt - 1)))


class Deliverer:
    def __init__(self, router: Router, transport: Transport | None = None, *,
                 assignment_deadline: float = ASSIGNMENT_DEADLINE, event_deadline: float = EVENT_DEADLINE) -> None:
        self.router = router
        # The default sends through an opener that keeps callbacks out of the blocked networks of
        # router.callback_policy (callback_network.py); a transport given here is used as it is.
        self.transport = transport or self._guarded_transport
        self._opener: tuple[CallbackPolicy, urllib.request.OpenerDirector] | None = None
        # Seconds one POST may take, per URL (tests shorten them; Twilio gives an assignment callback 5 s).
        self.assignment_deadline = assignment_deadline
        self.event_deadline = event_deadline

    def _guarded_transport(self, url: str, params: dict[str, str], headers: dict[str, str],
                           timeout: float) -> Response:
        policy, current = self.router.callback_policy, self._opener
        if current is None or current[0] is not policy:  # built once per policy
            current = self._opener = (policy, callback_network.opener(policy))
        return urllib_transport(url, params, headers, timeout, opener=current[1])

    # -- claiming ---------------------------------------------------------------------------------
    def claim_due(self, limit: int, kind: str | None = None) -> list[OutboxMessage]:
        """Lease up to `limit` due messages (of one `kind`, when given) for LEASE_SECONDS. The lease is the
        message's `attempts`, raised by each claim: only the holder of the latest may post, retry or finish it."""
        now = self.router.clock.now()
        older = aliased(OutboxMessage)
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                # Per-task order: wait while an older message of the same task is undelivered.
                ~exists().where(and_(older.ordering_key == OutboxMessage.ordering_key,
                                     older.status == "pending", older.id < OutboxMessage.id)),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        session = self.router._write_sessions()
        try:
            with session.begin():
                if session.bind.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True, of=OutboxMessage)
                messages = list(session.scalars(query))
                if messages:
                    lease_until = now + timedelta(seconds=LEASE_SECONDS)
                    for message in messages:
                        # Counted once, by the flush at commit (a bulk UPDATE as well would count twice).
                        message.attempts += 1
                        message.next_attempt_at = lease_until
        finally:
            session.close()
        return messages

    def deliver_due(self, limit: int = 100) -> int:
        """Deliver what is due, in this thread, assignment callbacks first; returns the number attempted."""
        messages = self.claim_due(limit, "assignment")
        messages += self.claim_due(limit - len(messages), "event") if len(messages) < limit else []
        for message in messages:
            self.deliver(message)
        return len(messages)

    # -- one message ------------------------------------------------------------------------------
    def deliver(self, message: OutboxMessage) -> None:
        params = json.loads(message.payload)
        with log_context(**_sids_of(message, params)):
            self._deliver(message, params)

    def _deliver(self, message: OutboxMessage, params: dict[str, str]) -> None:
        if not self._still_ours(message):
            # Delivered, or claimed again, by another sweep since this one claimed it (its lease ran out while
            # it waited): posting now would send it twice, and after the task's later events.
            log.info("%s callback %s is no longer ours to send", message.kind, message.id)
            return
        if message.kind == "assignment" and not self._reservation_pending(message.reservation_sid):
            self._finish(message)  # answered or ended meanwhile: nothing left to ask
            return
        deadline = self.assignment_deadline if message.kind == "assignment" else self.event_deadline
        response, error, blocked = self._post(message, message.url, params, deadline)
        if response is None and message.fallback_url:
            response, error, fallback_blocked = self._post(message, message.fallback_url, params, deadline)
            blocked = blocked and fallback_blocked
        if response is None:
            self._retry_later(message, error, give_up=blocked)
            return
        if message.kind == "assignment":
            self._carry_out_reply(message, response.body)
        else:
            self._finish(message)

    def _post(self, message: OutboxMessage, url: str, params: dict[str, str],
              deadline: float) -> tuple[Response | None, str, bool]:
        """The response if it was a 2xx; else the error, and whether the URL is in a blocked network."""
        headers = {}
        token = self.router.auth_token_for(self._account_sid(message))
        if token:
            headers["X-Twilio-Signature"] = twilio_signature(token, url, params)
        started = time.perf_counter()
        try:
            response = self.transport(url, params, headers, deadline)
        except Exception as err:  # refused, reset, timed out: all mean "try again later"
            _observe("failed", message.kind, time.perf_counter() - started)
            blocked = callback_network.blocked_reason(err)
            if blocked is not None:
                return None, f"blocked: {blocked}", True
            return None, f"{type(err).__name__}: {err}", False
        delivered = 200 <= response.status < 300
        _observe("delivered" if delivered else "failed", message.kind, time.perf_counter() - started)
        if delivered:
            return response, "", False
        if 300 <= response.status < 400:  # urllib would follow a 302 as a GET, without the callback's parameters
            return None, f"HTTP {response.status} (callbacks do not follow redirects)", False
        return None, f"HTTP {response.status}", False

    def _carry_out_reply(self, message: OutboxMessage, body: str) -> None:
        """Carry out the reply, and end the message in the same transaction: a process that dies between the
        two would otherwise lose an `accept` (the message gone, the reply never applied). Dying before that
        transaction leaves the message to be sent again when its lease runs out."""
        from .reservations import apply_callback_reply

        finished = []
        try:
            outcome = apply_callback_reply(self.router, message.workspace_sid, message.reservation_sid, body,
                                           finish=lambda tx: finished.append(tx.session.execute(self._end(message))))
            # An unusable reply (Twilio's warnings 40001/40005) leaves the reservation pending: say so loudly.
            level = logging.WARNING if outcome.startswith("warning") else logging.INFO
            log.log(level, "assignment callback for %s: %s", message.reservation_sid, outcome)
        except RoutingError as err:
            finished.clear()  # rolled back with the reply
            log.warning("assignment callback reply for %s not carried out: %s (%s)",
                        message.reservation_sid, err.message, err.code)
        if not finished:  # no reply to carry out (manual), or one that could not be: end the message alone
            self._finish(message)

    def _retry_later(self, message: OutboxMessage, error: str, *, give_up: bool = False) -> None:
        now = self.router.clock.now()
        give_up = give_up or message.attempts >= MAX_ATTEMPTS[message.kind]
        values: dict = {"last_error": error[:500]}
        if give_up:
            values["status"] = "dead"
            _observe("abandoned", message.kind, None)
            log.error("%s callback to %s abandoned after %d attempts: %s", message.kind, message.url,
                      message.attempts, error)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=backoff_seconds(message.attempts))
            log.warning("%s callback to %s failed (attempt %d): %s", message.kind, message.url,
                        message.attempts, error)
        self._write(update(OutboxMessage).where(*self._lease(message)).values(**values))

    def _finish(self, message: OutboxMessage) -> None:
        self._write(self._end(message))

    def _end(self, message: OutboxMessage):
        return delete(OutboxMessage).where(*self._lease(message))

    @staticmethod
    def _lease(message: OutboxMessage) -> tuple:
        """This message as this claim holds it: a later claim (its lease ran out) has raised `attempts`."""
        return OutboxMessage.id == message.id, OutboxMessage.attempts == message.attempts

    def _still_ours(self, message: OutboxMessage) -> bool:
        with self.router.read() as session:
            return session.scalar(select(OutboxMessage.id).where(*self._lease(message))) is not None

    def _write(self, statement) -> None:
        session = self.router._write_sessions()
        try:
            with session.begin():
                session.execute(statement)
        finally:
            session.close()

    def _reservation_pending(self, reservation_sid: str | None) -> bool:
        with self.router.read() as session:
            status = session.scalar(select(Reservation.reservation_status).where(Reservation.sid == reservation_sid))
        return status == "pending"

    def _account_sid(self, message: OutboxMessage) -> str:
        with self.router.read() as session:
            return session.scalar(select(Workspace.account_sid).where(Workspace.sid == message.workspace_sid)) or ""


def _sids_of(message: OutboxMessage, params: dict[str, str]) -> dict[str, str | None]:
    """The sids a callback is about, for its log lines (the call's sid is in the task's attributes)."""
    call_sid = None
    try:
        attributes = json.loads(params.get("TaskAttributes") or "{}")
        call_sid = attributes.get("call_sid") if isinstance(attributes, dict) else None
    except (ValueError, RecursionError):
        pass
    return {"workspace_sid": message.workspace_sid, "task_sid": params.get("TaskSid"),
            "reservation_sid": message.reservation_sid or params.get("ReservationSid"),
            "worker_sid": params.get("WorkerSid"), "call_sid": call_sid if isinstance(call_sid, str) else None}


class Sweeper:
    """The background thread of a process: fires due timers, delivers the outbox, and every
    `purge_every` seconds runs the Router's purgers: events and dead callbacks past their retention
    (retention.py), then what the apps registered (`Router.purgers`)."""

    def __init__(self, router: Router, *, interval: float = 0.5, workers: int = 8, assignment_workers: int = 8,
                 purge_every: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.router = router
        self.interval = interval
        self.purge_every = purge_every
        self._monotonic = monotonic
        self._next_purge = monotonic()  # the first sweep purges
        self._stop = threading.Event()
        # Assignment callbacks have threads of their own: a slow event endpoint (any workspace's) never holds
        # up a reservation's callback. A message is claimed only when a thread is free to post it at once, so
        # its lease never runs out while it waits in a queue (another sweep would claim and send it again).
        self._pools = {"assignment": ThreadPoolExecutor(max_workers=assignment_workers, thread_name_prefix="assign"),
                       "event": ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callback")}
        self._capacity = {"assignment": assignment_workers, "event": workers}
        self._busy = {"assignment": 0, "event": 0}
        self._busy_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="callcenter-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.router._outbox_ready.set()
        if self._thread.is_alive():  # a sweeper driven by sweep() alone was never started
            self._thread.join(timeout)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sweep()
            self.router.wait_for_outbox(self.interval)

    def sweep(self) -> None:
        """One pass: due timers, then the outbox; what is past its retention when `purge_every` has gone by."""
        try:
            self.router.run_due_timers()
            # Slow callback servers never hold up timers: deliveries run on the pools.
            for kind in ("assignment", "event"):
                with self._busy_lock:
                    free = self._capacity[kind] - self._busy[kind]
                if free <= 0 or self._stop.is_set():
                    continue
                for message in self.router.deliverer.claim_due(min(free, 50), kind):
                    with self._busy_lock:
                        self._busy[kind] += 1
                    try:
                        self._pools[kind].submit(self._deliver, message)
                    except RuntimeError:  # stopping: the pool is shut; the lease hands the message on
                        with self._busy_lock:
                            self._busy[kind] -= 1
        except Exception:
            log.exception("sweep failed")
        now = self._monotonic()
        if now >= self._next_purge:
            self._next_purge = now + self.purge_every
            for what, purge in list(self.router.purgers):  # one that fails holds back none of the others
                try:
                    purged = purge(self.router)
                    if purged:
                        log.info("deleted %d %s past their retention", purged, what)
                except Exception:
                    log.exception("purging %s past their retention failed", what)

    def _deliver(self, message: OutboxMessage) -> None:
        try:
            self.router.deliverer.deliver(message)
        except Exception:
            log.exception("delivery of outbox message %s failed", message.id)
        finally:
            with self._busy_lock:
                self._busy[message.kind] -= 1
            self.router._outbox_ready.set()  # a thread is free: the sweeper claims the next message now
