"""The call flow's engine side: each step is one transaction on the workspace, and Twilio is called after commit.

Webhook views stay thin: they read Twilio's parameters, call one function here, and answer with
TwiML. Everything here is idempotent, because Twilio and the engine both deliver at least once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, request, url_for
from sqlalchemy import select

from callcenter.contact_center import ContactCenter
from callcenter.database import get_router
from callcenter.phones import caller_shown, is_phone_number, phone_of
from callcenter.routing.errors import RoutingError
from callcenter.routing.explain import ahead_in_queue
from callcenter.routing.models import Activity, Reservation, Task, TaskQueue, Timer, Worker, Workspace
from callcenter.routing.reservations import accept_reservation_in, active_reservation, reject_reservation_in
from callcenter.routing.tasks import DEFAULT_TTL, cancel_task_in, complete_task_in, create_task_in, wrap_task_in
from callcenter.routing.timers import register_timer
from callcenter.routing.workers import set_activity
from callcenter.telephony import TelephonyError, TelephonyUnavailable, TelephonyUnreachable, get_telephony

from .models import AgentLeg, Call

log = logging.getLogger("callcenter.voice")

WAITING = ("pending", "reserved")
# An agent leg whose caller has been moved to the conference: "bridged", then "joined" once the agent is in it.
CALLER_MOVED = ("bridged", "joined")
# An agent leg whose call is up (ringing, or connected to the agent); "closing": up, playing a goodbye, and
# holding the agent in their activity until it hangs up (`_hold_until_hung_up`).
LIVE_LEG = ("ringing", "answered", *CALLER_MOVED)
WRAP_UP_TIMER = "voice_wrap_up"
RELEASE_TIMER = "voice_release_agent"
# A goodbye takes seconds and Twilio's "completed" comes right after; a phone taken on the console mid-prompt
# hears the prompt and its 8 s wait out first (under 40 s).
RELEASE_AFTER = timedelta(seconds=60)
# An answered offer's timeout: the prompt (under 20 s), its 8 s wait for a key, and room for the webhooks.
RESERVATION_AFTER_ANSWER = timedelta(seconds=60)


def calls_changed(center: ContactCenter, call_sid: str) -> None:
    """Tell whoever listens (the dashboards' live updates) that a call's row changed without an engine event."""
    for listener in current_app.extensions.get("call_change_listeners", []):
        listener(center.workspace_sid, call_sid)


def public_url(endpoint: str, **values: str) -> str:
    """An absolute URL Twilio can reach: PUBLIC_BASE_URL when set (ngrok), else the request's own host."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


# -- the caller ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CallerInfo:
    call_sid: str
    from_number: str
    to_number: str


def task_of_call(call_sid: str) -> str | None:
    """The task of a caller's call, if the caller already has one (a read: no write lock)."""
    with get_router().read() as session:
        return session.scalar(select(Call.task_sid).where(Call.call_sid == call_sid))


def start_task(center: ContactCenter, caller: CallerInfo, choices: dict) -> str | None:
    """Create the call's task (once per CallSid) and route it; returns the task sid (None: the call is over)."""
    with get_router().transaction(center.workspace_sid) as tx:
        row = tx.session.get(Call, caller.call_sid)
        if row is None:
            row = Call(call_sid=caller.call_sid, workspace_sid=center.workspace_sid, from_number=caller.from_number,
                       to_number=caller.to_number, choices="{}", date_created=tx.now,
                       supervisors_notified=False)
            tx.session.add(row)
        if row.task_sid is not None:
            return row.task_sid  # Twilio retried the webhook: the caller already has a task
        if row.date_ended is not None:
            return None  # the caller hung up before their choice reached us
        attributes = {"type": "inbound_call", "call_sid": row.call_sid, "from": row.from_number,
                      "to": row.to_number, "direction": "inbound", **choices}
        task = create_task_in(tx, attributes=json.dumps(attributes), workflow_sid=center.workflow_sid,
                              task_channel="voice", ttl=center.voice.max_wait_seconds or DEFAULT_TTL)
        row.task_sid = task.sid
        row.choices = json.dumps(choices)
        row.date_enqueued = tx.now
        return task.sid


def place_in_line(task: Task) -> int | None:
    """The caller's place among those waiting for the same department (its task queue, in the queue's order),
    1 for the next one served; None when the task is in no queue. Twilio's QueuePosition counts every caller of
    the shared Twilio queue, whatever their department or priority."""
    with get_router().read() as session:
        queue = session.get(TaskQueue, task.task_queue_sid) if task.task_queue_sid else None
        return ahead_in_queue(session, task, queue) + 1 if queue is not None else None


def note_queue(center: ContactCenter, call_sid: str, queue_sid: str | None) -> Task | None:
    """Remember the Twilio queue the caller waits in (to dequeue exactly them); returns their task."""
    router = get_router()
    with router.read() as session:
        call = session.get(Call, call_sid)
        task = session.get(Task, call.task_sid) if call is not None and call.task_sid else None
    if call is not None and queue_sid and call.queue_sid != queue_sid:
        with router.transaction(center.workspace_sid) as tx:
            tx.session.get(Call, call_sid).queue_sid = queue_sid
    return task


def abandon(center: ContactCenter, call_sid: str, reason: str = "caller hung up") -> None:
    """The caller hung up before reaching an agent: cancel the task (or, if an agent had already accepted it on
    the console, complete it and free them) and stop any phone ringing for it."""
    ringing: list[str] = []
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.get(Call, call_sid)
        if call is None:
            return
        call.date_ended = call.date_ended or tx.now
        task = tx.session.get(Task, call.task_sid) if call.task_sid else None
        if task is not None and task.assignment_status in WAITING:
            call.outcome = call.outcome or "abandoned"
            ringing = _end_legs(tx, task.sid)
            cancel_task_in(tx, task, reason)
        elif task is not None and task.assignment_status == "assigned":
            call.outcome = "abandoned"  # accepted, but nobody talked: not an answered call
            ringing = _end_legs(tx, task.sid)
            _finish_unconnected(tx, center, task, f"{reason} before reaching the agent")
    _hang_up(ringing)


def _finish_unconnected(tx, center: ContactCenter, task: Task, reason: str, *,
                        agent_on_the_line: str | None = None) -> None:
    """Complete an accepted task whose caller never reached the agent; the agent, if still in the on-a-call
    activity the flow put them in, becomes available (no wrap-up: there was no conversation): at once, or, when
    their phone is still on the line (`agent_on_the_line`, the reservation whose leg hears a goodbye), once it
    hangs up."""
    reservation = active_reservation(tx, task)
    complete_task_in(tx, task, reason)
    if agent_on_the_line is not None and _hold_until_hung_up(tx, center, agent_on_the_line):
        return
    worker = tx.session.get(Worker, reservation.worker_sid) if reservation is not None else None
    if worker is not None and worker.activity_sid == center.role_sids.get("busy", worker.activity_sid):
        set_activity(tx, worker, tx.activity(center.activity_for("available")))


def _hold_until_hung_up(tx, center: ContactCenter, reservation_sid: str) -> bool:
    """The agent's phone, still connected, hears a goodbye: they stay in the on-a-call activity the flow put
    them in until it hangs up (`release_agent`), or for RELEASE_AFTER at most should that news be lost. Made
    available now, they would be rung for the next caller on a line still in use: busy, then taken offline for
    it. False when their call is no longer up, or they are not in that activity (nothing to hold, or to free)."""
    leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
    if leg is None or leg.status not in LIVE_LEG:
        return False
    worker = tx.session.get(Worker, leg.worker_sid)
    if worker is None or center.role_sids.get("busy") is None or worker.activity_sid != center.role_sids["busy"]:
        return False
    leg.status, leg.date_updated = "closing", tx.now
    tx.schedule(RELEASE_TIMER, reservation_sid, tx.now + RELEASE_AFTER)
    return True


def release_agent(center: ContactCenter, reservation_sid: str) -> bool:
    """The agent's call, held after the caller was lost (`_hold_until_hung_up`), is over: free the agent.
    False when that leg was not held (the status callback means something else)."""
    with get_router().transaction(center.workspace_sid) as tx:
        released = release_agent_in(tx, reservation_sid)
        if released:
            tx.cancel_timer(RELEASE_TIMER, reservation_sid)
        return released


def release_agent_in(tx, reservation_sid: str) -> bool:
    """Back to the activity they were in when the reservation was made (an available one), unless their
    activity changed since their phone was held (in the on-a-call activity)."""
    leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
    if leg is None or leg.status != "closing":
        return False
    held_since = leg.date_updated
    leg.status, leg.date_updated = "ended", tx.now
    reservation = tx.session.get(Reservation, reservation_sid)
    worker = tx.session.get(Worker, leg.worker_sid)
    if worker is None or worker.date_status_changed > held_since or tx.activity(worker.activity_sid).available:
        return True
    back = reservation.worker_previous_activity_sid if reservation is not None else None
    if back is None or not tx.activity(back).available:
        # The reservation went with its task (deleted meanwhile): the workspace's first available activity.
        back = tx.session.scalar(select(Activity.sid).where(Activity.workspace_sid == worker.workspace_sid,
                                                            Activity.available.is_(True))
                                 .order_by(Activity.date_created, Activity.sid).limit(1))
    if back is not None:
        set_activity(tx, worker, tx.activity(back))
    return True


def call_ended(center: ContactCenter, call_sid: str) -> None:
    """The caller's call is over, whatever stage it was at (Twilio's status callback)."""
    router = get_router()
    with router.read() as session:
        call = session.get(Call, call_sid)
        task = session.get(Task, call.task_sid) if call is not None and call.task_sid else None
    if call is None:
        # Hung up in the menu: remember it, so a menu choice still in flight creates no task.
        with router.transaction(center.workspace_sid) as tx:
            arrived = tx.session.get(Call, call_sid) is not None
            if not arrived:
                tx.session.add(Call(call_sid=call_sid, workspace_sid=center.workspace_sid, choices="{}",
                                    outcome="abandoned", date_created=tx.now, date_ended=tx.now,
                                    supervisors_notified=False))
        if arrived:  # the menu choice committed its task between the read and the lock: end that call now
            call_ended(center, call_sid)
        return
    if task is None or task.assignment_status in WAITING:
        abandon(center, call_sid)
    elif task.assignment_status == "assigned" and _rung_but_not_reached(task.sid):
        abandon(center, call_sid)  # accepted on the console while the agent's phone rang: nobody talked
    elif task.assignment_status == "assigned":
        end_conversation(center, task.sid)
    else:
        with router.transaction(center.workspace_sid) as tx:
            row = tx.session.get(Call, call_sid)
            row.date_ended = row.date_ended or tx.now
    if call.outcome == "missed" and not call.supervisors_notified:
        notify_supervisors(center, call_sid)  # hung up without leaving a message


def _rung_but_not_reached(task_sid: str) -> bool:
    """The task's agent was being rung (or answered), and the caller was never moved to them."""
    with get_router().read() as session:
        statuses = set(session.scalars(select(AgentLeg.status).where(AgentLeg.task_sid == task_sid)))
    return bool(statuses & {"dialing", "ringing", "answered"}) and not statuses & set(CALLER_MOVED)


def send_to_voicemail(center: ContactCenter, task_sid: str) -> None:
    """The caller's task was canceled while they waited (workflow timeout, TTL): offer voicemail."""
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
        if call is None or call.outcome is not None:
            return  # not a call, or already ended (hung up, answered, already sent)
        call.outcome = "missed"
    calls_changed(center, call.call_sid)
    try:
        move_caller(call, public_url("voice.voicemail"))
    except TelephonyUnavailable as err:
        # Still a missed call: the hold loop finds the task gone and sends the caller to voicemail itself.
        log.warning("could not move caller %s to voicemail (%s); the hold loop will", call.call_sid, err)
    except TelephonyError as err:
        # Gone from the queue: hung up just now (still a missed call: supervisors hear of it), or already
        # on their way to voicemail through the hold loop.
        log.info("caller %s is no longer in the queue (%s)", call.call_sid, err)


def mark_missed(center: ContactCenter, call_sid: str, reason: str) -> None:
    """The caller left the queue without an agent (Twilio error, queue full): cancel, offer voicemail."""
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.get(Call, call_sid)
        if call is None:
            return
        # "answered" too: accepted, but the caller never reached the agent.
        call.outcome = "missed" if call.outcome in (None, "answered") else call.outcome
        task = tx.session.get(Task, call.task_sid) if call.task_sid else None
        ringing = _end_legs(tx, task.sid) if task is not None else []
        if task is not None and task.assignment_status in WAITING:
            cancel_task_in(tx, task, reason)
    _hang_up(ringing)


def move_caller(call: Call, url: str) -> None:
    """Take this caller (not the head of a shared queue) to the TwiML at `url`.

    A caller known to wait in a queue is dequeued by CallSid; if Twilio no longer has them there, they
    hung up or already left the queue (the hold loop sends a caller without a task to voicemail), and
    redirecting the call would only interrupt what they hear now: that is reported as an error.
    """
    telephony = get_telephony()
    if call.queue_sid:
        telephony.dequeue(call.queue_sid, call.call_sid, url)
        return
    telephony.redirect(call.call_sid, url)


def save_recording(center: ContactCenter, call_sid: str, url: str | None, sid: str | None,
                   duration: str | None) -> bool:
    """Keep the voicemail with the missed call; False when this recording was already kept (a retry)."""
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.get(Call, call_sid)
        if call is None or (call.recording_sid is not None and call.recording_sid == sid):
            return False
        call.outcome = call.outcome or "missed"
        call.recording_url, call.recording_sid = url, sid
        call.recording_duration = int(duration) if duration and duration.isdigit() else None
        kept = bool(url)
    calls_changed(center, call_sid)
    return kept


def save_transcription(center: ContactCenter, call_sid: str, text: str | None) -> None:
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.get(Call, call_sid)
        if call is None:
            return
        call.transcription = text
    calls_changed(center, call_sid)


def _voicemail_link(call: Call) -> str:
    """The dashboard's page of the voicemail (a supervisor signs in; Twilio may refuse the recording's own URL
    without the account's credentials), when the app has a public address; else the recording's URL."""
    if not current_app.config.get("PUBLIC_BASE_URL") or "web.voicemail" not in current_app.view_functions:
        return call.recording_url
    return public_url("web.voicemail", call_sid=call.call_sid)


def notify_supervisors(center: ContactCenter, call_sid: str, *, voicemail: bool = False) -> None:
    """Tell every supervisor about a missed call, once; and about its voicemail when one arrives.

    Twilio does not order the recording callback and the call's status callback: a caller who hangs
    up as they finish a message may be reported "no voicemail" first, then their voicemail follows.
    """
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.get(Call, call_sid)
        if call is None or (call.supervisors_notified and not voicemail):
            return
        call.supervisors_notified = True
    choices = ", ".join(str(value) for value in json.loads(call.choices or "{}").values())
    body = f"Missed call from {caller_shown(call.from_number)}" + (f" ({choices})" if choices else "")
    body += f". Voicemail: {_voicemail_link(call)}" if call.recording_url else ". No voicemail was left."
    for number in center.voice.supervisors:
        send_sms(number, body, from_=call.to_number)


# -- the agent -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    """What the assignment callback needs to ring an agent."""

    reservation_sid: str
    task_sid: str
    worker_sid: str
    caller: Call | None
    contact_uri: str | None
    leg_exists: bool


def offer(center: ContactCenter, reservation_sid: str, task_sid: str, worker_sid: str,
          worker_attributes: dict) -> Offer:
    with get_router().read() as session:
        caller = session.scalar(select(Call).where(Call.task_sid == task_sid))
        leg = session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
    contact_uri = worker_attributes.get("contact_uri")
    return Offer(reservation_sid, task_sid, worker_sid, caller, contact_uri if isinstance(contact_uri, str) else None,
                 leg is not None)


def claim_ring(center: ContactCenter, offer: Offer) -> bool:
    """Claim the right to ring for this reservation: False when a ring is already placed or being placed.

    The engine retries an assignment callback it gave up waiting for while we were still dialing;
    the claim (a row keyed by the reservation) makes sure the agent is rung once.
    """
    with get_router().transaction(center.workspace_sid) as tx:
        if tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == offer.reservation_sid)) is not None:
            return False
        # Until Twilio gives the call its sid, the row is keyed by the reservation's own sid.
        tx.session.add(AgentLeg(call_sid=offer.reservation_sid, reservation_sid=offer.reservation_sid,
                                task_sid=offer.task_sid, worker_sid=offer.worker_sid,
                                workspace_sid=center.workspace_sid, status="dialing",
                                date_created=tx.now, date_updated=tx.now))
        return True


