"""Twilio-shaped sids: a two-letter prefix and 32 lowercase hex digits."""

from __future__ import annotations

import os
import re

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


entropy = os.urandom  # the randomness of new sids (tests make it sequential, to replay examples)


def is_sid(value: object, prefix: str | None = None) -> bool:
    """True when `value` looks like a sid (of `prefix`, when given)."""
    if not isinstance(value, str) or not _SID.match(value):
        return False
    return prefix is None or value.startswith(prefix)
