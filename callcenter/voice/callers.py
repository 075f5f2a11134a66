"""Webhooks of the caller's call: menu, queue, hold, bridge, end, voicemail."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, request

from callcenter.contact_center import ContactCenter, NotLoaded, SpecError, current
from callcenter.signatures import twilio_webhook
from twiml import voice as twiml

from . import bp, flow
from .flow import form, public_url

log = logging.getLogger("callcenter.voice")


def speech(center: ContactCenter) -> twiml.Speech:
    return twiml.Speech(voice=center.voice.voice, language=center.voice.language)


def xml(response: Any) -> Response:
    return Response(str(response), mimetype="text/xml")


def voice_webhook(view: Callable[..., Any]) -> Callable[..., Any]:
    """A signed Twilio webhook that needs the contact center; without one the caller hears why, not silence."""

    @twilio_webhook
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            center = current()
        except (NotLoaded, SpecError) as err:
            log.error("voice webhook without a contact center: %s", err)
            return xml(twiml.goodbye("Sorry, this number is not taking calls yet. Goodbye.", twiml.Speech()))
        return view(center, *args, **kwargs)

    return wrapped


def _menu(center: ContactCenter, apology: str = "", attempt: int = 0) -> Response:
    menu = center.menu
    # The attempt rides in the URL: the greeting writes nothing, so it stays fast under a burst of calls.
    action = public_url("voice.menu_choice", **({"attempt": str(attempt)} if attempt else {}))
    return xml(twiml.menu(
        greeting=center.voice.greeting, prompts=[option.prompt for option in menu.options],
        words=[word for option in menu.options for word in option.words], action=action,
        no_input_url=action, speech=speech(center), apology=apology))


def _enqueue(center: ContactCenter) -> Response:
    return xml(twiml.enqueue(queue_name=center.voice.queue_name, wait_url=public_url("voice.wait"),
                             action=public_url("voice.queue_result")))


def _caller(center: ContactCenter) -> flow.CallerInfo:
    return flow.CallerInfo(form("CallSid"), form("From"), form("To"))


@bp.post("/incoming")
@voice_webhook
def incoming(center: ContactCenter):
    """The number's Voice webhook: greet the caller and offer the menu (or queue them at once if there is none)."""
    if flow.task_of_call(form("CallSid")) is not None:
        return _enqueue(center)  # a retry after the caller already chose
    if not center.menu.options:
        flow.start_task(center, _caller(center), {})
        return _enqueue(center)
    return _menu(center)


@bp.post("/menu")
@voice_webhook
def menu_choice(center: ContactCenter):
    """The menu's answer: a key, a word, or nothing. Once more on a miss, then the default option."""
    if flow.task_of_call(form("CallSid")) is None:
        option = center.menu.choose(form("Digits"), form("SpeechResult"))
        if option is None:
            attempt = request.args.get("attempt", "0")
            if attempt == "0":
                return _menu(center, apology=center.menu.prompt_on_retry, attempt=1)
            option = center.menu.default
        flow.start_task(center, _caller(center), dict(option.attributes) if option else {})
    return _enqueue(center)


@bp.post("/wait")
@voice_webhook
def wait(center: ContactCenter):
    """One turn of the hold loop: the caller's place in line, then music. A caller without a task leaves."""
    task = flow.note_queue(center, form("CallSid"), form("QueueSid") or None)
    if task is None or task.assignment_status in ("canceled", "completed"):
        return xml(twiml.leave_queue())
    # Being rung for, the caller is next; else their place among the callers of their department.
    position = 1 if task.assignment_status == "reserved" else flow.place_in_line(task)
    if position is None:  # in no task queue: Twilio's count of its queue is all there is
        position = int(form("QueuePosition")) if form("QueuePosition").isdigit() else 1
    announcement = (f"You are caller number {position} in line. " if position > 1
                    else "You are next in line. ") + "Please stay on the line; an agent will be with you shortly."
    return xml(twiml.hold(announcement=announcement, music_url=center.voice.hold_music_url, speech=speech(center)))