def release_claim(center: ContactCenter, reservation_sid: str) -> None:
    """Dialing failed before Twilio placed a call: a retry may ring again."""
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid,
                                                       AgentLeg.status == "dialing"))
        if leg is not None:
            tx.session.delete(leg)


def ring_agent(center: ContactCenter, offer: Offer) -> str:
    """Ring the agent for a reservation (claimed with `claim_ring`); returns the agent leg's CallSid."""
    caller = offer.caller
    values = {"reservation": offer.reservation_sid}
    # A phone shows our number (Twilio only lets us present our own); a browser client can show the caller's.
    from_ = (center.voice.caller_id or current_app.config.get("TWILIO_PHONE_NUMBER") or caller.to_number
             if is_phone_number(offer.contact_uri) else caller.from_number or caller.to_number)
    call = get_telephony().ring(to=offer.contact_uri, from_=from_, url=public_url("voice.agent_answer", **values),
                                status_callback=public_url("voice.agent_status", **values),
                                timeout=center.voice.ring_seconds)
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == offer.reservation_sid))
        if leg is not None and leg.status == "dialing":
            leg.call_sid, leg.status, leg.date_updated = call.sid, "ringing", tx.now
        reservation = tx.session.get(Reservation, offer.reservation_sid)
        # Still wanted: pending, or accepted on the agent console before the phone rang.
        still_wanted = reservation is not None and reservation.reservation_status in ("pending", "accepted")
    if not still_wanted:
        _hang_up([call.sid])  # the caller left or another agent took it while we dialed
    return call.sid


