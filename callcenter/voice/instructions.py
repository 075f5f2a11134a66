"""TaskRouter's voice instructions for REST API users: `dequeue`, `call`, `redirect` and `conference`.

An `Instruction=...` update of a reservation, or an assignment callback's reply, reaches
`carry_out_in` inside the engine's transaction (routing/reservations.py). There the parameters are
checked, with TaskRouter's error codes (a bad one raises, and the transaction changes nothing),
and the instruction is written down: a `VoiceInstruction` row and an outbox message to this app's
own `/voice/instructions/carry-out`, both in that transaction. Twilio is called only when the
outbox delivers the message, after commit and outside the workspace lock; another process
delivers it if this one dies. The rest happens in instruction_calls.py (placing, retrying, hanging
up) and instruction_legs.py (the calls' signed webhooks).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from flask import Flask
from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.contact_center import callback_base_url
from callcenter.database import get_router
from callcenter.phones import is_phone_number
from callcenter.routing import validation
from callcenter.routing.callback_network import ip_of, origin_of
from callcenter.routing.errors import IllegalState, InvalidParameter, RoutingError
from callcenter.routing.models import SID, Base, Reservation, Task, Worker
from callcenter.routing.router import Router
from callcenter.routing.timers import register_timer

log = logging.getLogger("callcenter.voice")

CARRY_OUT_PATH = "/voice/instructions/carry-out"
HANG_UP_PATH = "/voice/instructions/hang-up"
# The durable timer of an instruction (one per reservation): a retry after Twilio was unreachable, or
# the end of a dial's or a caller's move's lease (the process doing it died or hangs).
INSTRUCTION_TIMER = "voice_instruction"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
CONFERENCE_EVENTS = ("start", "end", "join", "leave", "mute", "hold", "speaker")
MAX_RING_SECONDS = 999
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_IDENTITY = re.compile(r"[^\s\x00-\x1f]{1,256}")


class VoiceInstruction(Base):
    """A voice instruction given for one reservation, and how far carrying it out has come.

    `status`: due (written, not yet acted on) -> dialing (Twilio being asked) -> ringing (the worker's
    leg placed, or maybe placed: `worker_call_sid` unknown) -> answered (the caller being moved) ->
    bridged (moved, reservation accepted) -> ended. `hung-up`: the worker hung up during the move;
    `worker-left`: a `conference` worker left, the task completes when the conference ends; failed:
    Twilio refused or the caller could not be moved. `call` ends at placed, `redirect` at redirected.
    """

    __tablename__ = "voice_instructions"

    # One reservation, one instruction carried out: a retried callback or REST update finds this row.
    reservation_sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(SID)
    task_sid: Mapped[str] = mapped_column(SID)
    worker_sid: Mapped[str] = mapped_column(SID)
    instruction: Mapped[str] = mapped_column(String(16))
    # The checked parameters, JSON, under the assignment callback's snake_case names (never SIP credentials).
    params: Mapped[str] = mapped_column(Text)
    # The task's caller (dequeue, conference) or the call to redirect.
    caller_call_sid: Mapped[str | None] = mapped_column(String(34))
    worker_call_sid: Mapped[str | None] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(16))
    date_created: Mapped[datetime] = mapped_column(DateTime, index=True)  # retention.py deletes the oldest first
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.params)


# -- wiring: the Router's instruction handler and its listener ---------------------------------------

# Each Router's own callback base URL, for the outbox messages its timers and listeners write.
_BASE_URLS: WeakKeyDictionary[Router, str] = WeakKeyDictionary()


def register(app: Flask) -> None:
    """Make this app carry out the voice instructions of its Router (every workspace of its Twilio account)."""
    from .instruction_calls import on_instruction_timer

    router = get_router(app)
    _BASE_URLS[router] = callback_base_url(app).rstrip("/")
    router.instruction_handler = handler_for(app)
    router.listeners.append(ringing_stopper_for(app))
    register_timer(INSTRUCTION_TIMER, on_instruction_timer)


def handler_for(app: Flask) -> Callable[..., None]:
    def carry_out(tx, *, reservation: Reservation, task: Task, worker: Worker, instruction: dict[str, Any]) -> None:
        carry_out_in(app, tx, reservation, task, worker, instruction)

    return carry_out


def carry_out_in(app: Flask, tx, reservation: Reservation, task: Task, worker: Worker,
                 instruction: dict[str, Any]) -> None:
    """Check a voice instruction and write it down with the outbox message that carries it out after commit."""
    name = instruction["instruction"]
    _check_account(app, tx.workspace)
    existing = tx.session.get(VoiceInstruction, reservation.sid)
    if existing is not None:
        raise IllegalState(f"Reservation {reservation.sid} is already being carried out by a "
                           f"{existing.instruction!r} instruction")
    task_attributes, worker_attributes = _attributes(task.attributes), _attributes(worker.attributes)
    params, caller_call_sid = CHECKS[name](tx, instruction, task_attributes, worker_attributes)
    _refuse_own_urls(app, name, params)
    row = VoiceInstruction(
        reservation_sid=reservation.sid, workspace_sid=tx.workspace.sid, task_sid=task.sid, worker_sid=worker.sid,
        instruction=name, params=json.dumps(params), caller_call_sid=caller_call_sid, status="due",
        date_created=tx.now, date_updated=tx.now)
    tx.session.add(row)
    queue_carry_out(tx, row)


def queue_carry_out(tx, row: VoiceInstruction) -> None:
    """The outbox message that carries the instruction out, after commit (signed like any engine callback)."""
    tx.add_outbox(kind="event", url=_BASE_URLS[tx.router] + CARRY_OUT_PATH,
                  payload={"WorkspaceSid": row.workspace_sid, "ReservationSid": row.reservation_sid,
                           "Instruction": row.instruction},
                  reservation_sid=row.reservation_sid, ordering_key=row.reservation_sid)


def queue_hang_up(tx, row: VoiceInstruction, call_sid: str) -> None:
    """Hang up `call_sid` after commit, through the outbox: retried while Twilio is unreachable, never
    sent from the committing thread (a sweeper, a request) nor while the workspace is locked."""
    tx.add_outbox(kind="event", url=_BASE_URLS[tx.router] + HANG_UP_PATH,
                  payload={"WorkspaceSid": row.workspace_sid, "ReservationSid": row.reservation_sid,
                           "CallSid": call_sid},
                  reservation_sid=row.reservation_sid)


def _check_account(app: Flask, workspace) -> None:
    account_sid, token = app.config.get("TWILIO_ACCOUNT_SID"), app.config.get("TWILIO_AUTH_TOKEN")
    if not account_sid or not token:
        raise IllegalState("Voice instructions need this server's Twilio account: set TWILIO_ACCOUNT_SID and "
                           "TWILIO_AUTH_TOKEN")
    if workspace.account_sid != account_sid:
        # The calls would be placed, and paid for, on another account's behalf.
        raise IllegalState(f"Voice instructions are carried out only for workspaces of account {account_sid}, "
                           "whose Twilio credentials this server holds")


# The URLs Twilio posts to, or we forward to, per instruction, with TaskRouter's code when one is ours.
CALLBACK_URLS: dict[str, dict[str, int]] = {
    "dequeue": {"status_callback_url": 40157},
    "call": {"status_callback_url": 40158},
    "conference": {"status_callback": 40159, "conference_status_callback": 20001,
                   "recording_status_callback": 20001, "conference_recording_status_callback": 20001},
}


def _host_key(url: str) -> str | None:
    """The host `url` reaches, as the network sees it: case, a trailing dot, IDNA and the spellings of an
    IPv4 address (`127.1`, `2130706433`) folded. Every loopback address and `localhost` are this machine,
    told apart by port (another local application is not this server); other hosts are compared without."""
    try:
        origin = origin_of(url)
    except ValueError:  # not a URL at all: refused by its own check
        return None
    if origin is None:
        return None
    host, port = origin[0].rstrip("."), origin[1]
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    try:
        address = ip_of(host)
    except ValueError:
        try:  # the forms inet_aton and getaddrinfo accept: 127.1, 0x7f.0.0.1, 2130706433
            address = ipaddress.IPv4Address(socket.inet_aton(host)) if host[-1:].isalnum() else None
        except OSError:
            address = None
    if host == "localhost" or host.endswith(".localhost") or (
            address is not None and (address.is_loopback or address.is_unspecified)):
        return f"localhost:{port}"
    return str(address) if address is not None else host


def own_hosts(app: Flask) -> set[str]:
    """The hosts this server answers on: PUBLIC_BASE_URL's and the callback base URL's."""
    keys = (_host_key(url) for url in (app.config.get("PUBLIC_BASE_URL") or "", callback_base_url(app)))
    return {key for key in keys if key}


def is_own_url(app: Flask, url: str | None) -> bool:
    key = _host_key(url) if url else None
    return key is not None and key in own_hosts(app)


def _refuse_own_urls(app: Flask, instruction: str, params: dict[str, Any]) -> None:
    """A status callback on this server would be posted back to it, signed with the account's token: a
    loop at best, a forged webhook for another reservation at worst."""
    for name, code in CALLBACK_URLS.get(instruction, {}).items():
        if is_own_url(app, params.get(name)):
            raise InvalidParameter(f"{name} {params[name]!r} points at this server; give your own "
                                   "application's URL", code=code)


def _attributes(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- checking each instruction's parameters ----------------------------------------------------------
# Each check returns (the parameters to keep, the caller's call sid) or raises with TaskRouter's code.

def check_dequeue(tx, given: dict, task: dict, worker: dict) -> tuple[dict, str]:
    call_sid = _caller_call_sid(task, code=40140, instruction="dequeue")
    to = _address(given.get("to") or worker.get("contact_uri"), "to", code=40131)
    return {
        "to": to,
        # Missing: the number the caller dialled, as TaskRouter does for tasks created by <Enqueue>.
        "from": _caller_id(given.get("from") or task.get("to"), to, code=40132),
        "post_work_activity_sid": _activity(tx, given.get("post_work_activity_sid"), code=40130),
        "record": _one_of(given.get("record"), "record", ("record-from-answer", "do-not-record")) == "record-from-answer",
        "timeout": _ring_seconds(given.get("timeout")),
        "status_callback_url": _url(given.get("status_callback_url"), "status_callback_url", code=40157),
        "status_callback_events": _events(given.get("status_callback_events"), "status_callback_events",
                                          CALL_EVENTS, code=40134),
    }, call_sid


def check_call(tx, given: dict, task: dict, worker: dict) -> tuple[dict, None]:
    to = _address(given.get("to") or worker.get("contact_uri"), "to", code=40110)
    url = _url(given.get("url"), "url", code=40112)
    if url is None:
        raise InvalidParameter("The call instruction needs a url: the TwiML the worker's call runs", code=40112)
    return {
        "to": to,
        "from": _caller_id(given.get("from"), to, code=40111),
        "url": url,
        "record": _flag(given.get("record")),
        "timeout": _ring_seconds(given.get("timeout")),
        "status_callback_url": _url(given.get("status_callback_url"), "status_callback_url", code=40158),
    }, None


def check_redirect(tx, given: dict, task: dict, worker: dict) -> tuple[dict, str]:
    call_sid = given.get("call_sid")
    if not isinstance(call_sid, str) or not _CALL_SID.fullmatch(call_sid):
        raise InvalidParameter(f"call_sid {call_sid!r} is not a call sid (CA followed by 32 hex digits)", code=40121)
    url = _url(given.get("url"), "url", code=40120)
    if url is None:
        raise InvalidParameter("The redirect instruction needs a url: the TwiML the call continues with", code=40120)
    return {"url": url, "post_work_activity_sid": _activity(tx, given.get("post_work_activity_sid"), code=20001)}, call_sid


# The conference instruction's parameters beyond to/from/timeout/post_work_activity_sid: each read
# with its rule, and kept for the worker's leg, the worker's <Conference>, or the caller's.
_BOOLEAN, _METHOD = "boolean", ("GET", "POST")
CONFERENCE_OPTIONS: dict[str, Any] = {
    "status_callback_method": _METHOD,
    "status_callback_event": CALL_EVENTS,
    "record": _BOOLEAN,
    "muted": _BOOLEAN,
    "beep": ("true", "false", "onEnter", "onExit"),
    "start_conference_on_enter": _BOOLEAN,
    "end_conference_on_exit": _BOOLEAN,
    "end_conference_on_customer_exit": _BOOLEAN,
    "beep_on_customer_entrance": _BOOLEAN,
    "wait_url": "url",
    "wait_method": _METHOD,
    "early_media": _BOOLEAN,
    "max_participants": (2, 250),
    "conference_status_callback": "url",
    "conference_status_callback_method": _METHOD,
    "conference_status_callback_event": CONFERENCE_EVENTS,
    "conference_record": ("true", "false", "record-from-start", "do-not-record"),
    "conference_trim": ("trim-silence", "do-not-trim"),
    "recording_channels": ("mono", "dual"),
    "recording_status_callback": "url",
    "recording_status_callback_method": _METHOD,
    "conference_recording_status_callback": "url",
    "conference_recording_status_callback_method": _METHOD,
    "region": ("us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1"),
    "sip_auth_username": "sip",
    "sip_auth_password": "sip",
    "jitter_buffer_size": ("small", "medium", "large", "off"),
}


def check_conference(tx, given: dict, task: dict, worker: dict) -> tuple[dict, str]:
    call_sid = _caller_call_sid(task, code=40142, instruction="conference")
    to = _address(given.get("to") or worker.get("contact_uri"), "to", code=40137)
    post_work = _activity(tx, given.get("post_work_activity_sid"), code=40139)
    if post_work and tx.workspace.multi_task_enabled:
        raise InvalidParameter("post_work_activity_sid is not valid in a multitasking workspace", code=40139)
    params = {
        "to": to,
        "from": _caller_id(given.get("from") or task.get("to"), to, code=40138),
        "post_work_activity_sid": post_work,
        "timeout": _ring_seconds(given.get("timeout")),
        "status_callback": _url(given.get("status_callback"), "status_callback", code=40159),
    }
    for name, rule in CONFERENCE_OPTIONS.items():
        value = given.get(name)
        if value is None or value == "":
            continue
        if rule == _BOOLEAN:
            params[name] = validation.boolean(value, name)
        elif rule == "url":
            params[name] = _url(value, name, code=20001)
        elif rule == "sip":
            continue  # accepted, and neither used nor stored: the password is a credential
        elif rule in (CALL_EVENTS, CONFERENCE_EVENTS):
            params[name] = _events(value, name, rule, code=20001)
        elif isinstance(rule[0], int):
            params[name] = validation.integer(value, name, minimum=rule[0], maximum=rule[1])
        else:
            params[name] = _one_of(value, name, rule)
    return params, call_sid


CHECKS: dict[str, Callable[..., tuple[dict, str | None]]] = {
    "dequeue": check_dequeue, "call": check_call, "redirect": check_redirect, "conference": check_conference,
}


def _caller_call_sid(task: dict, *, code: int, instruction: str) -> str:
    call_sid = task.get("call_sid")
    if not isinstance(call_sid, str) or not _CALL_SID.fullmatch(call_sid):
        raise InvalidParameter(f"The {instruction} instruction needs the task's call: its attributes have no "
                               "call_sid (tasks of calls put on hold with <Enqueue> carry one)", code=code)
    return call_sid


def _address(value: Any, name: str, *, code: int) -> str:
    """A phone number, `client:identity` or `sip:` URI to call."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("client:") and _IDENTITY.fullmatch(text[len("client:"):] or " "):
        return text
    if text.startswith("sip:") and "@" in text and _IDENTITY.fullmatch(text):
        return text
    if is_phone_number(text):
        return text
    shown = f"{value!r}" if value else "nothing (and the worker has no contact_uri attribute)"
    raise InvalidParameter(f"{name}: {shown} is not a phone number, client: identity or sip: address", code=code)