@bp.post("/queue-result")
@voice_webhook
def queue_result(center: ContactCenter):
    """The caller left the queue (the `<Enqueue>` action): hung up, redirected by us, or by an error."""
    result, call_sid = form("QueueResult"), form("CallSid")
    if result == "hangup":
        flow.abandon(center, call_sid)
        return xml(twiml.empty())
    if result.startswith("redirected") or result in ("bridged", "bridging-in-process"):
        return xml(twiml.empty() if result != "bridged" else twiml.goodbye("Thank you for calling.", speech(center)))
    # leave (no task any more), queue-full, error, system-error: nobody will answer; take a message.
    flow.mark_missed(center, call_sid, f"caller left the queue: {result or 'unknown'}")
    return _voicemail(center)


@bp.post("/status")
@voice_webhook
def caller_status(center: ContactCenter):
    """The caller's call status callback (set on the number): an ended call ends its task, at any stage."""
    if form("CallStatus") in ("completed", "busy", "failed", "no-answer", "canceled"):
        flow.call_ended(center, form("CallSid"))
    return Response(status=204)


@bp.post("/caller/connect")
@voice_webhook
def caller_connect(center: ContactCenter):
    """Where the chosen caller is dequeued (or redirected) to: the conference of their task, if an agent has it.

    A caller whose move was given up for lost (Twilio failed to answer, the agent dropped) may still arrive:
    with their task waiting again they go back in line, and with no task left, to voicemail; never to an
    empty room.
    """
    call_sid = form("CallSid")
    task = flow.note_queue(center, call_sid, None)
    if task is not None and task.assignment_status == "assigned":
        return xml(twiml.conference(room=task.sid, action=public_url("voice.caller_after"),
                                    speech=speech(center), end_on_exit=True))
    if task is not None and task.assignment_status in flow.WAITING:
        log.info("caller %s reached the conference while their task %s waits: back in line", call_sid, task.sid)
        return _enqueue(center)
    log.warning("caller %s reached the conference with no task for an agent: voicemail", call_sid)
    flow.mark_missed(center, call_sid, "the caller could not be connected")
    return _voicemail(center)


@bp.post("/caller/after")
@voice_webhook
def caller_after(center: ContactCenter):
    """The conversation is over (the conference ended): thank the caller; the task wraps up."""
    task_sid = flow.task_of_call(form("CallSid"))
    if task_sid:
        flow.end_conversation(center, task_sid)
    return xml(twiml.goodbye("Thank you for calling. Goodbye.", speech(center)))


@bp.post("/voicemail")
@voice_webhook
def voicemail(center: ContactCenter):
    """Nobody could take the call: record a message."""
    return _voicemail(center)


def _voicemail(center: ContactCenter) -> Response:
    transcribe = public_url("voice.voicemail_transcribed") if center.voice.transcribe_voicemail else None
    return xml(twiml.voicemail(prompt=center.voice.voicemail_prompt, action=public_url("voice.voicemail_recorded"),
                               max_seconds=center.voice.voicemail_max_seconds, transcribe_callback=transcribe,
                               speech=speech(center)))


@bp.post("/voicemail/recorded")
@voice_webhook
def voicemail_recorded(center: ContactCenter):
    call_sid = form("CallSid")
    if flow.save_recording(center, call_sid, form("RecordingUrl") or None, form("RecordingSid") or None,
                           form("RecordingDuration") or None):
        flow.notify_supervisors(center, call_sid, voicemail=True)
    return xml(twiml.goodbye("Thank you. We will call you back. Goodbye.", speech(center)))


@bp.post("/voicemail/transcribed")
@voice_webhook
def voicemail_transcribed(center: ContactCenter):
    flow.save_transcription(center, form("CallSid"), form("TranscriptionText") or None)
    return Response(status=204)
