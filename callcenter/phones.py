"""Phone numbers: everything we store or compare is E.164 (`+14155550100`)."""

from __future__ import annotations

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
