"""TwiML for replies to text messages."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse


def reply(text: str) -> MessagingResponse:
    """One SMS back to the sender."""
    response = MessagingResponse()
    response.message(text)
    return response


def no_reply() -> MessagingResponse:
    return MessagingResponse()