def caller_of(task_sid: str) -> Call | None:
    with get_router().read() as session:
        return session.scalar(select(Call).where(Call.task_sid == task_sid))


def leg_of(reservation_sid: str) -> AgentLeg | None:
    with get_router().read() as session:
        return session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))


def adopt_leg(center: ContactCenter, reservation_sid: str, call_sid: str) -> None:
    """A webhook of the agent's call arrived while the ring is still claimed as "dialing" (Twilio's answer to
    placing it is still on its way, or was lost): that call is the leg, so it can be stopped and followed.
    A ring whose offer is over meanwhile (the caller hung up, the reservation timed out) is hung up: nothing
    else would stop it, since the offer ended while nobody knew the call."""
    leg = leg_of(reservation_sid)
    if leg is None or leg.status != "dialing" or not call_sid.startswith("CA"):
        return
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
        if leg is None or leg.status != "dialing":
            return
        reservation = tx.session.get(Reservation, reservation_sid)
        wanted = reservation is not None and reservation.reservation_status in ("pending", "accepted")
        leg.call_sid, leg.status, leg.date_updated = call_sid, "ringing" if wanted else "ended", tx.now
    if not wanted:
        _hang_up([call_sid])


def is_current_leg(reservation_sid: str, call_sid: str) -> bool:
    """True when `call_sid` is the call we placed for this reservation (not a stray duplicate)."""
    leg = leg_of(reservation_sid)
    return leg is None or leg.call_sid == call_sid or leg.status == "dialing"


