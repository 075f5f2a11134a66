"""Twilio-shaped sids: a two-letter prefix and 32 lowercase hex digits."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

PREFIXES = {
    "account": "AC",
    "workspace": "WS",
    "activity": "WA",
    "task_channel": "TC",
    "task_queue": "WQ",
    "worker": "WK",
    "worker_channel": "WC",
    "workflow": "WW",
    "task": "WT",
    "reservation": "WR",
    "event": "EV",
}

_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


def new_sid(prefix: str) -> str:
    """A fresh sid such as `WT3f2a...` (34 characters), from 128 random bits."""
    return prefix + entropy(16).hex()


def new_ordered_sid(prefix: str, moment: datetime) -> str:
    """A fresh sid whose first 12 hex digits are `moment` (naive UTC) in milliseconds since 1970, and the
    other 20 random (80 bits), as a UUIDv7 is made: rows written in time order are appended to the sid's
    index instead of landing on a random page of it, which for events (eight per call) saves a page or
    two of every commit and keeps the index's hot end in the cache however large it grows."""
    return f"{prefix}{(moment - _EPOCH) // _MILLISECOND:012x}{entropy(10).hex()}"


_EPOCH, _MILLISECOND = datetime(1970, 1, 1), timedelta(milliseconds=1)

entropy = os.urandom  # the randomness of new sids (tests make it sequential, to replay examples)


def is_sid(value: object, prefix: str | None = None) -> bool:
    """True when `value` looks like a sid (of `prefix`, when given)."""
    if not isinstance(value, str) or not _SID.match(value):
        return False
    return prefix is None or value.startswith(prefix)
