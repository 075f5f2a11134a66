"""Conference rooms for `<Dial><Conference>`: named, started by a moderator, ended when one leaves or all do."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from callcenter.simulator import twiml
from callcenter.simulator.calls import Call, ConferenceEnded, Program, Wait


@dataclass
class Participant:
    call: Call
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    status_callback: str | None
    status_callback_events: tuple[str, ...]
    muted: bool = False


@dataclass
class Conference:
    sid: str
    friendly_name: str
    date_created: datetime
    participants: dict[str, Participant] = field(default_factory=dict)
    status: str = "init"  # init (waiting for a moderator), in-progress, completed
    sequence: int = 0


def join_conference(sim, call: Call, noun: ET.Element, document: twiml.Document, outcome) -> Program:
    """Stay in the room until this call hangs up or the conference ends."""
    from callcenter.simulator.carrier import new_sid

    name = twiml.text(noun)
    room = sim.conferences.get(name)
    if room is None or room.status == "completed":
        room = Conference(new_sid("CF"), name, sim.now())
        sim.conferences[name] = room
    participant = Participant(call, twiml.flag(noun, "startConferenceOnEnter", True),
                              twiml.flag(noun, "endConferenceOnExit", False),
                              document.resolve(twiml.attr(noun, "statusCallback")),
                              tuple((twiml.attr(noun, "statusCallbackEvent") or "").split()),
                              twiml.flag(noun, "muted", False))
    room.participants[call.sid] = participant
    call.conference = name
    outcome.status = "completed"
    sim.record(call, "conference-join", conference=name, conference_sid=room.sid,
               participants=len(room.participants))
    _notify(sim, room, participant, "participant-join", "join")
    if participant.start_conference_on_enter and room.status == "init":
        room.status = "in-progress"
        _notify(sim, room, participant, "conference-start", "start")
    _update_talking(sim, room)
    try:
        yield Wait()  # hold music until the moderator comes, then the conversation
    except ConferenceEnded:
        pass
    finally:
        _leave(sim, room, participant)


def _update_talking(sim, room: Conference) -> None:
    if room.status != "in-progress" or len(room.participants) < 2:
        return
    for participant in room.participants.values():
        if participant.call.connected_at is None:
            sim.record(participant.call, "connected", conference=room.friendly_name)
        sim.talking(participant.call)


def _leave(sim, room: Conference, participant: Participant) -> None:
    call = participant.call
    room.participants.pop(call.sid, None)
    call.conference, call.connected_at = None, None
    sim.record(call, "conference-leave", conference=room.friendly_name)
    _notify(sim, room, participant, "participant-leave", "leave")
    ends = participant.end_conference_on_exit and room.status == "in-progress"
    if room.status != "completed" and (ends or not room.participants):
        room.status = "completed"
        _notify(sim, room, participant, "conference-end", "end")
        for other in list(room.participants.values()):
            sim.interrupt(other.call, ConferenceEnded())


def _notify(sim, room: Conference, participant: Participant, event: str, short: str) -> None:
    if not participant.status_callback or short not in participant.status_callback_events:
        return
    from callcenter.simulator.carrier import rfc2822

    params = {"AccountSid": sim.account_sid, "ConferenceSid": room.sid, "FriendlyName": room.friendly_name,
              "StatusCallbackEvent": event, "Timestamp": rfc2822(sim.now()), "SequenceNumber": str(room.sequence),
              "CallSid": participant.call.sid, "Muted": str(participant.muted).lower(), "Hold": "false",
              "StartConferenceOnEnter": str(participant.start_conference_on_enter).lower(),
              "EndConferenceOnExit": str(participant.end_conference_on_exit).lower()}
    room.sequence += 1
    sim.webhook(None, "conference-status-callback", participant.status_callback, "POST", params)
