"""Voice instructions after commit: placing the worker's call (or redirecting the call), once.

The outbox posts `/voice/instructions/carry-out`; the instruction is claimed (`due` -> `dialing`)
and Twilio asked. One dial per reservation, however often the message comes and whatever fails:

- Twilio surely never saw the request (no connection, 429): the row goes back to `due` and a
  durable timer queues a new carry-out message after a backoff (the outbox message itself is
  answered 204 either way, so a redelivery never races the first delivery).
- Twilio may have placed the call (read timeout, dropped connection, 5xx): never dialed again. The
  leg counts as ringing with its sid unknown; its webhooks (they name the reservation) are taken
  as the leg's, and the reservation's timeout ends the offer if there was no call.
- The process dies after the claim: the claim's lease (the same timer) runs out, and the dial
  counts as maybe placed, as above.
- Twilio refuses: a worker whose number is refused is passed over as after a missed call; a
  refusal that is no fault of the worker's (caller ID, account, permissions) rejects the
  reservation without moving the worker (the engine offers the task to each worker once per
  routing step, so a bad caller ID cannot ring round in a loop).

Hang-ups go through the outbox to `/voice/instructions/hang-up`, so no thread that commits (a
sweeper firing timers, a request) ever waits on Twilio. The legs' webhooks are in instruction_legs.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Response

from callcenter.database import get_router
from callcenter.routing.events import emit
from callcenter.routing.models import Reservation, Task
from callcenter.routing.reservations import reject_reservation_in
from callcenter.signatures import twilio_webhook
from callcenter.telephony import (
    CALLED_NUMBER_ERRORS,
    TelephonyError,
    TelephonyUnavailable,
    TelephonyUnreachable,
    get_telephony,
)

from . import bp
from .flow import form, public_url
from .instructions import (
    CALL_EVENTS,
    INSTRUCTION_TIMER,
    VoiceInstruction,
    queue_carry_out,
    queue_hang_up,
    ringing_legs,
)

log = logging.getLogger("callcenter.voice")

# Longer than the one request a dial or a redirect makes (TIMEOUT_SECONDS to connect, again to read).
DIAL_LEASE_SECONDS = 60
MAX_RETRY_SECONDS = 60
OFFERED = ("pending", "accepted")
# TaskRouter's codes for "Twilio refused the call" per instruction, for the logs.
CALL_API_ERRORS = {"dequeue": 40133, "call": 40113, "redirect": 40122, "conference": 40145}


@dataclass(frozen=True)
class Step:
    """A `VoiceInstruction` as read at one moment (the row itself stays in its session)."""

    reservation_sid: str
    workspace_sid: str
    task_sid: str
    worker_sid: str
    instruction: str
    options: dict[str, Any]
    caller_call_sid: str | None
    worker_call_sid: str | None
    status: str

    def is_leg(self, call_sid: str) -> bool:
        """True when `call_sid` is the worker's leg we placed (or may be: its sid is not known yet)."""
        return self.worker_call_sid == call_sid or self.worker_call_sid is None


def step_of(row: VoiceInstruction) -> Step:
    return Step(row.reservation_sid, row.workspace_sid, row.task_sid, row.worker_sid, row.instruction, row.options,
                row.caller_call_sid, row.worker_call_sid, row.status)


def read_step(reservation_sid: str) -> Step | None:
    with get_router().read() as session:
        row = session.get(VoiceInstruction, reservation_sid) if reservation_sid else None
        return step_of(row) if row is not None else None


def set_status(row: VoiceInstruction, status: str, now) -> None:
    row.status, row.date_updated = status, now


# -- carrying out: the outbox's message, after the instruction's commit ------------------------------

@bp.post("/instructions/carry-out")
@twilio_webhook
def instruction_carry_out():
    """The engine's outbox, after commit: place the worker's call or redirect the call.

    Always 204 once handled: a retry is this module's own (a timer), never the outbox redelivering.
    """
    carry_out_now(form("ReservationSid"))
    return Response(status=204)


def carry_out_now(reservation_sid: str) -> str:
    """"done" (carried out, maybe carried out, refused, or no longer wanted) or "retry" (Twilio unreachable)."""
    step = _claim(reservation_sid)
    if step is None:
        return "done"
    try:
        if step.instruction == "redirect":
            _redirect(step)
        else:
            _placed(step, _place_worker_call(step))
    except TelephonyUnreachable as err:
        _retry_later(step, f"Twilio unreachable ({err})")
        return "retry"
    except TelephonyUnavailable as err:
        if step.instruction == "redirect":  # redirecting again only moves the call where it should be
            _retry_later(step, f"Twilio failed ({err})")
            return "retry"
        log.warning("%s instruction for %s: Twilio may or may not have placed the call (%s); not dialing "
                    "again: the leg's own webhooks will tell", step.instruction, step.reservation_sid, err)
        _placed(step, None)
    except TelephonyError as err:
        _refused(step, err)
    return "done"


