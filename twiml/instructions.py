"""TwiML of TaskRouter's voice instructions: the worker and the caller meet in the conference named after the task."""

from __future__ import annotations

from typing import Any

from twilio.twiml.voice_response import Dial, VoiceResponse


def task_conference(*, room: str, options: dict[str, Any], action: str | None = None) -> VoiceResponse:
    """Join the conference `room` with `<Conference>` attributes in `options` (snake_case, as the SDK names them).

    With `action`, Twilio reports there when this party's part of the conference is over.
    """
    response = VoiceResponse()
    dial = Dial(action=action, method="POST") if action else Dial()
    dial.conference(room, **{key: value for key, value in options.items() if value is not None})
    response.append(dial)
    return response


def hang_up(text: str = "") -> VoiceResponse:
    """Say `text` (if any) and end the call."""
    response = VoiceResponse()
    if text:
        response.say(text)
    response.hangup()
    return response


# A dequeue is a plain bridge: either side leaving ends it. The worker starts it: a caller who gets
# there first, or is left waiting there, hears hold music rather than silence.
_BRIDGE = {"start_conference_on_enter": True, "end_conference_on_exit": True, "beep": False}
_CALLER_BRIDGE = {**_BRIDGE, "start_conference_on_enter": False}


def worker_conference(instruction: str, options: dict[str, Any], *, status_callback: str | None = None,
                      status_events: list[str] | None = None) -> dict[str, Any]:
    """The worker's `<Conference>` attributes: a bridge for `dequeue`; the instruction's own for `conference`.

    `status_callback` (with `status_events`) is the server's own: it hears the conference end and
    passes on to the instruction's `conference_status_callback` the events that one asked for.
    """
    if instruction == "dequeue":
        return dict(_BRIDGE)
    return {
        "muted": options.get("muted"), "beep": options.get("beep"),
        "start_conference_on_enter": options.get("start_conference_on_enter"),
        "end_conference_on_exit": options.get("end_conference_on_exit"),
        "wait_url": options.get("wait_url"), "wait_method": options.get("wait_method"),
        "max_participants": options.get("max_participants"), "record": options.get("conference_record"),
        "trim": options.get("conference_trim"), **_conference_events(status_callback, status_events),
        "recording_status_callback": options.get("conference_recording_status_callback"),
        "recording_status_callback_method": options.get("conference_recording_status_callback_method"),
        "region": options.get("region"), "jitter_buffer_size": options.get("jitter_buffer_size"),
    }


def caller_conference(instruction: str, options: dict[str, Any], *, status_callback: str | None = None,
                      status_events: list[str] | None = None) -> dict[str, Any]:
    """The caller's `<Conference>` attributes: the `conference` instruction's customer options.

    The same status callback as the worker's: Twilio takes it from whoever joins first.
    """
    if instruction == "dequeue":
        return dict(_CALLER_BRIDGE)
    beep = options.get("beep_on_customer_entrance")
    return {"start_conference_on_enter": True,
            "end_conference_on_exit": bool(options.get("end_conference_on_customer_exit")),
            "beep": None if beep is None else bool(beep),
            "max_participants": options.get("max_participants"), "region": options.get("region"),
            **_conference_events(status_callback, status_events)}


def _conference_events(url: str | None, events: list[str] | None) -> dict[str, Any]:
    if not url:
        return {}
    return {"status_callback": url, "status_callback_method": "POST", "status_callback_event": " ".join(events or ())}