def reservation_state(reservation_sid: str) -> tuple[Reservation | None, Task | None, Worker | None]:
    with get_router().read() as session:
        reservation = session.get(Reservation, reservation_sid)
        if reservation is None:
            return None, None, None
        return reservation, session.get(Task, reservation.task_sid), session.get(Worker, reservation.worker_sid)


def agent_joined(center: ContactCenter, reservation_sid: str, call_sid: str) -> None:
    """The agent is in the conference room: from now on their hang-up ends a conversation."""
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
        if leg is not None and leg.call_sid == call_sid and leg.status == "bridged":
            leg.status, leg.date_updated = "joined", tx.now


def agent_answered(center: ContactCenter, reservation_sid: str) -> None:
    """The agent picked up and hears who calls: the offer stands while they do. Its timeout, sized for the ring,
    would otherwise cut them off mid-prompt (a caller's number read digit by digit takes a while) and take them
    offline; from now on their key, the prompt's own wait, or their hang-up decides (RESERVATION_AFTER_ANSWER
    remains the guard should all of Twilio's news be lost)."""
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
        if leg is not None and leg.status == "ringing":
            leg.status, leg.date_updated = "answered", tx.now
            _time_to_decide(tx, reservation_sid)


def prompt_again(center: ContactCenter, reservation_sid: str) -> None:
    """The agent hears the prompt once more (a wrong key): the offer stands as long again."""
    with get_router().transaction(center.workspace_sid) as tx:
        reservation = tx.session.get(Reservation, reservation_sid)
        if reservation is not None and reservation.reservation_status == "pending":
            _time_to_decide(tx, reservation_sid)


