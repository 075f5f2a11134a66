"""The real app, its routing engine and the simulator on one clock.

`wire_in_process(app)` connects an app to a new simulator with no sockets: the simulator's webhooks
go into the app's WSGI callable, the app's Twilio REST calls (its `Telephony`) go into the
simulator's WSGI app through the SDK (`WsgiHttpClient`), the engine's callbacks go into the app,
and the engine's clock is the simulator's `VirtualClock`.

`Harness(router, sim)` moves that virtual time: `run_until(moment)` runs, in time order, the
simulator's events (calls ringing, prompts, patience running out), the engine's due timers
(reservation and workflow timeouts, task TTLs, wrap-up) and its outbox (assignment and event
callbacks), jumping from one due moment to the next. It works as well over HTTP (the app and the
simulator each on a port, `HttpTransport`), as long as every clock involved is the same virtual one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import func, select
from twilio.rest import Client
from werkzeug.test import Client as WsgiClient

from callcenter.database import get_router
from callcenter.routing.models import OutboxMessage, Timer
from callcenter.routing.outbox import Response
from callcenter.simulator.carrier import Simulator
from callcenter.simulator.clock import VirtualClock
from callcenter.simulator.sdk import WsgiHttpClient
from callcenter.simulator.server import create_simulator, simulator_of
from callcenter.simulator.transport import WsgiTransport
from callcenter.telephony import get_telephony


class WsgiCallbacks:
    """The engine's outbox transport, posting assignment and event callbacks into a WSGI app."""

    def __init__(self, app) -> None:
        self.client = WsgiClient(app)

    def __call__(self, url: str, params: dict[str, str], headers: dict[str, str], timeout: float) -> Response:
        parts = urlsplit(url)
        reply = self.client.post(parts.path or "/", query_string=parts.query or None, data=params, headers=headers,
                                 base_url=f"{parts.scheme}://{parts.netloc}")
        return Response(reply.status_code, reply.get_data(as_text=True))


def wire_in_process(app: Flask, clock: VirtualClock | None = None, **settings) -> Flask:
    """A simulator for `app`, everything in this process on `clock`; returns the simulator's REST app.

    The app must have TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (the simulator uses the same) and a
    PUBLIC_BASE_URL (the address the simulator's webhooks and the engine's callbacks are signed for).
    """
    account_sid, auth_token = app.config["TWILIO_ACCOUNT_SID"], app.config["TWILIO_AUTH_TOKEN"]
    base_url = app.config["PUBLIC_BASE_URL"]
    clock = clock or VirtualClock()
    router = get_router(app)
    router.clock = clock
    router.deliverer.transport = WsgiCallbacks(app)
    if app.config.get("TWILIO_PHONE_NUMBER"):
        settings.setdefault("number", app.config["TWILIO_PHONE_NUMBER"])
    twilio = create_simulator(base_url, account_sid, auth_token, clock=clock, transport=WsgiTransport(app),
                              voice_path="/voice/incoming", **settings)
    telephony = get_telephony(app)
    telephony.client = Client(account_sid, auth_token, http_client=WsgiHttpClient(twilio), environment={"_": "_"})
    simulator_of(twilio).add_number(simulator_of(twilio).default_number, voice_url=base_url + "/voice/incoming",
                                    sms_url=base_url + "/sms/incoming", status_callback=base_url + "/voice/status")
    return twilio


class Harness:
    """Runs the simulator and the engine together on a virtual clock (shared by `sim` and `router`)."""

    def __init__(self, router, sim: Simulator) -> None:
        self.router = router
        self.sim = sim
        self.clock = sim.clock
        if router.clock is not sim.clock:
            raise ValueError("the engine and the simulator must share one clock (router.clock = sim.clock)")
        # The engine only gains timers and callbacks when the app is called (a webhook, or a change made
        # through `touch()`), so between those the next due moment is known without asking the database.
        self._dirty = True
        self._engine_next: datetime | None = None
        sim.transport = _Touching(sim.transport, self)

    def touch(self) -> None:
        """Something changed the engine outside a webhook (e.g. an agent's shift began): look again."""
        self._dirty = True

    def now(self) -> datetime:
        return self.clock.now()

    def settle(self) -> int:
        """Fire the engine's due timers and deliver its due callbacks until none is left at this moment."""
        due = self._engine_next is not None and self._engine_next <= self.clock.now()
        if not (self._dirty or due):
            return 0
        total = 0
        while self._engine_due_now():
            done = self.router.run_due_timers() + self.router.deliver_outbox()
            if not done:
                break  # what is due failed (logged); it is retried at a later moment
            total += done
        self._dirty = False
        self._engine_next = self.engine_next_due()
        return total

    def _engine_due_now(self) -> bool:
        """One cheap read instead of the sweep's write transactions when nothing is due (most moments)."""
        now = self.clock.now()
        timer = select(Timer.id).where(Timer.due_at <= now).limit(1).exists()
        message = (select(OutboxMessage.id).where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
                   .limit(1).exists())
        with self.router.read() as session:
            return bool(session.scalar(select(timer | message)))

    def engine_next_due(self) -> datetime | None:
        """The engine's next timer or callback after now (one that failed now is retried at a later moment)."""
        now = self.clock.now()
        timer = select(func.min(Timer.due_at)).where(Timer.due_at > now).scalar_subquery()
        message = (select(func.min(OutboxMessage.next_attempt_at))
                   .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at > now).scalar_subquery())
        with self.router.read() as session:
            row = session.execute(select(timer, message)).one()
        moments = [moment for moment in row if moment is not None]
        return min(moments) if moments else None

    def run_until(self, moment: datetime, progress: Callable[[datetime], None] | None = None) -> None:
        """Run everything due up to `moment`, in time order; the clock ends at `moment`."""
        while True:
            busy = self.settle()
            busy += self.sim.scheduler.run_due()
            if busy:
                continue
            due = [d for d in (self.sim.scheduler.next_due(), self._engine_next) if d is not None]
            upcoming = min(due) if due else None
            if upcoming is None or upcoming > moment:
                if self.clock.now() < moment:
                    self.clock.set(moment)
                    continue  # whatever came due exactly at `moment`
                return
            self.clock.set(upcoming)
            if progress is not None:
                progress(upcoming)

    def advance(self, seconds: float) -> None:
        self.run_until(self.now() + timedelta(seconds=seconds))

    def run_until_quiet(self, max_seconds: float = 24 * 3600, condition: Callable[[], bool] | None = None) -> bool:
        """Run until nothing is left to happen in the simulator (or `condition()`); False on timeout.

        The engine may still hold timers that never affect a call (finished tasks' clean-up), so
        only the simulator's side counts as "quiet".
        """
        limit = self.now() + timedelta(seconds=max_seconds)
        done = condition or (lambda: self.sim.scheduler.pending() == 0
                             and not any(call.is_active for call in self.sim.calls.values()))
        while not done():
            self.settle()
            due = [d for d in (self.sim.scheduler.next_due(), self._engine_next) if d is not None]
            if not due or min(due) > limit:
                return done()
            self.run_until(min(due))
        return True


class _Touching:
    """The simulator's transport, telling the harness that the app (hence maybe the engine) was called."""

    def __init__(self, transport, harness: Harness) -> None:
        self.transport, self.harness = transport, harness

    def send(self, *args, **kwargs):
        self.harness._dirty = True
        try:
            return self.transport.send(*args, **kwargs)
        finally:
            self.harness._dirty = True
