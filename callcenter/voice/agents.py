"""Webhooks of the agent's side: the engine's assignment callback rings them; their call's webhooks bridge them."""

from __future__ import annotations

import json
import logging

from flask import Response, jsonify, request

from callcenter.contact_center import ContactCenter
from callcenter.telephony import CALLED_NUMBER_ERRORS, TelephonyError, TelephonyUnavailable, TelephonyUnreachable
from twiml import voice as twiml

from . import bp, flow
from .callers import speech, voice_webhook, xml
from .flow import form, public_url

log = logging.getLogger("callcenter.voice")

# Twilio's final statuses for a call that was never answered.
NOT_ANSWERED = ("no-answer", "busy", "failed", "canceled")


@bp.post("/assignment")
@voice_webhook
def assignment(center: ContactCenter):
    """The engine reserved an agent for a caller: ring the agent. The reservation is accepted when they answer.

    The reply is empty (the reservation stays pending) or a `reject` instruction; a 503 makes the
    engine retry, with the reservation timeout as the last word.
    """
    try:
        worker_attributes = json.loads(form("WorkerAttributes") or "{}")
    except ValueError:
        worker_attributes = {}
    offer = flow.offer(center, form("ReservationSid"), form("TaskSid"), form("WorkerSid"), worker_attributes)
    if offer.leg_exists:
        return Response(status=200)  # a retried callback: the agent's phone already rings
    if offer.caller is None:
        log.warning("reservation %s is for task %s, which is not a call of this app", offer.reservation_sid,
                    offer.task_sid)
        return Response(status=200)
    if not offer.contact_uri:
        log.error("worker %s has no contact_uri attribute: cannot ring them", offer.worker_sid)
        return _reject(center)
    if not flow.claim_ring(center, offer):
        return Response(status=200)  # a retry while we were still dialing: one ring per reservation
    try:
        flow.ring_agent(center, offer)
    except TelephonyUnreachable as err:
        flow.release_claim(center, offer.reservation_sid)
        log.warning("could not ring %s yet (%s): the engine will retry", offer.contact_uri, err)
        return Response("Twilio unreachable", status=503)
    except TelephonyUnavailable as err:
        # Twilio may have placed the call (its answer was lost, or it failed after acting): ringing again would
        # ring the agent twice, and the second ring, busy, would take them offline. The claim stays: the call's
        # own webhooks adopt it if it exists, and the reservation's timeout passes the caller on if it does not.
        log.warning("Twilio may or may not have rung %s (%s): not ringing again", offer.contact_uri, err)
        return Response(status=200)
    except TelephonyError as err:
        flow.release_claim(center, offer.reservation_sid)
        if err.code in CALLED_NUMBER_ERRORS:
            log.error("Twilio refused to ring %s (code %s): %s; the agent goes offline", offer.contact_uri, err.code,
                      err)
            return _reject(center)
        # The account's problem, not the agent's: taking each agent offline in turn would empty the center.
        log.error("Twilio refused to ring %s (code %s): %s; no fault of the agent's (check the caller ID and "
                  "the account's permissions): the caller goes to the next agent, and this one stays as they are",
                  offer.contact_uri, err.code, err)
        return jsonify(instruction="reject")
    return Response(status=200)


def _reject(center: ContactCenter) -> Response:
    # The agent cannot be reached: offline, so the engine stops offering them callers.
    return jsonify(instruction="reject", activity_sid=center.activity_for("offline"))


@bp.post("/agent/answer")
@voice_webhook
def agent_answer(center: ContactCenter):
    """The agent picked up: tell them who is calling and ask them to take it (or connect at once)."""
    reservation_sid = request.args.get("reservation", "")
    flow.adopt_leg(center, reservation_sid, form("CallSid"))
    if not flow.is_current_leg(reservation_sid, form("CallSid")):
        return xml(twiml.goodbye("This call is no longer needed. Goodbye.", speech(center)))
    reservation, task, _ = flow.reservation_state(reservation_sid)
    if reservation is not None and reservation.reservation_status == "accepted" and task.assignment_status == "assigned":
        # Accepted on the agent console while the phone rang: bring the caller in now.
        return _bridge(center, reservation_sid, flow.caller_of(task.sid))
    if reservation is None or reservation.reservation_status != "pending":
        return xml(twiml.goodbye("Sorry, this caller is no longer waiting. Goodbye.", speech(center)))
    flow.agent_answered(center, reservation_sid)
    if not center.voice.agent_confirm:
        return _connect(center, reservation_sid)
    return xml(twiml.agent_confirm(whisper=_whisper(task), action=public_url("voice.agent_confirm",
                                                                          reservation=reservation_sid),
                                   speech=speech(center)))