def _time_to_decide(tx, reservation_sid: str) -> None:
    """The offer's timeout, at least RESERVATION_AFTER_ANSWER from now (never brought forward)."""
    due = tx.session.scalar(select(Timer.due_at).where(Timer.kind == "reservation_timeout",
                                                        Timer.subject_sid == reservation_sid))
    if due is not None and due < tx.now + RESERVATION_AFTER_ANSWER:
        tx.schedule("reservation_timeout", reservation_sid, tx.now + RESERVATION_AFTER_ANSWER)


def accept(center: ContactCenter, reservation_sid: str) -> Call | None:
    """The agent took the call: accept the reservation. Returns the caller to bridge, or None if too late."""
    try:
        with get_router().transaction(center.workspace_sid) as tx:
            reservation = tx.session.get(Reservation, reservation_sid)
            if reservation is None or reservation.reservation_status != "pending":
                return None
            accept_reservation_in(tx, reservation)
            call = tx.session.scalar(select(Call).where(Call.task_sid == reservation.task_sid))
            if call is not None:
                call.outcome, call.worker_sid, call.date_answered = "answered", reservation.worker_sid, tx.now
            return call
    except RoutingError as err:
        log.info("reservation %s could not be accepted: %s", reservation_sid, err)
        return None


def decline(center: ContactCenter, reservation_sid: str, why: str) -> None:
    """No answer, busy, declined: reject, move the agent to the timeout activity, and tell them by SMS."""
    moved_worker = None
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
        if leg is not None and leg.status in ("ringing", "answered"):
            leg.status, leg.date_updated = "ended", tx.now
        reservation = tx.session.get(Reservation, reservation_sid)
        if reservation is None or reservation.reservation_status != "pending":
            return
        offline = tx.workspace.timeout_activity_sid or center.activity_for("offline")
        reject_reservation_in(tx, reservation, activity_sid=offline)
        moved_worker = tx.session.get(Worker, reservation.worker_sid)
    log.info("reservation %s rejected: %s", reservation_sid, why)
    tell_agent_how_to_come_back(center, moved_worker)


def tell_agent_how_to_come_back(center: ContactCenter, worker: Worker | None) -> None:
    if worker is None:
        return
    # The number the SMS commands know the agent by: a reply of ON from it is recognized.
    phone = phone_of(worker.attributes or "{}")
    if phone is None:
        return
    send_sms(phone, f"You missed a call, {worker.friendly_name[:40]}, so you are now Offline. Reply ON to take "
             "calls again.")