def _claim(reservation_sid: str) -> Step | None:
    """Claim a due instruction (one dial per reservation, however often the outbox delivers)."""
    step = read_step(reservation_sid)
    if step is None or step.status != "due":
        return None
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, reservation_sid)
        if row.status != "due":
            return None
        reservation = tx.session.get(Reservation, reservation_sid)
        if reservation is None or reservation.reservation_status not in OFFERED:
            set_status(row, "ended", tx.now)  # rejected, timed out or canceled before we got to it
            tx.cancel_timer(INSTRUCTION_TIMER, reservation_sid)
            return None
        set_status(row, "dialing", tx.now)
        # Should this process die (or hang) while Twilio is asked, the lease's end settles the row.
        tx.schedule(INSTRUCTION_TIMER, reservation_sid, DIAL_LEASE_SECONDS)
        return step_of(row)


def _retry_later(step: Step, why: str) -> None:
    """Twilio never got the request: back to `due`, and a new carry-out message after a backoff."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status != "dialing":
            return
        set_status(row, "due", tx.now)
        waited = (tx.now - row.date_created).total_seconds()
        delay = min(MAX_RETRY_SECONDS, max(1.0, waited / 2))  # grows with the outage, without a counter
        tx.schedule(INSTRUCTION_TIMER, step.reservation_sid, delay)
    log.warning("%s instruction for %s: %s; tried again in %.0f s", step.instruction, step.reservation_sid, why,
                delay)


def _refused(step: Step, err: TelephonyError) -> None:
    """Twilio refused the call or the redirect: retrying the same request will not help."""
    worker_number = err.code in CALLED_NUMBER_ERRORS  # they pass the worker over like a missed call
    log.error("%s instruction for %s not carried out: Twilio refused (%s, code %s); TaskRouter error %s%s",
              step.instruction, step.reservation_sid, err, err.code, CALL_API_ERRORS[step.instruction],
              "" if worker_number or step.instruction not in ("dequeue", "conference") else
              ": no fault of the worker's (check the caller ID and the account's permissions); the "
              "reservation is rejected without moving the worker")
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status != "dialing":
            return
        set_status(row, "failed", tx.now)
        tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
        if step.instruction not in ("dequeue", "conference"):
            return
        if worker_number:
            pass_over(tx, step.reservation_sid)
            return
        reservation = tx.session.get(Reservation, step.reservation_sid)
        if reservation is not None and reservation.reservation_status == "pending":
            reject_reservation_in(tx, reservation, activity_sid=None)


def pass_over(tx, reservation_sid: str) -> None:
    """The worker's phone did not take the call: reject, and move them as a reservation timeout would."""
    reservation = tx.session.get(Reservation, reservation_sid)
    if reservation is not None and reservation.reservation_status == "pending":
        reject_reservation_in(tx, reservation, activity_sid=tx.workspace.timeout_activity_sid)


def _place_worker_call(step: Step) -> str:
    options = step.options
    if step.instruction == "call":
        call = get_telephony().place_call(
            to=options["to"], from_=options["from"], url=options["url"], timeout=options["timeout"],
            status_callback=options.get("status_callback_url"), record=options["record"])
    else:
        values = {"reservation": step.reservation_sid}
        url, wanted = status_callback_of(step)
        events = tuple(event for event in CALL_EVENTS if event == "completed" or (url and event in (wanted or ())))
        call = get_telephony().place_call(
            to=options["to"], from_=options["from"], url=public_url("voice.instruction_worker_answer", **values),
            status_callback=public_url("voice.instruction_worker_status", **values), status_callback_events=events,
            timeout=options["timeout"], record=bool(options.get("record")))
    return call.sid


