"""The signed webhooks of a voice instruction's calls: the worker answers, the caller moves, the legs end.

`dequeue` and `conference`: when the worker answers, the reservation's timeout stops (a lease of
ours takes its place, should this process die) and exactly the task's caller is moved into the
conference named after the task: Queue Members API when the queue is known, else (or when the
caller is no longer in that queue) Calls API. Only then, and only if the worker is still on the
line and the offer still stands, is the reservation accepted. A caller whose call is over cancels
the task; a caller Twilio will not move waits on and the worker, not at fault, stays as they are.

A worker who hangs up during the move is passed over as after a missed call; the caller, already
in the room, hears hold music until the next worker's instruction moves them again. When the
worker's part ends, `post_work_activity_sid` applies; a `conference` task completes (wraps up when
multitasking) when the conference ends, which the server hears on its own conference status
callback. `redirect`: the redirected call's end applies `post_work_activity_sid`.

Every step is idempotent and decided inside the workspace's transaction, on the row as it is then:
Twilio's webhooks come at least once, in any order, to any process.
"""

from __future__ import annotations

import json
import logging

from flask import Response, current_app, request
from sqlalchemy import select

from callcenter.database import get_router
from callcenter.routing.errors import RoutingError
from callcenter.routing.models import Reservation, Task, Worker
from callcenter.routing.reservations import accept_reservation_in, reject_reservation_in
from callcenter.routing.tasks import cancel_task_in, complete_task_in, wrap_task_in
from callcenter.routing.workers import set_activity
from callcenter.signatures import twilio_webhook
from callcenter.telephony import TelephonyError, TelephonyUnavailable, get_telephony
from twiml.instructions import caller_conference, hang_up, task_conference, worker_conference

from . import bp
from .agents import NOT_ANSWERED
from .callers import xml
from .flow import WAITING, form, public_url
from .instruction_calls import OFFERED, Step, pass_over, read_step, set_status, status_callback_of
from .instructions import CONFERENCE_EVENTS, INSTRUCTION_TIMER, VoiceInstruction, is_own_url, queue_hang_up
from .models import Call

log = logging.getLogger("callcenter.voice")

# Longer than the caller's move takes: up to three requests (Members API, Calls API, the call's status).
MOVE_LEASE_SECONDS = 60
LEGS = ("dequeue", "conference")
FINAL = (*NOT_ANSWERED, "completed")
GOODBYES = {
    "stray": "",
    "gone": "This call is no longer needed. Goodbye.",
    "caller-gone": "Sorry, the caller hung up. Goodbye.",
    "unavailable": "Sorry, we could not connect the caller. Goodbye.",
}
# Twilio's conference events, by the names the instruction's `conference_status_callback_event` uses.
CONFERENCE_EVENT_NAMES = {
    "conference-start": "start", "conference-end": "end", "participant-join": "join", "participant-leave": "leave",
    "participant-mute": "mute", "participant-unmute": "mute", "participant-hold": "hold",
    "participant-unhold": "hold", "participant-speech-start": "speaker", "participant-speech-stop": "speaker",
}


# -- the worker answers: move the caller, then accept ------------------------------------------------

@bp.post("/instructions/worker/answer")
@twilio_webhook
def instruction_worker_answer():
    """The worker answered: bring the task's caller into the conference, accept, and join the worker to it."""
    reservation_sid = request.args.get("reservation", "")
    outcome, step = worker_answered(reservation_sid, form("CallSid"))
    if outcome != "bridged":
        return xml(hang_up(GOODBYES[outcome]))
    options = worker_conference(step.instruction, step.options, **_conference_callback(step))
    return xml(task_conference(room=step.task_sid, options=options,
                               action=public_url("voice.instruction_worker_after", reservation=reservation_sid)))


