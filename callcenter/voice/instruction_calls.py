"""Voice instructions after commit: the calls they place, and those calls' signed webhooks.

`dequeue` and `conference` ring the worker; when they answer, exactly the task's caller is moved
(Queue Members API when the queue is known, else Calls API) into the conference named after the
task, and only then is the reservation accepted. An unanswered, busy or failed leg rejects the
reservation, the worker goes to the workspace's timeout activity, and the caller waits on for the
next worker. When the worker's part ends, `post_work_activity_sid` applies (and a `conference`
task completes, or wraps up in a multitasking workspace). `call` places the worker's call to the
app's own TwiML; `redirect` moves a live call to the app's TwiML.

Every step is idempotent: the outbox and Twilio both deliver at least once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from callcenter.database import get_router
from callcenter.routing.errors import RoutingError
from callcenter.routing.events import emit
from callcenter.routing.models import Reservation, Task, Worker
from callcenter.routing.reservations import accept_reservation_in, reject_reservation_in
from callcenter.routing.tasks import cancel_task_in, complete_task_in, wrap_task_in
from callcenter.routing.workers import set_activity
from callcenter.signatures import twilio_webhook
from callcenter.telephony import TelephonyError, TelephonyUnavailable, get_telephony
from twiml.instructions import caller_conference, hang_up, task_conference, worker_conference

from . import bp
from .callers import xml
from .flow import form, public_url
from .instructions import CALL_EVENTS, VoiceInstruction, ringing_legs
from .models import Call

log = logging.getLogger("callcenter.voice")

NOT_ANSWERED = ("no-answer", "busy", "failed", "canceled")
FINAL = (*NOT_ANSWERED, "completed")
WAITING = ("pending", "reserved")
# TaskRouter's codes for "Twilio refused the call" per instruction, for the logs.
CALL_API_ERRORS = {"dequeue": 40133, "call": 40113, "redirect": 40122, "conference": 40145}
GOODBYES = {
    "stray": "",
    "gone": "This call is no longer needed. Goodbye.",
    "caller-gone": "Sorry, the caller hung up. Goodbye.",
    "unavailable": "Sorry, we could not connect the caller. Goodbye.",
}


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
        """True when `call_sid` is the worker's leg we placed (or may be: Twilio answered before we noted its sid)."""
        return self.worker_call_sid == call_sid or self.worker_call_sid is None


def _step(row: VoiceInstruction) -> Step:
    return Step(row.reservation_sid, row.workspace_sid, row.task_sid, row.worker_sid, row.instruction, row.options,
                row.caller_call_sid, row.worker_call_sid, row.status)


def read_step(reservation_sid: str) -> Step | None:
    with get_router().read() as session:
        row = session.get(VoiceInstruction, reservation_sid) if reservation_sid else None
        return _step(row) if row is not None else None


def _set(row: VoiceInstruction, status: str, now) -> None:
    row.status, row.date_updated = status, now


# -- carrying out: the outbox's message, after the instruction's commit ------------------------------

@bp.post("/instructions/carry-out")
@twilio_webhook
def instruction_carry_out():
    """The engine's outbox, after commit: place the worker's call or redirect the call. 503: try again later."""
    return Response(status=503 if carry_out_now(form("ReservationSid")) == "retry" else 204)


def carry_out_now(reservation_sid: str) -> str:
    """"done" (carried out, refused, or no longer wanted) or "retry" (Twilio unreachable: the outbox retries)."""
    step = _claim(reservation_sid)
    if step is None:
        return "done"
    try:
        if step.instruction == "redirect":
            _redirect(step)
        else:
            _place_worker_call(step)
    except TelephonyUnavailable as err:
        _release(step)
        log.warning("%s instruction for %s: Twilio unavailable (%s); retried later", step.instruction,
                    step.reservation_sid, err)
        return "retry"
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
        if reservation is None or reservation.reservation_status not in ("pending", "accepted"):
            _set(row, "ended", tx.now)  # rejected, timed out or canceled before we got to it
            return None
        _set(row, "dialing", tx.now)
        return _step(row)


def _release(step: Step) -> None:
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status == "dialing":
            _set(row, "due", tx.now)