def _placed(step: Step, call_sid: str | None) -> None:
    """Note the worker's call (`None`: maybe placed); hang it up if its reservation ended meanwhile."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        row.worker_call_sid = row.worker_call_sid or call_sid
        if row.status == "dialing":
            set_status(row, "placed" if step.instruction == "call" else "ringing", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
        reservation = tx.session.get(Reservation, step.reservation_sid)
        wanted = reservation is not None and reservation.reservation_status in OFFERED and row.status != "ended"
        if call_sid is None:
            return
        if wanted or step.instruction == "call":
            _note_worker_call(tx, step.task_sid, call_sid)
        else:
            queue_hang_up(tx, row, call_sid)  # the reservation ended while we dialed


def _note_worker_call(tx, task_sid: str, call_sid: str) -> None:
    """TaskRouter adds the worker's call to the task: `worker_call_sid` in its attributes."""
    task = tx.session.get(Task, task_sid)
    if task is None or task.assignment_status in ("completed", "canceled"):
        return
    try:
        attributes = json.loads(task.attributes or "{}")
    except ValueError:
        return
    if not isinstance(attributes, dict) or attributes.get("worker_call_sid") == call_sid:
        return
    attributes["worker_call_sid"] = call_sid
    task.attributes = json.dumps(attributes)
    task.version += 1
    task.date_updated = tx.now
    emit(tx, "task.updated", resource=task, task=task, description=f"Task {task.sid} updated")


def _redirect(step: Step) -> None:
    options = step.options
    # The call's end is ours to hear only when an activity must follow it.
    status_callback = (public_url("voice.instruction_call_status", reservation=step.reservation_sid)
                       if options.get("post_work_activity_sid") else None)
    get_telephony().redirect(step.caller_call_sid, options["url"], status_callback=status_callback)
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status == "dialing":
            set_status(row, "redirected" if status_callback else "ended", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)


def status_callback_of(step: Step) -> tuple[str | None, list[str] | None]:
    """The app's own status callback for the worker's leg, and the events it asked for."""
    options = step.options
    if step.instruction == "dequeue":
        return options.get("status_callback_url"), options.get("status_callback_events")
    return options.get("status_callback"), options.get("status_callback_event")


# -- the instruction's timer -------------------------------------------------------------------------

def on_instruction_timer(tx, reservation_sid: str) -> None:
    """INSTRUCTION_TIMER, in the workspace's transaction: a retry's time, or a lease's end."""
    row = tx.session.get(VoiceInstruction, reservation_sid)
    if row is None:
        return
    reservation = tx.session.get(Reservation, reservation_sid)
    offered = reservation is not None and reservation.reservation_status in OFFERED
    if row.status in ("due", "dialing") and not offered:
        set_status(row, "ended", tx.now)  # the offer ended meanwhile: nothing left to carry out
    elif row.status == "due":
        queue_carry_out(tx, row)
    elif row.status == "dialing" and row.instruction == "redirect":
        set_status(row, "due", tx.now)
        queue_carry_out(tx, row)
    elif row.status == "dialing":
        # The process asking Twilio died or hangs: the call may exist. Never dial again.
        log.warning("%s instruction for %s: the dial's lease ran out; the worker's call may or may not have "
                    "been placed", row.instruction, reservation_sid)
        set_status(row, "placed" if row.instruction == "call" else "ringing", tx.now)
    elif row.status in ("answered", "hung-up"):
        # The process moving the caller died or hangs: nobody knows where the caller is.
        log.warning("%s instruction for %s: the caller's move did not finish in time; the reservation is "
                    "rejected", row.instruction, reservation_sid)
        set_status(row, "failed", tx.now)
        if reservation is not None and reservation.reservation_status == "pending":
            reject_reservation_in(tx, reservation, activity_sid=None)


# -- hanging up, after commit ------------------------------------------------------------------------

@bp.post("/instructions/hang-up")
@twilio_webhook
def instruction_hang_up():
    """The outbox, after commit: end a call. 503 while Twilio is unreachable (hanging up twice is harmless)."""
    call_sid = form("CallSid")
    try:
        get_telephony().hang_up(call_sid)
    except TelephonyUnavailable as err:
        log.warning("could not hang up %s yet: %s", call_sid, err)
        return Response(status=503)
    except TelephonyError as err:  # already over, most likely
        log.info("could not hang up %s: %s", call_sid, err)
    return Response(status=204)


def stop_ringing_legs(reservation_sids: list[str]) -> None:
    """The reservations ended: their worker legs still ringing are ended, and hung up after commit."""
    router = get_router()
    with router.read() as session:
        legs = [step_of(row) for row in ringing_legs(session, reservation_sids)]
    for step in legs:
        with router.transaction(step.workspace_sid) as tx:
            row = tx.session.get(VoiceInstruction, step.reservation_sid)
            if row.status not in ("dialing", "ringing"):
                continue
            set_status(row, "ended", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
            if row.worker_call_sid:  # still dialing: the dial's own check hangs the new leg up
                queue_hang_up(tx, row, row.worker_call_sid)