def worker_answered(reservation_sid: str, call_sid: str) -> tuple[str, Step | None]:
    """"bridged", or why not: "stray" (not our leg), "gone" (the offer ended, or someone else has the
    caller), "caller-gone" (the caller's call is over), "unavailable" (the caller could not be moved)."""
    step = read_step(reservation_sid)
    if step is None or step.instruction not in LEGS or not step.is_leg(call_sid):
        return "stray", None
    if step.status in ("answered", "bridged"):
        return "bridged", step  # Twilio fetched the TwiML again: the caller is already on the way
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, reservation_sid)
        reservation = tx.session.get(Reservation, reservation_sid)
        if row.status not in ("dialing", "ringing") or reservation is None \
                or reservation.reservation_status not in OFFERED:
            if row.status in ("dialing", "ringing"):
                set_status(row, "ended", tx.now)
                tx.cancel_timer(INSTRUCTION_TIMER, reservation_sid)
            return "gone", step
        if _caller_taken(tx, step):
            # Another worker of this task (several reservations at once) is bringing the caller in.
            set_status(row, "ended", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, reservation_sid)
            if reservation.reservation_status == "pending":
                reject_reservation_in(tx, reservation, activity_sid=None)
            return "gone", step
        row.worker_call_sid = call_sid
        set_status(row, "answered", tx.now)
        # The offer must not time out while the caller is on the way to this worker.
        tx.cancel_timer("reservation_timeout", reservation_sid)
        tx.schedule(INSTRUCTION_TIMER, reservation_sid, MOVE_LEASE_SECONDS)
    moved = _move_caller(step)
    if moved != "moved":
        _not_bridged(step, caller_gone=moved == "caller-gone")
        return moved, step
    return _bridged(step), step


def _caller_taken(tx, step: Step) -> bool:
    return tx.session.scalar(select(VoiceInstruction.reservation_sid).where(
        VoiceInstruction.task_sid == step.task_sid, VoiceInstruction.reservation_sid != step.reservation_sid,
        VoiceInstruction.status.in_(("answered", "bridged"))).limit(1)) is not None


def _move_caller(step: Step) -> str:
    """Move exactly this task's caller (never the head of a shared queue): "moved", "caller-gone" or
    "unavailable" (Twilio unreachable, or refusing to move a call that is still on)."""
    telephony = get_telephony()
    caller = step.caller_call_sid
    url = public_url("voice.instruction_caller", reservation=step.reservation_sid)
    try:
        queue_sid = _queue_of(step)
        if queue_sid:
            try:
                telephony.dequeue(queue_sid, caller, url)
                return "moved"
            except TelephonyUnavailable:
                raise
            except TelephonyError as err:  # not (or no longer) in that queue: the call may still be on
                log.info("caller %s is not in queue %s (%s): moving the call itself", caller, queue_sid, err)
        try:
            telephony.redirect(caller, url)
            return "moved"
        except TelephonyUnavailable:
            raise
        except TelephonyError as err:
            refusal = err
        if _call_is_over(caller):
            log.info("caller %s of task %s is no longer waiting (%s)", caller, step.task_sid, refusal)
            return "caller-gone"
        log.error("caller %s of task %s is still on the line, but Twilio refused to move it (%s, code %s): "
                  "the caller waits on", caller, step.task_sid, refusal, refusal.code)
        return "unavailable"
    except TelephonyUnavailable as err:
        log.warning("could not move caller %s for %s (%s): the caller waits on", caller, step.reservation_sid, err)
        return "unavailable"


def _call_is_over(call_sid: str) -> bool:
    try:
        return get_telephony().fetch_call(call_sid).status in FINAL
    except TelephonyUnavailable:
        raise
    except TelephonyError as err:
        return err.status == 404  # Twilio has no such call (any more)


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


