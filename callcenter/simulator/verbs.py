"""The TwiML interpreter: a call's program, and the verbs that do not need a module of their own.

`<Enqueue>` lives in queues.py, `<Dial>` in dial.py, `<Dial><Conference>` in conference.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator

from callcenter.simulator import twiml
from callcenter.simulator.calls import ApplicationError, Call, HungUp, LeaveQueue, Program, Redirect, Wait
from callcenter.simulator.parties import Caller, Phone

Verb = Callable[..., Generator[Wait, None, None]]


def document_program(sim, call: Call, start: Redirect) -> Program:
    """Run the TwiML at `start` (a URL or inline TwiML), following redirects, until the document ends."""
    step = start
    while True:
        try:
            if step.twiml is not None:
                sim.record(call, "twiml-document", source=step.source, twiml=step.twiml)
                document = twiml.parse(step.twiml, sim.app_base_url + "/")
            elif not step.url:
                raise ApplicationError(21205, f"no URL to fetch TwiML from ({step.source})")
            else:
                document = sim.fetch(call, step.source, step.url, step.method, step.params)
            if call.status == "ringing" and not (document.verbs and document.verbs[0].tag == "Reject"):
                sim.answered(call)
            yield from run_verbs(sim, call, document)
            return
        except Redirect as redirect:
            step = redirect


def run_verbs(sim, call: Call, document: twiml.Document, context: str = "call") -> Program:
    """Execute the verbs of `document` in order; `context` is "call", "wait" (a waitUrl) or "whisper"."""
    allowed = {"call": twiml.VOICE_VERBS, "wait": twiml.WAIT_VERBS, "whisper": twiml.WHISPER_VERBS}[context]
    for verb in document.verbs:
        if verb.tag not in allowed or (verb.tag == "Leave" and context != "wait"):
            sim.error(call, 12200, f"<{verb.tag}> is not allowed in this TwiML ({context}); skipped")
            continue
        sim.record(call, "twiml", **twiml.describe(verb))
        yield from verb_runner(verb.tag)(sim, call, verb, document)


def verb_runner(name: str) -> Verb:
    if name == "Enqueue":
        from callcenter.simulator.queues import enqueue
        return enqueue
    if name == "Dial":
        from callcenter.simulator.dial import dial
        return dial
    return VERBS[name]


def say(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    yield from _play_for(twiml.say_seconds(twiml.text(verb)), twiml.loops(verb))


def play(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    if twiml.attr(verb, "digits"):
        yield Wait(1.0)
        return
    yield from _play_for(sim.play_seconds, twiml.loops(verb))


def _play_for(seconds: float, loops: int) -> Program:
    if loops < 0:  # loop="0": until something interrupts the call
        yield Wait()
    else:
        yield Wait(seconds * loops)


def pause(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    yield Wait(twiml.number(verb, "length", 1))


def hangup(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    raise HungUp("completed", "<Hangup>")
    yield  # a generator like the other verbs


def reject(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    raise HungUp("busy" if twiml.attr(verb, "reason") == "busy" else "no-answer", "<Reject>")
    yield


def leave(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    raise LeaveQueue()
    yield


def redirect(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    raise Redirect(document.resolve(twiml.text(verb)), twiml.attr(verb, "method", "POST"), source="redirect")
    yield


def gather(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    """Play the nested prompts, then submit the party's answer to `action`, or fall through after `timeout`."""
    modes = (twiml.attr(verb, "input", "dtmf") or "dtmf").split()
    action = document.resolve(twiml.attr(verb, "action")) or document.url
    method = twiml.attr(verb, "method", "POST")
    for prompt in verb:
        if prompt.tag in ("Say", "Play", "Pause"):
            sim.record(call, "twiml", **twiml.describe(prompt), nested_in="Gather")
            yield from VERBS[prompt.tag](sim, call, prompt, document)
    party = call.party
    answer = party.answer_gather("dtmf" in modes, "speech" in modes) if isinstance(party, Caller | Phone) else None
    if answer is None:
        yield Wait(twiml.number(verb, "timeout", 5))
        sim.record(call, "gather-timeout")
        if twiml.flag(verb, "actionOnEmptyResult", False):
            raise Redirect(action, method, {"Digits": ""}, source="gather-action")
        return
    yield Wait(party.think_time)
    kind, value = answer
    if kind == "dtmf":
        finish_on_key = twiml.attr(verb, "finishOnKey", "#")
        digits = value.split(finish_on_key)[0] if finish_on_key else value
        num_digits = int(twiml.number(verb, "numDigits", 0))
        params = {"Digits": digits[:num_digits] if num_digits > 0 else digits}
    else:
        params = {"SpeechResult": value, "Confidence": "0.92"}
    sim.record(call, "gather-input", **params)
    raise Redirect(action, method, params, source="gather-action")


def record(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    """A caller who leaves voicemail speaks, then hangs up; one who does not hangs up at the prompt."""
    party = call.party
    action = document.resolve(twiml.attr(verb, "action")) or document.url
    method = twiml.attr(verb, "method", "POST")
    if not (isinstance(party, Caller) and party.voicemail):
        if isinstance(party, Caller):
            raise HungUp("completed", "hung up instead of leaving a message")
        yield Wait(twiml.number(verb, "timeout", 5))  # silence: Twilio moves on to the next verb
        return
    seconds = min(party.voicemail_seconds, twiml.number(verb, "maxLength", 3600))
    yield Wait(seconds)
    from callcenter.simulator.carrier import new_sid

    recording_sid = new_sid("RE")
    recording_url = f"{sim.api_base_url}/2010-04-01/Accounts/{sim.account_sid}/Recordings/{recording_sid}"
    recording = {"RecordingUrl": recording_url, "RecordingSid": recording_sid, "RecordingDuration": str(int(seconds))}
    call.outcome = "voicemail"
    sim.recordings[recording_sid] = {"call_sid": call.sid, "seconds": int(seconds)}
    sim.record(call, "recording", text=party.voicemail_text, **recording)
    transcribe_callback = document.resolve(twiml.attr(verb, "transcribeCallback"))
    if transcribe_callback or twiml.flag(verb, "transcribe", False):
        transcription = {**recording, "TranscriptionSid": new_sid("TR"), "TranscriptionText": party.voicemail_text,
                         "TranscriptionStatus": "completed", "TranscriptionType": "fast",
                         "TranscriptionUrl": f"{recording_url}/Transcriptions"}
        if transcribe_callback:
            sim.scheduler.after(5, lambda: sim.webhook(call, "transcribe-callback", transcribe_callback, "POST",
                                                        transcription), "transcription")
    status_callback = document.resolve(twiml.attr(verb, "recordingStatusCallback"))
    if status_callback:
        sim.webhook(call, "recording-status-callback", status_callback,
                    twiml.attr(verb, "recordingStatusCallbackMethod", "POST"),
                    {**recording, "RecordingStatus": "completed", "RecordingChannels": "1", "RecordingSource": "RecordVerb"})
    # the caller hangs up after speaking: Twilio still requests the action (and ignores its TwiML)
    sim.webhook(call, "record-action", action, method, {**recording, "Digits": "hangup", "CallStatus": "completed"})
    raise HungUp("completed", "hung up after leaving a message")


VERBS: dict[str, Verb] = {"Say": say, "Play": play, "Pause": pause, "Hangup": hangup, "Reject": reject,
                          "Leave": leave, "Redirect": redirect, "Gather": gather, "Record": record}