def caller_gone(center: ContactCenter, task_sid: str, agent_on_the_line: str | None = None) -> None:
    """The agent accepted but the caller had already hung up: finish the task, free the agent (once their
    phone, if `agent_on_the_line`, has hung up)."""
    with get_router().transaction(center.workspace_sid) as tx:
        task = tx.session.get(Task, task_sid)
        call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
        if call is not None:
            call.outcome, call.date_ended = "abandoned", call.date_ended or tx.now
        if task is None or task.assignment_status not in ("assigned", "wrapping"):
            return
        _finish_unconnected(tx, center, task, "caller hung up before the agent answered",
                            agent_on_the_line=agent_on_the_line)


def requeue(center: ContactCenter, task_sid: str, agent_activity_sid: str | None = None, *,
            agent_on_the_line: str | None = None) -> None:
    """The caller never reached the agent: give them a new task, still waiting in queue, in their place in line
    (it starts when they first joined the queue) and ahead of callers of their priority. The agent goes to
    `agent_activity_sid` (default: available) before the new task is routed, so it is not offered back to them;
    an agent whose phone is still on the line (`agent_on_the_line`) stays as they are until it hangs up.
    The old task's agent legs end (their calls are over or going: nothing is hung up here)."""
    with get_router().transaction(center.workspace_sid) as tx:
        task = tx.session.get(Task, task_sid)
        call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
        if task is None or call is None or task.assignment_status != "assigned":
            return
        reservation = active_reservation(tx, task)
        complete_task_in(tx, task, "could not connect the caller; routed again")
        held = agent_on_the_line is not None and _hold_until_hung_up(tx, center, agent_on_the_line)
        if reservation is not None and not held:
            set_activity(tx, tx.session.get(Worker, reservation.worker_sid),
                         tx.activity(agent_activity_sid or center.activity_for("available")))
        replacement = create_task_in(tx, attributes=task.attributes, workflow_sid=center.workflow_sid,
                                     priority=task.priority + 1, task_channel="voice",
                                     ttl=center.voice.max_wait_seconds or DEFAULT_TTL,
                                     virtual_start_time=call.date_enqueued or task.virtual_start_time)
        call.task_sid, call.outcome, call.worker_sid, call.date_answered = replacement.sid, None, None, None
        _end_legs(tx, task_sid, statuses=("dialing", "ringing", "answered", *CALLER_MOVED))


def return_caller_to_line(center: ContactCenter, task_sid: str, why: str) -> None:
    """The caller was moved toward an agent who will not come: a new task, still first in line (`requeue`), and
    their call is sent to the conference's URL again, which now puts them back in the queue. Wherever the
    caller is (still in the queue, on the way, alone in the room), that is where they end up."""
    caller = caller_of(task_sid)
    log.warning("caller of task %s goes back in line: %s", task_sid, why)
    requeue(center, task_sid)
    if caller is None:
        return
    try:
        get_telephony().redirect(caller.call_sid, public_url("voice.caller_connect"))
    except TelephonyError as err:  # hung up meanwhile, or Twilio down: the hold loop or the status callback decides
        log.warning("could not send caller %s back to the queue: %s", caller.call_sid, err)


def end_conversation(center: ContactCenter, task_sid: str, *, agent_left: bool = False) -> None:
    """The bridged call is over: the task wraps up and the agent goes to wrap-up, then back to available.

    An agent who chose another activity during the call (a break, offline by text) keeps it: the call
    flow only moves agents out of the activity it put them in. Any agent leg still up is hung up (the
    caller may have left before reaching the conference, leaving the agent alone in it).
    """
    still_up: list[str] = []
    with get_router().transaction(center.workspace_sid) as tx:
        call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
        if call is not None:
            call.date_ended = call.date_ended or tx.now
            still_up = _end_legs(tx, task_sid, statuses=("ringing", "answered", *CALLER_MOVED))
            if agent_left:
                still_up = []  # the agent's own hang-up told us: nothing left to hang up
        task = tx.session.get(Task, task_sid)
        if task is None or task.assignment_status != "assigned":
            return
        reservation = active_reservation(tx, task)
        worker = tx.session.get(Worker, reservation.worker_sid) if reservation is not None else None
        in_call_activity = worker is not None and worker.activity_sid == center.role_sids.get("busy", worker.activity_sid)
        wrap_up = center.role_sids.get("wrap_up")
        seconds = center.voice.wrap_up_seconds
        if seconds <= 0 or worker is None:
            complete_task_in(tx, task, "call ended")
            if in_call_activity:
                set_activity(tx, worker, tx.activity(center.activity_for("available")))
        else:
            wrap_task_in(tx, task)
            if wrap_up and in_call_activity:
                set_activity(tx, worker, tx.activity(wrap_up))
            # A call's wrap-up ends by itself; other work (a task from the API) when the agent completes it.
            if call is not None:
                tx.schedule(WRAP_UP_TIMER, task.sid, tx.now + timedelta(seconds=seconds))
                # Without a wrap-up activity the agent wraps up in the one they talked in.
                call.wrap_up_activity_sid = (wrap_up or worker.activity_sid) if in_call_activity else None
                call.after_wrap_up_activity_sid = center.activity_for("available") if in_call_activity else None
    _hang_up(still_up)


