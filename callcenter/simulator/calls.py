"""A simulated call leg and the signals that reach its running TwiML.

A call's TwiML runs as a generator (its `program`): each verb is plain sequential code that
`yield`s a `Wait` when time has to pass (a prompt playing, a phone ringing, hold music). Whatever
happens to the call from outside (the caller hangs up, the app redirects it, an agent dequeues
it) is thrown into the generator as one of the `Signal` exceptions below, at the `yield` where it
is waiting, so each verb handles what can interrupt it with an ordinary `try`/`except`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ACTIVE = ("queued", "initiated", "ringing", "in-progress")
FINAL = ("completed", "busy", "failed", "no-answer", "canceled")


@dataclass
class Wait:
    """Yielded by a program: resume after `seconds` (None: only when a signal arrives)."""

    seconds: float | None = None


Program = Generator[Wait, None, None]


class Signal(Exception):
    """Something that happened to a call from outside its TwiML."""


class HungUp(Signal):
    """The call is over: its party hung up, the app completed it, or a `<Hangup>` ran."""

    def __init__(self, status: str = "completed", reason: str = "hangup") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Redirect(Signal):
    """Continue with the TwiML at `url` (a `<Redirect>`, a Gather/Record action, a REST update)."""

    def __init__(self, url: str | None, method: str = "POST", params: dict[str, str] | None = None,
                 twiml: str | None = None, source: str = "verb") -> None:
        super().__init__(url)
        self.url, self.method, self.params, self.twiml, self.source = url, method.upper(), params or {}, twiml, source


class Dequeued(Redirect):
    """The app dequeued this caller through the Queues/Members REST endpoint."""


class LeaveQueue(Signal):
    """A `<Leave>` in the wait-URL TwiML."""


class Bridged(Signal):
    """A `<Dial><Queue>` picked this waiting caller; `dialer` is the call it is being connected to."""

    def __init__(self, dialer: Call, url: str | None = None, method: str = "POST") -> None:
        super().__init__(dialer.sid)
        self.dialer, self.url, self.method = dialer, url, method


class BridgeEnded(Signal):
    """The other side of a two-party connection hung up."""


class LegAnswered(Signal):
    def __init__(self, leg: Call) -> None:
        super().__init__(leg.sid)
        self.leg = leg


class LegFailed(Signal):
    def __init__(self, leg: Call) -> None:
        super().__init__(leg.sid)
        self.leg = leg


class ConferenceEnded(Signal):
    pass


class ApplicationError(Exception):
    """The app's reply could not be used; Twilio says "an application error has occurred" and hangs up."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Call:
    sid: str
    account_sid: str
    from_: str
    to: str
    direction: str  # inbound, outbound-api, outbound-dial
    status: str
    date_created: datetime
    parent_call_sid: str | None = None
    party: Any = None  # a Caller, a Phone, or None
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ()
    timeout: float = 60
    date_updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    program: Program | None = field(default=None, repr=False)
    wait_token: int = 0
    callback_sequence: int = 0
    peer: Call | None = field(default=None, repr=False)  # the call this one is talking to
    queue_sid: str | None = None
    conference: str | None = None
    connected_at: datetime | None = None
    talked: bool = False  # was connected to someone at some point
    outcome: str | None = None  # answered, abandoned, voicemail, ... (for reports)
    log: list[dict] = field(default_factory=list, repr=False)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def duration(self) -> int:
        if self.start_time is None or self.end_time is None:
            return 0
        return int((self.end_time - self.start_time).total_seconds())

    def entries(self, kind: str) -> list[dict]:
        return [entry for entry in self.log if entry["kind"] == kind]

    def webhooks(self, purpose: str | None = None) -> list[dict]:
        """The webhooks sent for this call (optionally only those of one purpose, e.g. "enqueue-action")."""
        return [entry for entry in self.entries("webhook") if purpose is None or entry["purpose"] == purpose]

    def verbs(self) -> list[str]:
        """The TwiML verbs executed, in order: ["Say", "Gather", "Enqueue", ...] (prompts nested in a Gather left out)."""
        return [entry["verb"] for entry in self.entries("twiml") if "nested_in" not in entry]

    def transcript(self) -> list[str]:
        """One readable line per thing that happened, for the demo UI and for failing-test output."""
        lines = []
        for entry in self.log:
            detail = {k: v for k, v in entry.items() if k not in ("at", "kind")}
            lines.append(f"{entry['at']} {entry['kind']}: {detail}")
        return lines