def _caller_id(value: Any, to: str, *, code: int) -> str:
    """What the worker's phone shows: a phone number towards a phone; any identity towards a client or SIP."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidParameter("from is missing: the caller ID of the worker's call (the task has no 'to' "
                               "attribute to use instead)", code=code)
    if is_phone_number(to) and not is_phone_number(text):
        raise InvalidParameter(f"from {text!r} is not a phone number, which a call to a phone needs", code=code)
    if not _IDENTITY.fullmatch(text):
        raise InvalidParameter(f"from {text!r} is not a valid caller ID", code=code)
    return text


def _activity(tx, sid: Any, *, code: int) -> str | None:
    if sid in (None, ""):
        return None
    if not isinstance(sid, str) or tx.config.activities.get(sid) is None:
        raise InvalidParameter(f"post_work_activity_sid {sid!r} is not an activity of this workspace", code=code)
    return sid


def _url(value: Any, name: str, *, code: int) -> str | None:
    try:
        return validation.url(value, name)
    except RoutingError as err:
        raise InvalidParameter(err.message, code=code) from None


def _ring_seconds(value: Any) -> int:
    return 60 if value in (None, "") else validation.integer(value, "timeout", minimum=1, maximum=MAX_RING_SECONDS)


def _flag(value: Any) -> bool:
    """A `record` given as a boolean or as Twilio's `record-from-answer`."""
    return value == "record-from-answer" or (value not in (None, "") and validation.boolean(value, "record"))


