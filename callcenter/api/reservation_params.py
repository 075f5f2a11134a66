"""The form parameters of a Reservation update, shared by `/Tasks/{WT}/Reservations/{WR}` and
`/Workers/{WK}/Reservations/{WR}`: both take the same groups, and both hand the engine the same
instruction a workflow's assignment callback could have answered with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from callcenter.routing import validation
from callcenter.routing.errors import InvalidParameter

from .wire import has_param, param, param_list

CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
CONFERENCE_EVENTS = ("start", "end", "join", "leave", "mute", "hold", "speaker")
SUPERVISOR_MODES = ("monitor", "whisper", "barge")
METHODS = ("GET", "POST")


class ReservationUpdate(NamedTuple):
    reservation_status: str | None
    worker_activity_sid: str | None
    instruction: str | None
    instruction_params: dict[str, Any]


# -- how each parameter is read --------------------------------------------------------------------

def _text(name: str) -> str:
    return param(name)


def _integer(minimum: int, maximum: int) -> Callable[[str], int]:
    return lambda name: validation.integer(param(name), name, minimum=minimum, maximum=maximum)


def _boolean(name: str) -> bool:
    return validation.boolean(param(name), name)


def _url(name: str) -> str | None:
    return validation.url(param(name), name)


def _one_of(*allowed: str) -> Callable[[str], str]:
    def read(name: str) -> str:
        value = param(name)
        if value not in allowed:
            raise InvalidParameter(f"{name} must be one of {', '.join(allowed)}")
        return value
    return read


def _events(*allowed: str) -> Callable[[str], list[str]]:
    def read(name: str) -> list[str]:
        values = param_list(name)
        wrong = [value for value in values if value not in allowed]
        if wrong:
            raise InvalidParameter(f"{name}: {wrong[0]!r} is not one of {', '.join(allowed)}")
        return values
    return read


_RING_TIMEOUT = _integer(1, 999)

# (form parameter, key of the assignment-callback JSON, reader) per instruction.
DEQUEUE = (
    ("DequeueTo", "to", _text),
    ("DequeueFrom", "from", _text),
    ("DequeuePostWorkActivitySid", "post_work_activity_sid", _text),
    ("DequeueRecord", "record", _one_of("record-from-answer", "do-not-record")),
    ("DequeueTimeout", "timeout", _RING_TIMEOUT),
    ("DequeueStatusCallbackUrl", "status_callback_url", _url),
    ("DequeueStatusCallbackEvent", "status_callback_events", _events(*CALL_STATUS_EVENTS)),
)
CALL = (
    ("CallTo", "to", _text),
    ("CallFrom", "from", _text),
    ("CallUrl", "url", _url),
    ("CallAccept", "accept", _boolean),
    ("CallRecord", "record", _text),
    ("CallTimeout", "timeout", _RING_TIMEOUT),
    ("CallStatusCallbackUrl", "status_callback_url", _url),
)
REDIRECT = (
    ("RedirectCallSid", "call_sid", _text),
    ("RedirectUrl", "url", _url),
    ("RedirectAccept", "accept", _boolean),
)
CONFERENCE = (
    ("To", "to", _text),
    ("From", "from", _text),
    ("PostWorkActivitySid", "post_work_activity_sid", _text),
    ("Timeout", "timeout", _RING_TIMEOUT),
    ("StatusCallback", "status_callback", _url),
    ("StatusCallbackMethod", "status_callback_method", _one_of(*METHODS)),
    ("StatusCallbackEvent", "status_callback_event", _events(*CALL_STATUS_EVENTS)),
    ("Record", "record", _boolean),
    ("Muted", "muted", _boolean),
    ("Beep", "beep", _one_of("true", "false", "onEnter", "onExit")),
    ("StartConferenceOnEnter", "start_conference_on_enter", _boolean),
    ("EndConferenceOnExit", "end_conference_on_exit", _boolean),
    ("EndConferenceOnCustomerExit", "end_conference_on_customer_exit", _boolean),
    ("BeepOnCustomerEntrance", "beep_on_customer_entrance", _boolean),
    ("WaitUrl", "wait_url", _url),
    ("WaitMethod", "wait_method", _one_of(*METHODS)),
    ("EarlyMedia", "early_media", _boolean),
    ("MaxParticipants", "max_participants", _integer(2, 250)),
    ("ConferenceStatusCallback", "conference_status_callback", _url),
    ("ConferenceStatusCallbackMethod", "conference_status_callback_method", _one_of(*METHODS)),
    ("ConferenceStatusCallbackEvent", "conference_status_callback_event", _events(*CONFERENCE_EVENTS)),
    ("ConferenceRecord", "conference_record", _one_of("true", "false", "record-from-start", "do-not-record")),
    ("ConferenceTrim", "conference_trim", _one_of("trim-silence", "do-not-trim")),
    ("RecordingChannels", "recording_channels", _one_of("mono", "dual")),
    ("RecordingStatusCallback", "recording_status_callback", _url),
    ("RecordingStatusCallbackMethod", "recording_status_callback_method", _one_of(*METHODS)),
    ("ConferenceRecordingStatusCallback", "conference_recording_status_callback", _url),
    ("ConferenceRecordingStatusCallbackMethod", "conference_recording_status_callback_method", _one_of(*METHODS)),
    ("Region", "region", _one_of("us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1")),
    ("SipAuthUsername", "sip_auth_username", _text),
    ("SipAuthPassword", "sip_auth_password", _text),
    ("JitterBufferSize", "jitter_buffer_size", _one_of("small", "medium", "large", "off")),
)
SUPERVISE = (
    ("Supervisor", "supervisor", _text),
    ("SupervisorMode", "supervisor_mode", _one_of(*SUPERVISOR_MODES)),
)
GROUPS = {"dequeue": DEQUEUE, "call": CALL, "redirect": REDIRECT, "conference": CONFERENCE, "supervise": SUPERVISE}
REQUIRED = {"call": ("CallFrom", "CallUrl"), "redirect": ("RedirectCallSid", "RedirectUrl")}


def reservation_update_params(*, supervise: bool = True) -> ReservationUpdate:
    """Read a Reservation update's form into `(reservation_status, worker_activity_sid, instruction,
    instruction_params)`; a malformed value is a 400 (20001) before anything changes.

    `instruction_params` holds only the parameters of the chosen `Instruction`'s group that were
    sent, under the snake_case keys of the assignment-callback JSON, so the engine carries out a
    REST update and a callback reply alike:

    - dequeue: DequeueTo -> to, DequeueFrom -> from, DequeuePostWorkActivitySid ->
      post_work_activity_sid, DequeueRecord -> record, DequeueTimeout -> timeout (int),
      DequeueStatusCallbackUrl -> status_callback_url, DequeueStatusCallbackEvent ->
      status_callback_events (list).
    - call: CallTo -> to, CallFrom -> from, CallUrl -> url, CallAccept -> accept (bool),
      CallRecord -> record, CallTimeout -> timeout (int), CallStatusCallbackUrl -> status_callback_url.
      CallFrom and CallUrl are required.
    - redirect: RedirectCallSid -> call_sid, RedirectUrl -> url, RedirectAccept -> accept (bool).
      RedirectCallSid and RedirectUrl are required.
    - conference: each parameter under its own name in snake_case (To -> to, From -> from,
      PostWorkActivitySid -> post_work_activity_sid, StatusCallbackEvent -> status_callback_event,
      ConferenceRecordingStatusCallbackMethod -> conference_recording_status_callback_method, ...);
      Timeout and MaxParticipants are ints; Record, Muted, StartConferenceOnEnter,
      EndConferenceOnExit, EndConferenceOnCustomerExit, BeepOnCustomerEntrance and EarlyMedia are
      bools; StatusCallbackEvent and ConferenceStatusCallbackEvent are lists.
    - supervise (Task reservations only; the Worker-scoped route passes `supervise=False`, which
      ignores these two parameters): Supervisor -> supervisor, SupervisorMode -> supervisor_mode.
    - reject: WorkerActivitySid -> activity_sid, as the callback's `reject` instruction names it.

    Without `Instruction`, `instruction_params` is empty and the update is a plain
    `ReservationStatus` change (with `WorkerActivitySid` on rejection).
    """
    groups = GROUPS if supervise else {name: group for name, group in GROUPS.items() if name != "supervise"}
    instruction = param("Instruction") or None
    worker_activity_sid = param("WorkerActivitySid") or None
    instruction_params: dict[str, Any] = {}
    if instruction in groups:
        for name in REQUIRED.get(instruction, ()):
            if not param(name):
                raise InvalidParameter(f"Missing required parameter {name} for Instruction={instruction}")
        for name, key, read in groups[instruction]:
            if has_param(name):
                instruction_params[key] = read(name)
    elif instruction == "reject" and worker_activity_sid:
        instruction_params["activity_sid"] = worker_activity_sid
    status = param("ReservationStatus") or None
    if status in ("accepted", "rejected") and instruction and (status == "rejected") != (instruction == "reject"):
        # Carried out as the instruction said, silently: `accepted` with `reject` rejected the reservation.
        raise InvalidParameter(f"ReservationStatus={status} contradicts Instruction={instruction}: give one of them")
    return ReservationUpdate(status, worker_activity_sid, instruction, instruction_params)
