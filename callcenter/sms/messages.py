"""The Messaging webhook of the contact center's number: an agent's text in, one SMS (TwiML `<Message>`) out."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request

from callcenter.contact_center import NotLoaded, SpecError, current
from callcenter.database import get_router
from callcenter.phones import to_e164
from callcenter.signatures import twilio_webhook
from twiml.messaging import no_reply, reply

from . import bp, commands
from .directory import PhoneDirectory

log = logging.getLogger("callcenter.sms")

NOT_SET_UP = "Sorry, text commands are not set up on this number yet."
UNKNOWN_SENDER = ("Sorry, this phone number is not registered to an agent, so nothing was changed. "
                  "Please ask your supervisor to add it.")
SHARED_NUMBER = ("Sorry, this phone number is registered to more than one agent, so nothing was changed. "
                 "Please ask your supervisor to fix it.")
# Twilio's opt-out and opt-in keywords: Twilio itself answers them (and, after STOP, refuses to text the
# number); a reply of ours would be refused, or a second, confusing answer.
CARRIER_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "start", "yes", "unstop"})


def directory(app: Flask) -> PhoneDirectory:
    """The app's phone-number index (one per process, like the router)."""
    found = app.extensions.get("sms_directory")
    if found is None:
        found = app.extensions["sms_directory"] = PhoneDirectory(get_router(app))
    return found


def sms(text: str) -> Response:
    return Response(str(reply(text)), mimetype="text/xml")


@bp.post("/incoming")
@twilio_webhook
def incoming():
    """An agent texts a command; the answer says what changed."""
    message_sid, body = request.form.get("MessageSid", ""), request.form.get("Body", "")
    if commands.normalized(body) in CARRIER_KEYWORDS:
        log.info("text %s from %s: %r is Twilio's opt-out/opt-in keyword; Twilio answers it", message_sid,
                 request.form.get("From"), body)
        return Response(str(no_reply()), mimetype="text/xml")
    try:
        center = current()
    except (NotLoaded, SpecError) as err:
        log.error("text without a contact center: %s", err)
        return sms(NOT_SET_UP)
    sender = to_e164(request.form.get("From"))
    workers = directory(current_app).workers_with(center.workspace_sid, sender) if sender else ()
    if len(workers) > 1:
        log.warning("text %s from %s: the number belongs to workers %s", message_sid, sender, ", ".join(workers))
        return sms(SHARED_NUMBER)
    if not workers:
        log.info("text %s from unregistered number %s refused", message_sid, request.form.get("From"))
        return sms(UNKNOWN_SENDER)
    try:
        outcome = commands.run(center, message_sid=message_sid, worker_sid=workers[0], sender=sender, body=body)
    except commands.UnknownSender:
        return sms(UNKNOWN_SENDER)
    log.info("text %s from worker %s: %r -> %r%s", message_sid, workers[0], body, outcome.reply,
             " (repeated MessageSid: nothing done again)" if outcome.duplicate else "")
    return sms(outcome.reply)
