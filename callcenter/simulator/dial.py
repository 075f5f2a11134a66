"""`<Dial>`: ring phones (`Number`, `Client`, `Sip`), take a caller from a queue (`Queue`), or join a room (`Conference`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from callcenter.simulator import twiml
from callcenter.simulator.calls import (
    Bridged,
    BridgeEnded,
    Call,
    HungUp,
    LegAnswered,
    LegFailed,
    Program,
    Redirect,
    Wait,
)

PHONE_NOUNS = ("Number", "Client", "Sip")


@dataclass
class DialOutcome:
    status: str = "no-answer"  # DialCallStatus
    dialed_sid: str | None = None
    connected_at: object = None


def dial(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    action = document.resolve(twiml.attr(verb, "action"))
    method = twiml.attr(verb, "method", "POST")
    nouns = [noun for noun in verb if noun.tag in (*PHONE_NOUNS, "Queue", "Conference")]
    if not nouns and twiml.text(verb):
        nouns = [ET.Element("Number")]
        nouns[0].text = twiml.text(verb)
    outcome = DialOutcome()
    try:
        if not nouns:
            outcome.status = "failed"
        elif nouns[0].tag == "Queue":
            yield from dial_queue(sim, call, nouns[0], document, outcome)
        elif nouns[0].tag == "Conference":
            from callcenter.simulator.conference import join_conference

            yield from join_conference(sim, call, nouns[0], document, outcome)
        else:
            yield from dial_phones(sim, call, verb, nouns, document, outcome)
    except HungUp:
        if outcome.status in ("no-answer", "ringing"):
            outcome.status = "canceled"
        if action:
            sim.webhook(call, "dial-action", action, method, {**_params(sim, outcome), "CallStatus": "completed"})
        raise
    sim.record(call, "dial-ended", **_params(sim, outcome))
    if action:
        raise Redirect(action, method, _params(sim, outcome), source="dial-action")


def _params(sim, outcome: DialOutcome) -> dict[str, str]:
    params = {"DialCallStatus": outcome.status}
    if outcome.dialed_sid:
        params["DialCallSid"] = outcome.dialed_sid
    if outcome.connected_at is not None:
        params["DialCallDuration"] = str(int((sim.now() - outcome.connected_at).total_seconds()))
        params["DialBridged"] = "true"
    return params


def dial_phones(sim, call: Call, verb: ET.Element, nouns: list[ET.Element], document: twiml.Document,
                outcome: DialOutcome) -> Program:
    """Ring every noun at once; the first to answer is connected, the others stop ringing."""
    timeout = twiml.number(verb, "timeout", 30)
    caller_id = twiml.attr(verb, "callerId") or call.from_
    legs: list[tuple[Call, ET.Element]] = []
    outcome.status = "ringing"
    for noun in nouns:
        address = twiml.text(noun) if noun.tag != "Client" else _client_address(noun)
        events = tuple((twiml.attr(noun, "statusCallbackEvent") or "completed").split())
        leg = sim._new_call(caller_id, address, "outbound-dial", "queued", parent_call_sid=call.sid, timeout=timeout,
                            status_callback=document.resolve(twiml.attr(noun, "statusCallback")),
                            status_callback_method=twiml.attr(noun, "statusCallbackMethod", "POST"),
                            status_callback_events=events)
        legs.append((leg, noun))

        def answered(leg: Call = leg) -> None:
            sim.interrupt(call, LegAnswered(leg), guard=lambda: outcome.status == "ringing")

        def failed(leg: Call = leg) -> None:
            sim.interrupt(call, LegFailed(leg), guard=lambda: outcome.status == "ringing")

        sim.ring(leg, answered, failed)
    winner = None
    failures: set[str] = set()
    try:
        while winner is None:
            try:
                yield Wait()
            except LegFailed as failure:
                failures.add(failure.leg.sid)
                if len(failures) == len(legs):
                    outcome.status = failure.leg.status  # busy, no-answer or failed
                    return
            except LegAnswered as answer:
                winner = answer.leg
        _stop_ringing(sim, legs, "another phone answered")
        noun = next(noun for leg, noun in legs if leg is winner)
        outcome.status, outcome.dialed_sid = "in-progress", winner.sid
        sim.pair(call, winner)
        whisper = document.resolve(twiml.attr(noun, "url"))
        sim.run(winner, leg_program(sim, winner, call, whisper, twiml.attr(noun, "method", "POST"), outcome))
        try:
            yield Wait()
        except BridgeEnded:
            pass
        outcome.status = "completed" if outcome.connected_at is not None else "no-answer"
    finally:
        _stop_ringing(sim, legs, "the caller hung up")
        if winner is not None:
            if outcome.status == "in-progress":
                outcome.status = "completed"
            sim.disconnect(call)


def _stop_ringing(sim, legs: list[tuple[Call, ET.Element]], reason: str) -> None:
    for leg, _ in legs:
        if leg.status in ("queued", "ringing"):
            sim.finish(leg, "canceled")
            sim.record(leg, "hangup", reason=reason)


def _client_address(noun: ET.Element) -> str:
    identity = twiml.text(noun)
    for child in noun:  # <Client><Identity>alice</Identity><Parameter .../></Client>
        if child.tag == "Identity":
            identity = twiml.text(child)
    return identity if identity.startswith("client:") else f"client:{identity}"


def leg_program(sim, leg: Call, parent: Call, whisper: str | None, method: str, outcome: DialOutcome) -> Program:
    """The dialed phone's side: its whisper TwiML (the noun's `url`), then the conversation."""
    try:
        if whisper:
            from callcenter.simulator.verbs import run_verbs

            document = sim.fetch(leg, "dial-whisper", whisper, method)
            yield from run_verbs(sim, leg, document)
        if leg.peer is not parent or not parent.is_active:
            return
        outcome.connected_at = sim.now()
        sim.connect(leg, parent)
        yield Wait()
    except BridgeEnded:
        return
    except Redirect as redirect:  # the app moved this leg elsewhere (a transfer): it leaves the parent
        sim.disconnect(leg)
        from callcenter.simulator.verbs import document_program

        yield from document_program(sim, leg, redirect)
    finally:
        sim.disconnect(leg)


def dial_queue(sim, call: Call, noun: ET.Element, document: twiml.Document, outcome: DialOutcome) -> Program:
    """Connect this call to the caller at the front of the named queue."""
    queue = sim.queue_named(twiml.text(noun), create=False)
    member = queue.members[0] if queue is not None and queue.members else None
    if member is None:
        sim.record(call, "dial-queue-empty", queue=twiml.text(noun))
        outcome.status = "failed"
        return
    queue.remove(member)
    caller = member.call
    outcome.status, outcome.dialed_sid = "in-progress", caller.sid
    sim.pair(call, caller)
    sim.interrupt(caller, Bridged(call, document.resolve(twiml.attr(noun, "url")), twiml.attr(noun, "method", "POST")),
                  guard=lambda: caller.peer is call)
    try:
        yield Wait()
    except BridgeEnded:
        pass
    finally:
        if caller.connected_at is not None or call.connected_at is not None:
            outcome.connected_at = call.connected_at
        outcome.status = "completed"
        sim.disconnect(call)
