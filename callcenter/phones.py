"""Phone numbers: everything we store or compare is E.164 (`+14155550100`)."""

from __future__ import annotations

import json
import re
from typing import Any

import phonenumbers

DEFAULT_REGION = "US"


def to_e164(text: str | None, region: str = DEFAULT_REGION) -> str | None:
    """The E.164 form of a phone number as people write it, or None when it is not a possible number."""
    if not text:
        return None
    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_phone_number(contact_uri: str | None) -> bool:
    """True for a PSTN number; False for `client:` identities and `sip:` addresses."""
    return bool(contact_uri) and not contact_uri.startswith(("client:", "sip:")) and to_e164(contact_uri) is not None


def spoken(number: str | None) -> str:
    """A number as text-to-speech should read it: digit by digit."""
    digits = [c for c in (number or "") if c.isdigit()]
    return " ".join(digits) if digits else "an unknown number"


_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# What Twilio puts in `From` for a caller who withheld their number (and carriers' variants of it).
WITHHELD = frozenset({"+266696687", "+7378742833", "+8656696", "+2562533", "anonymous", "restricted", "unknown",
                      "unavailable", "private"})


def phone_of(attributes: str | dict[str, Any]) -> str | None:
    """The E.164 number an agent texts from, and is texted at: `phone`, else a phone-number `contact_uri`."""
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            return None
    if not isinstance(attributes, dict):
        return None
    phone = attributes.get("phone")
    number = _e164(phone) if isinstance(phone, str) else None
    if number is None:
        contact_uri = attributes.get("contact_uri")
        if isinstance(contact_uri, str) and not contact_uri.startswith(("client:", "sip:")):
            number = _e164(contact_uri)
    return number


def _e164(text: str) -> str | None:
    # Numbers already in E.164 (what `contact-center load` stores) skip the phone-number parser, which
    # costs ~100 µs a number: most of an index build. A sender's number is always parsed (to_e164),
    # so an impossible number kept here as written can never match one.
    return text if _E164.fullmatch(text) else to_e164(text)


def caller_shown(number: str | None) -> str:
    """A caller's number as a supervisor should read it: a withheld one is not a number to call back."""
    if not number:
        return "an unknown number"
    if number.strip().lower() in WITHHELD:
        return "a withheld number"
    return number