def _bridged(step: Step) -> str:
    """The caller is in the room: accept if the worker is still there and the offer stands ("bridged");
    otherwise "gone", and the caller waits there for the next worker (hung up if the task is over)."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        reservation = tx.session.get(Reservation, step.reservation_sid)
        if row.status == "answered" and reservation is not None and reservation.reservation_status in OFFERED:
            set_status(row, "bridged", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
            if reservation.reservation_status == "pending":
                accept_reservation_in(tx, reservation)
            return "bridged"
        if row.status in ("answered", "hung-up"):
            if row.status == "hung-up":
                pass_over(tx, step.reservation_sid)  # answered, then hung up: as a missed call
            set_status(row, "ended", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
        task = tx.session.get(Task, step.task_sid)
        over = task is None or task.assignment_status in ("canceled", "completed")
        if over:
            queue_hang_up(tx, row, step.caller_call_sid)  # nobody will come for them
    log.warning("caller %s was moved for reservation %s, which can no longer be accepted (the worker hung up, "
                "or the offer ended); %s", step.caller_call_sid, step.reservation_sid,
                "the task is over: the caller is hung up" if over else "the caller waits for the next worker")
    return "gone"


def _not_bridged(step: Step, *, caller_gone: bool) -> None:
    """The caller could not be moved: gone (the task is canceled, as TaskRouter cancels a hung-up caller's)
    or not movable now (the reservation is rejected; the worker, not at fault, stays as they are)."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status in ("answered", "hung-up"):
            set_status(row, "ended" if caller_gone else "failed", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
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
    if step is None or step.instruction not in LEGS:
        return xml(hang_up())
    options = caller_conference(step.instruction, step.options, **_conference_callback(step))
    return xml(task_conference(room=step.task_sid, options=options))


# -- the worker's leg ends ---------------------------------------------------------------------------

@bp.post("/instructions/worker/status")
@twilio_webhook
def instruction_worker_status():
    """The worker leg's status callback: unanswered passes the caller on; hung up ends the worker's part."""
    step = read_step(request.args.get("reservation", ""))
    call_sid = form("CallSid")
    if step is None or step.instruction not in LEGS or not step.is_leg(call_sid):
        return Response(status=204)  # a stray call decides nothing
    _forward_call_status(step)
    status = form("CallStatus")
    if status in FINAL:
        worker_leg_ended(step, call_sid, status)
    return Response(status=204)


@bp.post("/instructions/worker/after")
@twilio_webhook
def instruction_worker_after():
    """The worker's `<Dial>` ended: they left the conference (or it ended)."""
    step = read_step(request.args.get("reservation", ""))
    call_sid = form("CallSid")
    if step is not None and step.instruction in LEGS and step.is_leg(call_sid):
        worker_leg_ended(step, call_sid, "completed")
    return xml(hang_up())


def worker_leg_ended(step: Step, call_sid: str, status: str) -> None:
    """The worker's leg is over (or they left the conference); what that means depends on how far we got."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.worker_call_sid not in (None, call_sid):
            return
        row.worker_call_sid = call_sid
        before = row.status
        if before in ("dialing", "ringing"):  # never answered (or hung up before the TwiML): missed
            set_status(row, "ended", tx.now)
            tx.cancel_timer(INSTRUCTION_TIMER, step.reservation_sid)
            pass_over(tx, step.reservation_sid)
        elif before == "answered":  # hung up while the caller was on the way: the move settles it
            set_status(row, "hung-up", tx.now)
        elif before == "bridged":
            _post_work(tx, step)
            # A conference goes on without the worker: its task completes when it ends.
            set_status(row, "worker-left" if step.instruction == "conference" else "ended", tx.now)
    if before in ("dialing", "ringing"):
        log.info("%s instruction for %s: the worker's phone: %s; the caller waits for the next worker",
                 step.instruction, step.reservation_sid, status)


# -- a conference's end ------------------------------------------------------------------------------

@bp.post("/instructions/conference/status")
@twilio_webhook
def instruction_conference_status():
    """The `conference` instruction's conference: its end completes the task; the app's own events pass on."""
    step = read_step(request.args.get("reservation", ""))
    if step is None or step.instruction != "conference" or form("FriendlyName") != step.task_sid:
        return Response(status=204)
    _forward_conference_event(step)
    if form("StatusCallbackEvent") == "conference-end":
        conference_ended(step)
    return Response(status=204)


def conference_ended(step: Step) -> None:
    """The task completes (wraps up when multitasking); the worker, if still counted in, moves on."""
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status not in ("bridged", "worker-left"):
            return
        reservation = tx.session.get(Reservation, step.reservation_sid)
        task = tx.session.get(Task, step.task_sid)
        if (task is not None and task.assignment_status == "assigned" and reservation is not None
                and reservation.reservation_status == "accepted"):
            if tx.workspace.multi_task_enabled:
                wrap_task_in(tx, task)
            else:
                complete_task_in(tx, task, "conference ended")
        if row.status == "bridged":
            _post_work(tx, step)
        set_status(row, "ended", tx.now)


def _conference_callback(step: Step) -> dict:
    """The server's own status callback on a `conference` instruction's `<Conference>`, with `end` and the
    events the instruction's `conference_status_callback` wants."""
    if step.instruction != "conference":
        return {}
    wanted = _conference_events_wanted(step)
    return {"status_callback": public_url("voice.instruction_conference_status", reservation=step.reservation_sid),
            "status_events": [event for event in CONFERENCE_EVENTS if event == "end" or event in wanted]}


def _conference_events_wanted(step: Step) -> tuple[str, ...]:
    if not step.options.get("conference_status_callback"):
        return ()
    return tuple(step.options.get("conference_status_callback_event") or ("start", "end"))  # Twilio's default


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


# -- passing status callbacks on to the app that gave the instruction --------------------------------

def _forward_call_status(step: Step) -> None:
    """Pass the worker leg's status on to the app's own status callback, through the outbox (signed, retried)."""
    url, wanted = status_callback_of(step)
    event = {"queued": "initiated", "initiated": "initiated", "ringing": "ringing",
             "in-progress": "answered"}.get(form("CallStatus"), "completed")
    if event in (wanted or ("completed",)):
        params = {**request.form.to_dict(), "TaskSid": step.task_sid, "ReservationSid": step.reservation_sid,
                  "TaskCallSid": step.caller_call_sid or ""}
        _forward(step, url, params, ordering_key=form("CallSid"))


def _forward_conference_event(step: Step) -> None:
    if CONFERENCE_EVENT_NAMES.get(form("StatusCallbackEvent")) in _conference_events_wanted(step):
        _forward(step, step.options.get("conference_status_callback"), request.form.to_dict(),
                 ordering_key=form("ConferenceSid"))


def _forward(step: Step, url: str | None, params: dict[str, str], *, ordering_key: str) -> None:
    if not url:
        return
    if is_own_url(current_app, url):  # refused when given; an older row's must not loop either
        log.error("status callback %s of reservation %s points at this server: not forwarded", url,
                  step.reservation_sid)
        return
    with get_router().transaction(step.workspace_sid) as tx:
        tx.add_outbox(kind="event", url=url, payload=params, reservation_sid=step.reservation_sid,
                      ordering_key=ordering_key[:34] or step.reservation_sid)


# -- redirect: the redirected call's end -----------------------------------------------------------

@bp.post("/instructions/call/status")
@twilio_webhook
def instruction_call_status():
    """The status callback of a redirected call (set only when a post-work activity must follow its end)."""
    step = read_step(request.args.get("reservation", ""))
    if step is not None and step.caller_call_sid == form("CallSid") and form("CallStatus") in FINAL:
        redirected_call_ended(step)
        _tell_contact_center(step.caller_call_sid)
    return Response(status=204)


def redirected_call_ended(step: Step) -> None:
    with get_router().transaction(step.workspace_sid) as tx:
        row = tx.session.get(VoiceInstruction, step.reservation_sid)
        if row.status != "redirected":
            return
        _post_work(tx, step)
        set_status(row, "ended", tx.now)


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
