"""TwiML for each step of a voice call: menu, queue, hold, agent whisper, bridge, voicemail, goodbye."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse


@dataclass(frozen=True)
class Speech:
    """How the app speaks: a text-to-speech voice and language."""

    voice: str = "alice"
    language: str = "en-US"


def _say(parent, text: str, speech: Speech) -> None:
    if text:
        parent.say(text, voice=speech.voice, language=speech.language)


def menu(*, greeting: str, prompts: Sequence[str], words: Sequence[str], action: str, no_input_url: str,
         speech: Speech, apology: str = "") -> VoiceResponse:
    """The IVR: a key press or a spoken word posts to `action`; silence falls through to `no_input_url`."""
    response = VoiceResponse()
    gather = Gather(input="dtmf speech", num_digits=1, action=action, method="POST", timeout=5,
                    speech_timeout="auto", language=speech.language, hints=", ".join(words) or None)
    _say(gather, apology, speech)
    _say(gather, greeting, speech)
    for prompt in prompts:
        _say(gather, prompt, speech)
    response.append(gather)
    response.redirect(no_input_url, method="POST")
    return response


def enqueue(*, queue_name: str, wait_url: str, action: str, announcement: str = "",
            speech: Speech = Speech()) -> VoiceResponse:
    """Put the caller on hold in a Twilio queue; Twilio fetches `wait_url` while they wait."""
    response = VoiceResponse()
    _say(response, announcement, speech)
    response.enqueue(queue_name, wait_url=wait_url, wait_url_method="POST", action=action, method="POST")
    return response


def hold(*, announcement: str, music_url: str, speech: Speech) -> VoiceResponse:
    """One turn of the wait loop: where the caller is in line, then music (or a pause) until the next turn."""
    response = VoiceResponse()
    _say(response, announcement, speech)
    if music_url:
        response.play(music_url)
    else:
        response.pause(length=20)
    return response


def leave_queue() -> VoiceResponse:
    """End the wait: Twilio continues with the `<Enqueue>` action URL (QueueResult=leave)."""
    response = VoiceResponse()
    response.leave()
    return response


def agent_confirm(*, whisper: str, action: str, speech: Speech) -> VoiceResponse:
    """What the agent hears on answering: who is calling, and press 1 to take the call."""
    response = VoiceResponse()
    gather = Gather(input="dtmf", num_digits=1, action=action, method="POST", timeout=8)
    _say(gather, f"{whisper} Press 1 to take the call, or 2 to decline.", speech)
    response.append(gather)
    # No key press: likely a voicemail box answered. The action decides with no Digits.
    response.redirect(action, method="POST")
    return response


def conference(*, room: str, action: str, whisper: str = "", speech: Speech = Speech(),
               end_on_exit: bool = True, wait_url: str = "", joined_callback: str = "") -> VoiceResponse:
    """Join the call's conference room (named after its task), caller or agent alike; `joined_callback` is told
    (Twilio's conference status callback, event `join`) when this participant is in the room."""
    response = VoiceResponse()
    _say(response, whisper, speech)
    dial = Dial(action=action, method="POST")
    callback = {"status_callback": joined_callback, "status_callback_event": "join",
                "status_callback_method": "POST"} if joined_callback else {}
    dial.conference(room, start_conference_on_enter=True, end_conference_on_exit=end_on_exit, beep=False,
                    wait_url=wait_url or None, **callback)
    response.append(dial)
    return response


def voicemail(*, prompt: str, action: str, max_seconds: int, transcribe_callback: str | None,
              speech: Speech) -> VoiceResponse:
    """Offer voicemail: a beep, a recording posted to `action`, an optional transcription."""
    response = VoiceResponse()
    _say(response, prompt, speech)
    response.record(action=action, method="POST", max_length=max_seconds, play_beep=True, finish_on_key="#",
                    transcribe=bool(transcribe_callback), transcribe_callback=transcribe_callback)
    _say(response, "We did not receive a message. Goodbye.", speech)
    response.hangup()
    return response


def goodbye(text: str, speech: Speech) -> VoiceResponse:
    response = VoiceResponse()
    _say(response, text, speech)
    response.hangup()
    return response


def empty() -> VoiceResponse:
    return VoiceResponse()
