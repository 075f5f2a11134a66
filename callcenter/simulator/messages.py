"""Text messages: sent by the app through the REST API, or texted in by a simulated phone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    direction: str  # inbound, outbound-api, outbound-reply
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    status_callback: str | None = None
    media_urls: list[str] = field(default_factory=list)
    log: list[dict] = field(default_factory=list, repr=False)


def _new_message(sim, to: str, from_: str, body: str, direction: str, status: str, **fields) -> Message:
    from callcenter.simulator.carrier import new_sid

    message = Message(new_sid("SM"), sim.account_sid, to, from_, body, direction, status, sim.now(), sim.now(), **fields)
    with sim._lock:
        sim.messages[message.sid] = message
    _record(sim, message, "message", direction=direction, to=to, from_=from_, body=body)
    return message


def _record(sim, message: Message, kind: str, **detail) -> None:
    entry = {"at": sim.now().strftime("%Y-%m-%dT%H:%M:%S"), "kind": kind, "message_sid": message.sid, **detail}
    message.log.append(entry)
    sim.log.append(entry)


def send_message(sim, to: str, from_: str, body: str, status_callback: str | None = None,
                 media_urls: list[str] | None = None) -> Message:
    """A message created through the REST API: queued now, then sent and delivered (with status callbacks)."""
    message = _new_message(sim, to, from_, body, "outbound-api", "queued", status_callback=status_callback,
                           media_urls=media_urls or [])
    sim.scheduler.soon(lambda: _set_status(sim, message, "sent"), "message sent")
    sim.scheduler.after(1, lambda: _set_status(sim, message, "delivered"), "message delivered")
    return message


def _set_status(sim, message: Message, status: str) -> None:
    message.status, message.date_updated = status, sim.now()
    if status == "sent":
        message.date_sent = sim.now()
    _record(sim, message, "message-status", status=status)
    if message.status_callback:
        params = {"AccountSid": sim.account_sid, "ApiVersion": "2010-04-01", "MessageSid": message.sid,
                  "SmsSid": message.sid, "MessageStatus": status, "SmsStatus": status, "From": message.from_,
                  "To": message.to}
        reply = sim.webhook(None, "message-status-callback", message.status_callback, "POST", params)
        _record(sim, message, "webhook", purpose="message-status-callback", url=message.status_callback,
                params=params, status=reply.status)


def receive_sms(sim, from_: str, body: str, to: str) -> Message:
    """A text from a simulated phone: posted (signed) to the number's SMS URL; `<Message>` replies are sent."""
    number = sim.numbers[to]
    message = _new_message(sim, to, from_, body, "inbound", "received")

    def deliver() -> None:
        params = {"MessageSid": message.sid, "SmsSid": message.sid, "SmsMessageSid": message.sid,
                  "AccountSid": sim.account_sid, "From": from_, "To": to, "Body": body, "NumMedia": "0",
                  "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        reply = sim.webhook(None, "incoming-message", number.sms_url, number.sms_method, params)
        _record(sim, message, "webhook", purpose="incoming-message", url=number.sms_url, params=params,
                status=reply.status, reply=reply.body[:4000])
        if not 200 <= reply.status < 300:
            sim.error(None, 11200, f"HTTP retrieval failure: {reply.status} from {number.sms_url}")
            return
        for text in _replies(sim, reply.body):
            answer = _new_message(sim, from_, to, text, "outbound-reply", "sent", date_sent=sim.now())
            _record(sim, answer, "message-reply", in_reply_to=message.sid)

    if number.sms_url:
        sim.scheduler.soon(deliver, "incoming message")
    return message


def _replies(sim, body: str) -> list[str]:
    if not body.strip():
        return []
    try:
        root = ET.fromstring(body.strip().encode())
    except ET.ParseError as error:
        sim.error(None, 12100, f"Document parse failure: {error}")
        return []
    texts = []
    for element in root.iter("Message"):
        nested = element.find("Body")
        texts.append(((nested.text if nested is not None else element.text) or "").strip())
    return texts


def inbox(sim, number: str) -> list[Message]:
    """Every message sent to `number`, oldest first."""
    return [message for message in sim.messages.values() if message.to == number]