def _one_of(value: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise InvalidParameter(f"{name} must be one of {', '.join(allowed)}")
    return value


def _events(value: Any, name: str, allowed: tuple[str, ...], *, code: int) -> list[str] | None:
    """A list of event names: a list (REST), or a comma- or space-separated string (callback JSON)."""
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list) else re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else None
    if items is None or not all(isinstance(item, str) and item in allowed for item in items):
        raise InvalidParameter(f"{name} must name events among {', '.join(allowed)}", code=code)
    return [event for event in allowed if event in items]


# -- a ringing worker leg stops when its reservation ends some other way -----------------------------

ENDED_OFFERS = ("reservation.timeout", "reservation.canceled", "reservation.rescinded", "reservation.rejected")


def ringing_stopper_for(app: Flask) -> Callable[[list[dict[str, Any]]], None]:
    """A Router listener: hang up a worker leg still ringing for a reservation that has just ended.

    It only writes (the row ended, a hang-up for the outbox), never calls Twilio in the committing
    thread. Best effort, in the process that committed the change: a leg this misses rings out,
    and answering it only tells the worker the call is no longer needed.
    """
    def stop_ringing(events: list[dict[str, Any]]) -> None:
        ended = [event["reservation_sid"] for event in events
                 if event["event_type"] in ENDED_OFFERS and event.get("reservation_sid")]
        if not ended:
            return
        from .instruction_calls import stop_ringing_legs

        with app.app_context():
            stop_ringing_legs(ended)

    return stop_ringing


def ringing_legs(session, reservation_sids: list[str]) -> list[VoiceInstruction]:
    return list(session.scalars(select(VoiceInstruction).where(
        VoiceInstruction.reservation_sid.in_(reservation_sids),
        VoiceInstruction.status.in_(("dialing", "ringing")),
        VoiceInstruction.instruction.in_(("dequeue", "conference")))))