def _refused(step: Step, err: TelephonyError) -> None:
    """Twilio refused the call (bad number, caller ID...): a worker we cannot ring is passed over."""
    log.error("%s instruction for %s not carried out: Twilio refused (%s, code %s); TaskRouter error %s",
              step.instruction, step.reservation_sid, err, err.code, CALL_API_ERRORS[step.instruction])
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        _set(row, "failed", tx.now)
        if step.instruction in ("dequeue", "conference"):
            _pass_over(tx, step.reservation_sid)


def _pass_over(tx, reservation_sid: str) -> None:
    """The worker's phone did not take the call: reject, and move them as a reservation timeout would."""
    reservation = tx.session.get(Reservation, reservation_sid)
    if reservation is not None and reservation.reservation_status == "pending":
        reject_reservation_in(tx, reservation, activity_sid=tx.workspace.timeout_activity_sid)


def _place_worker_call(step: Step) -> None:
    options = step.options
    if step.instruction == "call":
        call = get_telephony().place_call(
            to=options["to"], from_=options["from"], url=options["url"], timeout=options["timeout"],
            status_callback=options.get("status_callback_url"), record=options["record"])
    else:
        values = {"reservation": step.reservation_sid}
        url, wanted = _status_callback_of(step)
        events = tuple(event for event in CALL_EVENTS if event == "completed" or (url and event in (wanted or ())))
        call = get_telephony().place_call(
            to=options["to"], from_=options["from"], url=public_url("voice.instruction_worker_answer", **values),
            status_callback=public_url("voice.instruction_worker_status", **values), status_callback_events=events,
            timeout=options["timeout"], record=bool(options.get("record")))
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        row.worker_call_sid = row.worker_call_sid or call.sid
        if row.status == "dialing":
            _set(row, "placed" if step.instruction == "call" else "ringing", tx.now)
        reservation = tx.session.get(Reservation, step.reservation_sid)
        wanted = (row.status != "ended" and reservation is not None
                  and reservation.reservation_status in ("pending", "accepted"))
        if wanted:
            _note_worker_call(tx, step.task_sid, call.sid)
    if not wanted and step.instruction != "call":
        _hang_up(call.sid)  # the reservation ended while we dialed


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
        _set(row, "redirected" if status_callback else "ended", tx.now)


# -- the worker's leg (dequeue, conference) ----------------------------------------------------------

@bp.post("/instructions/worker/answer")
@twilio_webhook
def instruction_worker_answer():
    """The worker answered: bring the task's caller into the conference, accept, and join the worker to it."""
    reservation_sid = request.args.get("reservation", "")
    outcome, step = worker_answered(reservation_sid, form("CallSid"))
    if outcome != "bridged":
        return xml(hang_up(GOODBYES[outcome]))
    return xml(task_conference(room=step.task_sid, options=worker_conference(step.instruction, step.options),
                               action=public_url("voice.instruction_worker_after", reservation=reservation_sid)))


def worker_answered(reservation_sid: str, call_sid: str) -> tuple[str, Step | None]:
    """"bridged", or why not: "stray" (not our leg), "gone" (the offer ended), "caller-gone", "unavailable"."""
    step = read_step(reservation_sid)
    if step is None or step.instruction not in ("dequeue", "conference") or not step.is_leg(call_sid):
        return "stray", None
    if step.status in ("answered", "bridged"):
        return "bridged", step  # Twilio fetched the TwiML again: the caller is already on the way
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, reservation_sid)
        reservation = tx.session.get(Reservation, reservation_sid)
        if row.status not in ("dialing", "ringing") or reservation is None \
                or reservation.reservation_status not in ("pending", "accepted"):
            if row.status in ("dialing", "ringing"):
                _set(row, "ended", tx.now)
            return "gone", step
        row.worker_call_sid = call_sid
        _set(row, "answered", tx.now)
    try:
        _move_caller(step)
    except TelephonyUnavailable as err:
        log.warning("could not move caller %s for %s (%s): the caller stays in queue", step.caller_call_sid,
                    reservation_sid, err)
        _not_bridged(step, caller_gone=False)
        return "unavailable", step
    except TelephonyError as err:
        log.info("caller %s of task %s is no longer waiting (%s)", step.caller_call_sid, step.task_sid, err)
        _not_bridged(step, caller_gone=True)
        return "caller-gone", step
    _bridged(step)
    return "bridged", step


