"""Twilio queues: named lines of waiting calls, and the `<Enqueue>` verb that puts a call in one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from callcenter.simulator import twiml
from callcenter.simulator.calls import (
    ApplicationError,
    Bridged,
    BridgeEnded,
    Call,
    Dequeued,
    HungUp,
    LeaveQueue,
    Program,
    Redirect,
    Wait,
)
from callcenter.simulator.parties import Caller


@dataclass
class Member:
    call: Call
    date_enqueued: datetime


@dataclass
class Queue:
    sid: str
    account_sid: str
    friendly_name: str
    max_size: int
    date_created: datetime
    date_updated: datetime
    members: list[Member] = field(default_factory=list)

    def add(self, call: Call, now: datetime) -> Member:
        member = Member(call, now)
        self.members.append(member)
        self.date_updated = now
        return member

    def remove(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)

    def member(self, call_sid: str) -> Member | None:
        if call_sid == "Front":
            return self.members[0] if self.members else None
        return next((m for m in self.members if m.call.sid == call_sid), None)

    def position(self, member: Member) -> int:
        return self.members.index(member) + 1

    def wait_time(self, member: Member, now: datetime) -> int:
        return int((now - member.date_enqueued).total_seconds())

    def average_wait_time(self, now: datetime) -> int:
        if not self.members:
            return 0
        return int(sum(self.wait_time(m, now) for m in self.members) / len(self.members))


def enqueue(sim, call: Call, verb: ET.Element, document: twiml.Document) -> Program:
    """Wait in the named queue, looping the wait URL, until bridged, dequeued, left, or hung up."""
    name = twiml.text(verb)
    if twiml.attr(verb, "workflowSid"):
        raise ApplicationError(13000, "<Enqueue workflowSid> (TaskRouter via Twilio) is not simulated; enqueue by name")
    if not name:
        raise ApplicationError(14204, "Enqueue: Queue name too short")
    if len(name) > 64:
        raise ApplicationError(14205, "Enqueue: Queue name too long")
    action = document.resolve(twiml.attr(verb, "action"))
    method = twiml.attr(verb, "method", "POST")
    queue = sim.queue_named(name)
    if len(queue.members) >= queue.max_size:
        yield from _after_queue(sim, call, queue, "queue-full", 0, action, method)
        return
    member = queue.add(call, sim.now())
    call.queue_sid = queue.sid
    sim.record(call, "enqueued", queue=name, queue_sid=queue.sid, position=queue.position(member))
    party = call.party
    if isinstance(party, Caller) and party.patience is not None:
        sim.scheduler.after(party.patience, lambda: member in queue.members and sim.hangup(call, reason="patience"),
                            "patience")
    result = "hangup"
    try:
        try:
            yield from _hold(sim, call, queue, member, document.resolve(twiml.attr(verb, "waitUrl")),
                             twiml.attr(verb, "waitUrlMethod", "POST"))
        finally:
            queue.remove(member)
            call.queue_sid = None
    except LeaveQueue:
        result = "leave"
    except ApplicationError as error:
        sim.error(call, error.code, error.message)
        result = "error"
    except Bridged as bridged:
        queue_time = queue.wait_time(member, sim.now())
        yield from _bridged(sim, call, queue, member, bridged, action, method)
        yield from _after_queue(sim, call, queue, "bridged", queue_time, action, method)
        return
    except Redirect as redirect:  # dequeued through the REST API, or the call itself redirected
        if action:
            sim.webhook(call, "enqueue-action", action, method,
                        _result_params(queue, "redirected", queue.wait_time(member, sim.now())))
        raise redirect from None
    except HungUp:
        if call.peer is None:
            call.outcome = "abandoned"
        if action:
            sim.webhook(call, "enqueue-action", action, method,
                        {**_result_params(queue, "hangup", queue.wait_time(member, sim.now())), "CallStatus": "completed"})
        sim.disconnect(call)
        raise
    yield from _after_queue(sim, call, queue, result, queue.wait_time(member, sim.now()), action, method)


def _hold(sim, call: Call, queue: Queue, member: Member, wait_url: str | None, wait_method: str) -> Program:
    """Loop the wait URL's TwiML (hold music) until a signal takes the call out of the queue."""
    if not wait_url:
        yield Wait()
        return
    url, method, extra = wait_url, wait_method, {}
    while True:
        started = sim.now()
        params = {"QueueSid": queue.sid, "QueuePosition": str(queue.position(member)),
                  "QueueTime": str(queue.wait_time(member, sim.now())),
                  "AvgQueueTime": str(queue.average_wait_time(sim.now())),
                  "CurrentQueueSize": str(len(queue.members)), "MaxQueueSize": str(queue.max_size), **extra}
        document = sim.fetch(call, "wait-url", url, method, params)
        from callcenter.simulator.verbs import run_verbs

        try:
            yield from run_verbs(sim, call, document, context="wait")
            url, method, extra = wait_url, wait_method, {}
        except Redirect as redirect:
            if isinstance(redirect, Dequeued) or redirect.source == "rest":
                raise
            url, method, extra = redirect.url, redirect.method, redirect.params  # stays in the queue
        if sim.now() == started:  # a wait document that takes no time: hold music until the next round
            yield Wait(sim.play_seconds)


def _bridged(sim, call: Call, queue: Queue, member: Member, bridged: Bridged, action: str | None,
             method: str) -> Program:
    """A `<Dial><Queue>` took this caller: play its `url` TwiML to the caller, then talk until one side hangs up."""
    dialer = bridged.dialer
    queue_time = queue.wait_time(member, sim.now())
    try:
        if bridged.url:
            params = {"QueueSid": queue.sid, "QueueTime": str(queue_time), "DequeingCallSid": dialer.sid}
            from callcenter.simulator.verbs import run_verbs

            document = sim.fetch(call, "dial-queue-url", bridged.url, bridged.method, params)
            yield from run_verbs(sim, call, document, context="whisper")
        if call.peer is dialer and dialer.is_active:
            sim.connect(call, dialer)
            yield Wait()
    except BridgeEnded:
        pass
    except HungUp:
        sim.disconnect(call)
        if action:
            sim.webhook(call, "enqueue-action", action, method,
                        {**_result_params(queue, "bridged", queue_time), "CallStatus": "completed"})
        raise
    finally:
        sim.disconnect(call)


def _result_params(queue: Queue, result: str, queue_time: int) -> dict[str, str]:
    return {"QueueResult": result, "QueueSid": queue.sid, "QueueTime": str(queue_time)}


def _after_queue(sim, call: Call, queue: Queue, result: str, queue_time: int, action: str | None,
                 method: str) -> Program:
    sim.record(call, "left-queue", queue=queue.friendly_name, result=result, queue_time=queue_time)
    if action:
        raise Redirect(action, method, _result_params(queue, result, queue_time), source="enqueue-action")
    return
    yield