@bp.post("/agent/confirm")
@voice_webhook
def agent_confirm(center: ContactCenter):
    """1 takes the call; anything else, or nothing (a voicemail box answered), passes it to the next agent."""
    reservation_sid = request.args.get("reservation", "")
    if not flow.is_current_leg(reservation_sid, form("CallSid")):
        return xml(twiml.goodbye("This call is no longer needed. Goodbye.", speech(center)))
    reservation, task, _ = flow.reservation_state(reservation_sid)
    if reservation is not None and reservation.reservation_status == "accepted" and task.assignment_status == "assigned":
        return _bridge(center, reservation_sid, flow.caller_of(task.sid))  # accepted on the console meanwhile
    if reservation is None or reservation.reservation_status != "pending":
        # Taken on the console by a caller who then left, or ended meanwhile: nothing to take or pass on.
        return xml(twiml.goodbye("Sorry, this caller is no longer waiting. Goodbye.", speech(center)))
    digits = form("Digits")
    if digits == "1":
        return _connect(center, reservation_sid)
    if digits and digits != "2" and request.args.get("attempt") != "1":
        # A slip of the finger: asked once more rather than taken offline for it, with the time to answer.
        flow.prompt_again(center, reservation_sid)
        _, task, _ = flow.reservation_state(reservation_sid)
        return xml(twiml.agent_confirm(
            whisper="Sorry, that key does nothing here. " + _whisper(task),
            action=public_url("voice.agent_confirm", reservation=reservation_sid, attempt="1"), speech=speech(center)))
    flow.decline(center, reservation_sid, "declined" if digits else "no key pressed")
    return xml(twiml.goodbye("The call goes to another agent. You are now offline; text ON to come back.",
                             speech(center)))


def _connect(center: ContactCenter, reservation_sid: str) -> Response:
    caller = flow.accept(center, reservation_sid)
    if caller is None:
        return xml(twiml.goodbye("Sorry, this caller is no longer waiting. Goodbye.", speech(center)))
    return _bridge(center, reservation_sid, caller)


def _bridge(center: ContactCenter, reservation_sid: str, caller) -> Response:
    leg = flow.leg_of(reservation_sid)
    if caller is None:
        return xml(twiml.goodbye("Sorry, this caller is no longer waiting. Goodbye.", speech(center)))
    if leg is None or leg.status not in flow.CALLER_MOVED:
        outcome = flow.bridge_caller(center, caller, reservation_sid)
        if outcome == "requeued":
            return xml(twiml.goodbye("Sorry, we could not connect the caller. They stay in line.", speech(center)))
        if outcome == "gone":
            return xml(twiml.goodbye("Sorry, the caller hung up. Goodbye.", speech(center)))
    return _join(center, caller.task_sid, reservation_sid)


def _join(center: ContactCenter, task_sid: str, reservation_sid: str) -> Response:
    return xml(twiml.conference(room=task_sid, action=public_url("voice.agent_after", task=task_sid),
                                whisper="Connecting.", speech=speech(center), end_on_exit=True,
                                joined_callback=public_url("voice.agent_joined", reservation=reservation_sid)))


@bp.post("/agent/joined")
@voice_webhook
def agent_joined(center: ContactCenter):
    """The conference's status callback for the agent: they are in the room, so the conversation has begun."""
    if form("StatusCallbackEvent") == "participant-join":
        flow.agent_joined(center, request.args.get("reservation", ""), form("CallSid"))
    return Response(status=204)


@bp.post("/agent/status")
@voice_webhook
def agent_status(center: ContactCenter):
    """The agent leg's status callback: a ring that ended unanswered passes the caller on."""
    reservation_sid = request.args.get("reservation", "")
    flow.adopt_leg(center, reservation_sid, form("CallSid"))
    if not flow.is_current_leg(reservation_sid, form("CallSid")):
        return Response(status=204)  # a stray duplicate call: it decides nothing
    status = form("CallStatus")
    if (status in NOT_ANSWERED or status == "completed") and flow.release_agent(center, reservation_sid):
        return Response(status=204)  # the goodbye after a caller who could not be brought in is over
    reservation, task, _ = flow.reservation_state(reservation_sid)
    if status in NOT_ANSWERED or status == "completed":
        if reservation is not None and reservation.reservation_status == "pending":
            why = f"agent's phone: {status}" if status != "completed" else "agent hung up before taking the call"
            flow.decline(center, reservation_sid, why)
        elif reservation is not None and reservation.reservation_status == "accepted" and task is not None \
                and task.assignment_status == "assigned":
            leg = flow.leg_of(reservation_sid)
            if leg is not None and leg.status == "joined":
                flow.end_conversation(center, task.sid, agent_left=True)  # the agent hung up: the conversation is over
            elif leg is not None and leg.status in ("answered", "bridged"):
                # Gone after taking the call but before reaching the room: the caller is in it, or on the way,
                # alone. They go back in line, first in it.
                flow.return_caller_to_line(center, task.sid, "the agent's call ended before they joined the caller")
            else:
                flow.accepted_but_not_answered(center, reservation_sid)  # accepted on the console, never answered
    return Response(status=204)


@bp.post("/agent/after")
@voice_webhook
def agent_after(center: ContactCenter):
    """The agent's conference ended: the task wraps up."""
    flow.end_conversation(center, request.args.get("task", ""), agent_left=True)
    return xml(twiml.goodbye("The call has ended.", speech(center)))


def _whisper(task) -> str:
    from callcenter.phones import spoken

    attributes = json.loads(task.attributes) if task is not None else {}
    topic = attributes.get("selected_product")
    return f"Call from {spoken(attributes.get('from'))}" + (f" about {topic}." if topic else ".")