def _move_caller(step: Step) -> None:
    """Exactly this task's caller, never the head of a shared queue."""
    url = public_url("voice.instruction_caller", reservation=step.reservation_sid)
    queue_sid = _queue_of(step)
    if queue_sid:
        get_telephony().dequeue(queue_sid, step.caller_call_sid, url)
    else:
        get_telephony().redirect(step.caller_call_sid, url)


def _queue_of(step: Step) -> str | None:
    """The Twilio queue the caller waits in: the task's `queue_sid` attribute, or what the voice app saw."""
    with get_router().read() as session:
        task = session.get(Task, step.task_sid)
        call = session.get(Call, step.caller_call_sid)
    try:
        queue_sid = json.loads(task.attributes).get("queue_sid") if task is not None else None
    except (ValueError, AttributeError):
        queue_sid = None
    if isinstance(queue_sid, str) and queue_sid.startswith("QU"):
        return queue_sid
    return call.queue_sid if call is not None else None


def _bridged(step: Step) -> None:
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status == "answered":
            _set(row, "bridged", tx.now)
        reservation = tx.session.get(Reservation, step.reservation_sid)
        if reservation is None or reservation.reservation_status != "pending":
            if reservation is None or reservation.reservation_status != "accepted":
                log.warning("caller %s moved to the worker of %s, whose reservation is %s meanwhile",
                            step.caller_call_sid, step.reservation_sid,
                            reservation.reservation_status if reservation else "gone")
            return
        accept_reservation_in(tx, reservation)


def _not_bridged(step: Step, *, caller_gone: bool) -> None:
    """The caller could not be moved: gone (the task is canceled, as TaskRouter cancels a hung-up caller's)
    or Twilio unreachable (the reservation is rejected; the caller, untouched, waits for the next worker)."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        _set(row, "ended" if caller_gone else "failed", tx.now)
        task = tx.session.get(Task, step.task_sid)
        if caller_gone and task is not None and task.assignment_status in WAITING:
            cancel_task_in(tx, task, f"The caller's call {step.caller_call_sid} is no longer waiting")
            return
        reservation = tx.session.get(Reservation, step.reservation_sid)
        if reservation is not None and reservation.reservation_status == "pending":
            reject_reservation_in(tx, reservation, activity_sid=None)


@bp.post("/instructions/caller/connect")
@twilio_webhook
def instruction_caller():
    """Where the task's caller is moved to: the conference the worker joins."""
    step = read_step(request.args.get("reservation", ""))
    if step is None or step.instruction not in ("dequeue", "conference"):
        return xml(hang_up())
    return xml(task_conference(room=step.task_sid, options=caller_conference(step.instruction, step.options)))


@bp.post("/instructions/worker/status")
@twilio_webhook
def instruction_worker_status():
    """The worker leg's status callback: unanswered passes the caller on; hung up ends the worker's part."""
    step = read_step(request.args.get("reservation", ""))
    if step is None or not step.is_leg(form("CallSid")):
        return Response(status=204)  # a stray call decides nothing
    _forward_status(step)
    status = form("CallStatus")
    if status in NOT_ANSWERED or (status == "completed" and step.status in ("dialing", "ringing")):
        worker_missed(step, status)
    elif status == "completed":
        conversation_over(step)
    return Response(status=204)


@bp.post("/instructions/worker/after")
@twilio_webhook
def instruction_worker_after():
    """The worker's `<Dial>` ended: the conference is over (or they left it)."""
    step = read_step(request.args.get("reservation", ""))
    if step is not None:
        conversation_over(step)
    return xml(hang_up())


def worker_missed(step: Step, status: str) -> None:
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status not in ("dialing", "ringing"):
            return
        _set(row, "ended", tx.now)
        _pass_over(tx, step.reservation_sid)
    log.info("%s instruction for %s: the worker's phone: %s; the caller waits for the next worker",
             step.instruction, step.reservation_sid, status)