def finish_wrap_up(tx, task_sid: str) -> None:
    """The wrap-up time is over: complete the task, and make the agent available if still in wrap-up."""
    task = tx.session.get(Task, task_sid)
    if task is None or task.assignment_status != "wrapping":
        return  # completed early from the agent console or the API
    reservation = active_reservation(tx, task)
    complete_task_in(tx, task, "wrap-up time ended")
    call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
    if reservation is None or call is None or not call.after_wrap_up_activity_sid:
        return
    worker = tx.session.get(Worker, reservation.worker_sid)
    # An agent who chose another activity during wrap-up (a break, say) stays there.
    if worker is not None and worker.activity_sid == call.wrap_up_activity_sid:
        set_activity(tx, worker, tx.activity(call.after_wrap_up_activity_sid))


def end_wrap_up(tx, worker: Worker, reason: str) -> int:
    """The agent says they are ready (an available activity, by text or on the console): their calls in wrap-up
    are completed, as the console's Complete does; else they would stay Available and get no call until the
    wrap-up time ran out. Returns how many."""
    wrapping = tx.session.scalars(
        select(Task).join(Reservation, Reservation.task_sid == Task.sid)
        .where(Reservation.worker_sid == worker.sid, Reservation.reservation_status == "wrapping",
               Task.assignment_status == "wrapping")).all()
    for task in wrapping:
        complete_task_in(tx, task, reason)
    return len(wrapping)


def finish_task_now(center: ContactCenter, task_sid: str) -> None:
    """The agent is done (agent console): complete the task, ending wrap-up early; an agent still in
    wrap-up, or still in the on-a-call activity, becomes available. Another activity they chose is kept."""
    live_calls: list[str] = []
    with get_router().transaction(center.workspace_sid) as tx:
        task = tx.session.get(Task, task_sid)
        if task is None or task.assignment_status not in ("assigned", "wrapping"):
            return
        reservation = active_reservation(tx, task)
        if task.assignment_status == "assigned":
            call = tx.session.scalar(select(Call).where(Call.task_sid == task_sid))
            if call is not None:
                call.date_ended = call.date_ended or tx.now
                # Completing a call still in progress ends it: the agent must not be offered the next
                # caller while still talking to this one.
                live_calls = [call.call_sid, *_end_legs(tx, task_sid, statuses=("ringing", "answered", *CALLER_MOVED))]
        complete_task_in(tx, task, "completed by the agent")
        worker = tx.session.get(Worker, reservation.worker_sid) if reservation is not None else None
        system_set = {center.role_sids.get("wrap_up"), center.role_sids.get("busy")} - {None}
        if worker is not None and worker.activity_sid in system_set:
            set_activity(tx, worker, tx.activity(center.activity_for("available")))
    _hang_up(live_calls)


def bridge_caller(center: ContactCenter, caller: Call, reservation_sid: str | None = None) -> str:
    """Move an accepted caller into the conference named after their task: "connected", or "requeued"
    (Twilio unreachable: the caller gets a new task) or "gone" (the caller hung up: the agent is freed).

    When Twilio's answer is lost or a 5xx, the move may or may not have happened: the caller is then sent to
    the same place by redirecting their call, which is harmless if they are already there. Should that fail
    too, they get a new task; if they had been moved after all, the conference's URL puts them back in line.
    """
    connect = public_url("voice.caller_connect")
    # The agent's phone (the reservation's leg), if up, hears a goodbye when the caller cannot be brought in.
    on_the_line = reservation_sid
    try:
        move_caller(caller, connect)
    except TelephonyUnreachable as err:
        log.error("could not bridge caller %s (%s): routing them again", caller.call_sid, err)
        requeue(center, caller.task_sid, agent_on_the_line=on_the_line)
        return "requeued"
    except TelephonyUnavailable as err:
        log.warning("moving caller %s may have failed (%s): sending them by redirect", caller.call_sid, err)
        try:
            get_telephony().redirect(caller.call_sid, connect)
        except TelephonyError as again:
            log.error("could not bridge caller %s (%s): routing them again", caller.call_sid, again)
            requeue(center, caller.task_sid, agent_on_the_line=on_the_line)
            return "requeued"
    except TelephonyError as err:
        log.info("caller %s is gone (%s)", caller.call_sid, err)
        caller_gone(center, caller.task_sid, agent_on_the_line=on_the_line)
        return "gone"
    if reservation_sid:
        with get_router().transaction(center.workspace_sid) as tx:
            leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
            if leg is not None and leg.status in ("dialing", "ringing", "answered"):  # not ended meanwhile
                leg.status, leg.date_updated = "bridged", tx.now
    return "connected"


