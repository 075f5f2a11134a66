"""Checks on values that come from outside, with TaskRouter's limits and Twilio-style messages.

Every check raises `InvalidParameter` before anything is written, so bad input changes nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from .errors import InvalidParameter, LimitExceeded

MAX_ATTRIBUTES = 4096
MAX_FRIENDLY_NAME = 64
MAX_PRIORITY = 2_147_483_647


def friendly_name(value: Any, field: str = "FriendlyName", *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise InvalidParameter(f"Missing required parameter {field} in the post body")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"{field} must be a non-empty string")
    if len(value) > MAX_FRIENDLY_NAME:
        raise InvalidParameter(f"{field} must be at most {MAX_FRIENDLY_NAME} characters")
    return value


def attributes(value: Any, field: str = "Attributes") -> str:
    """A JSON object given as a string (or a dict), at most 4,096 characters, returned as the string."""
    if isinstance(value, dict):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise InvalidParameter(f"{field} must be a JSON object string")
    if len(value) > MAX_ATTRIBUTES:
        raise LimitExceeded(f"{field} is {len(value)} characters; the limit is {MAX_ATTRIBUTES}")
    try:
        parsed = json.loads(value, parse_constant=not_json)
    except ValueError as err:
        raise InvalidParameter(f"{field} is not valid JSON: {err}") from None
    except RecursionError:  # `[[[[...]]]]` a few thousand deep: the parser gives up before the 4,096 limit does
        raise InvalidParameter(f"{field} nests too deeply") from None
    if not isinstance(parsed, dict):
        raise InvalidParameter(f"{field} must be a JSON object, not {type(parsed).__name__}")
    return value


def not_json(constant: str) -> Any:
    """NaN, Infinity and -Infinity: Python's parser takes them, JSON (and every browser, and Twilio) does not;
    kept, they would be written back out in answers that JSON.parse refuses."""
    raise ValueError(f"{constant} is not a JSON value")


def url(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidParameter(f"{field} must be an absolute http(s) URL")
    return value


def callback_url(router: Any, value: Any, field: str) -> str | None:
    """A URL this server will send callbacks to: absolute http(s), and outside the networks the router's
    callback policy blocks (callback_network.py)."""
    return router.callback_policy.check_url(url(value, field), field)


def integer(value: Any, field: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool):
        raise InvalidParameter(f"{field} must be an integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidParameter(f"{field} must be an integer") from None
    if not isinstance(value, int):
        raise InvalidParameter(f"{field} must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidParameter(f"{field} must be between {minimum} and {maximum}")
    return value


def boolean(value: Any, field: str) -> bool:
    """TaskRouter's rule: `true`, `1`, `yes` (any case) are true; anything else is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidParameter(f"{field} must be a boolean")


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        for option in allowed:
            if value.upper() == option.upper():
                return option
    raise InvalidParameter(f"{field} must be one of {', '.join(allowed)}")