def conversation_over(step: Step) -> None:
    """The worker's part is over: a conference task completes (wraps up when multitasking); the worker
    moves to `post_work_activity_sid`. A dequeued task stays assigned, as TaskRouter leaves it."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status not in ("answered", "bridged", "redirected"):
            return
        _set(row, "ended", tx.now)
        reservation = tx.session.get(Reservation, step.reservation_sid)
        task = tx.session.get(Task, step.task_sid)
        if (step.instruction == "conference" and task is not None and task.assignment_status == "assigned"
                and reservation is not None and reservation.reservation_status == "accepted"):
            if tx.workspace.multi_task_enabled:
                wrap_task_in(tx, task)
            else:
                complete_task_in(tx, task, "conference ended")
        _post_work(tx, step)


def _post_work(tx, step: Step) -> None:
    activity_sid = step.options.get("post_work_activity_sid")
    worker = tx.session.get(Worker, step.worker_sid)
    if not activity_sid or worker is None:
        return
    try:
        activity = tx.activity(activity_sid)
        set_activity(tx, worker, activity, reject_pending=not activity.available)
    except RoutingError as err:  # the activity was deleted since, say: the call's end still counts
        log.warning("post_work_activity_sid %s not applied to %s: %s", activity_sid, step.worker_sid, err)


def _status_callback_of(step: Step) -> tuple[str | None, list[str] | None]:
    """The app's own status callback for the worker's leg, and the events it asked for."""
    options = step.options
    if step.instruction == "dequeue":
        return options.get("status_callback_url"), options.get("status_callback_events")
    return options.get("status_callback"), options.get("status_callback_event")


def _forward_status(step: Step) -> None:
    """Pass the worker leg's status on to the app's own status callback, through the outbox (signed, retried)."""
    url, wanted = _status_callback_of(step)
    event = {"queued": "initiated", "initiated": "initiated", "ringing": "ringing",
             "in-progress": "answered"}.get(form("CallStatus"), "completed")
    if not url or event not in (wanted or ("completed",)):
        return
    params = {**request.form.to_dict(), "TaskSid": step.task_sid, "ReservationSid": step.reservation_sid,
              "TaskCallSid": step.caller_call_sid or ""}
    with get_router().transaction(step.workspace_sid) as tx:
        tx.add_outbox(kind="event", url=url, payload=params, reservation_sid=step.reservation_sid,
                      ordering_key=form("CallSid") or step.reservation_sid)


# -- redirect: the redirected call's end -----------------------------------------------------------

@bp.post("/instructions/call/status")
@twilio_webhook
def instruction_call_status():
    """The status callback of a redirected call (set only when a post-work activity must follow its end)."""
    step = read_step(request.args.get("reservation", ""))
    if step is not None and step.caller_call_sid == form("CallSid") and form("CallStatus") in FINAL:
        conversation_over(step)
        _tell_contact_center(step.caller_call_sid)
    return Response(status=204)


def _tell_contact_center(call_sid: str) -> None:
    """Our status callback replaced the call's own; a caller of this app's contact center must still end there."""
    with get_router().read() as session:
        known = session.get(Call, call_sid) is not None
    if not known:
        return
    from callcenter.contact_center import NotLoaded, SpecError, current

    from . import flow

    try:
        flow.call_ended(current(), call_sid)
    except (NotLoaded, SpecError) as err:
        log.warning("call %s ended, but the contact center is not loaded: %s", call_sid, err)


# -- the listener's work: a reservation ended while the worker's phone rang --------------------------

def stop_ringing_legs(reservation_sids: list[str]) -> None:
    router = get_router()
    with router.read() as session:
        legs = [_step(row) for row in ringing_legs(session, reservation_sids)]
    for step in legs:
        with router.transaction(step.workspace_sid) as tx:
            row = tx.session.get(VoiceInstruction, step.reservation_sid)
            if row.status not in ("dialing", "ringing"):
                continue
            _set(row, "ended", tx.now)
            call_sid = row.worker_call_sid
        if call_sid:  # still dialing: the dial's own check hangs the new leg up
            _hang_up(call_sid)


def _hang_up(call_sid: str) -> None:
    try:
        get_telephony().hang_up(call_sid)
    except TelephonyError as err:  # already over, most likely
        log.info("could not hang up %s: %s", call_sid, err)