def ring_after_console_accept(center: ContactCenter, reservation_sid: str, caller: Call) -> str:
    """Accepted on the console before the engine's callback rang the agent (it no longer will): ring now."""
    _, task, worker = reservation_state(reservation_sid)
    attributes = json.loads(worker.attributes or "{}") if worker is not None else {}
    contact_uri = attributes.get("contact_uri") if isinstance(attributes.get("contact_uri"), str) else None
    pending_offer = Offer(reservation_sid, task.sid, worker.sid, caller, contact_uri, False)
    if not contact_uri or not claim_ring(center, pending_offer):
        return "Accepted: answer your phone to talk to the caller."
    asked_at = get_router().clock.now() - timedelta(seconds=5)  # Twilio's clock may be a little behind ours
    try:
        ring_agent(center, pending_offer)
    except TelephonyError as err:
        # A lost answer or a 5xx may come after Twilio placed the call: ask Twilio before ringing anyone else.
        maybe_placed = isinstance(err, TelephonyUnavailable) and not isinstance(err, TelephonyUnreachable)
        placed = _placed_after_all(contact_uri, asked_at) if maybe_placed else None
        if placed is not None:
            adopt_leg(center, reservation_sid, placed)
            log.warning("Twilio did place the ring to %s (%s) although its answer was %s", contact_uri, placed, err)
            return "Accepted: your phone rings now; answer it to talk to the caller."
        release_claim(center, reservation_sid)
        log.error("could not ring %s after a console accept (%s): routing the caller again", contact_uri, err)
        requeue(center, task.sid)
        return "Accepted, but your phone could not be rung; the caller goes to the next agent."
    return "Accepted: your phone rings now; answer it to talk to the caller."


def _placed_after_all(contact_uri: str, since: datetime) -> str | None:
    try:
        return get_telephony().ringing_call_to(contact_uri, since=since)
    except TelephonyError as err:  # still failing: take it that nothing was placed
        log.warning("could not ask Twilio whether %s is being rung: %s", contact_uri, err)
        return None


def accepted_but_not_answered(center: ContactCenter, reservation_sid: str) -> None:
    """Accepted on the console, but the agent's phone went unanswered: the caller, still in line, is routed
    again, and the agent goes to the timeout activity with a text, as after any missed ring."""
    reservation, task, worker = reservation_state(reservation_sid)
    leg = leg_of(reservation_sid)
    if reservation is None or task is None or task.assignment_status != "assigned" or (leg and leg.status in CALLER_MOVED):
        return
    with get_router().read() as session:
        timeout_activity = session.get(Workspace, center.workspace_sid).timeout_activity_sid
    requeue(center, task.sid, agent_activity_sid=timeout_activity or center.activity_for("offline"))
    tell_agent_how_to_come_back(center, worker)


def register_timers() -> None:
    register_timer(WRAP_UP_TIMER, finish_wrap_up)
    register_timer(RELEASE_TIMER, release_agent_in)


# -- the engine's notices --------------------------------------------------------------------------

def stop_ringing(center: ContactCenter, reservation_sid: str) -> bool:
    """The reservation ended (timeout, canceled, rescinded): stop that agent's phone. True if it rang."""
    with get_router().transaction(center.workspace_sid) as tx:
        leg = tx.session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))
        if leg is None or leg.status not in ("ringing", "answered"):
            return False
        leg.status, leg.date_updated = "ended", tx.now
    _hang_up([leg.call_sid])
    return True


def _end_legs(tx, task_sid: str, statuses: tuple[str, ...] = ("ringing", "answered")) -> list[str]:
    legs = tx.session.scalars(select(AgentLeg).where(AgentLeg.task_sid == task_sid,
                                                     AgentLeg.status.in_(statuses))).all()
    for leg in legs:
        leg.status, leg.date_updated = "ended", tx.now
    return [leg.call_sid for leg in legs]


def _hang_up(call_sids: list[str]) -> None:
    for call_sid in call_sids:
        try:
            get_telephony().hang_up(call_sid)
        except TelephonyError as err:  # already over, most likely: nothing is lost
            log.info("could not hang up %s: %s", call_sid, err)


def send_sms(to: str, body: str, from_: str | None = None) -> None:
    sender = current_app.config.get("TWILIO_PHONE_NUMBER") or from_
    if not sender:
        log.warning("no TWILIO_PHONE_NUMBER to text %s from: %s", to, body)
        return
    try:
        get_telephony().send_sms(to=to, from_=sender, body=body)
    except TelephonyError as err:
        log.warning("text to %s not sent: %s", to, err)


def form(name: str) -> str:
    return request.form.get(name, "")
