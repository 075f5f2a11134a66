"""The simulated people: callers who phone the contact center, and agents' phones that it rings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


def _inputs(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class Caller:
    """Someone phoning in.

    `digits` / `speech`: what they answer to successive `<Gather>`s (a string for one answer, a list
    for several); `patience`: seconds they wait in a queue before hanging up (None: forever);
    `voicemail`: whether they speak after a `<Record>` prompt (for `voicemail_seconds`) or hang up;
    `talk_time`: seconds after being connected to someone before they hang up (None: they let the
    other side end the call).
    """

    number: str
    digits: str | Sequence[str] | None = None
    speech: str | Sequence[str] | None = None
    patience: float | None = None
    voicemail: bool = False
    voicemail_seconds: float = 12.0
    voicemail_text: str = "Please call me back."
    talk_time: float | None = None
    think_time: float = 1.0
    pending_digits: list[str] = field(default_factory=list, init=False, repr=False)
    pending_speech: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.pending_digits = _inputs(self.digits)
        self.pending_speech = _inputs(self.speech)

    def answer_gather(self, accepts_dtmf: bool, accepts_speech: bool) -> tuple[str, str] | None:
        """The next answer this caller gives to a prompt: ("dtmf", "1"), ("speech", "sales") or None."""
        if accepts_dtmf and self.pending_digits:
            return "dtmf", self.pending_digits.pop(0)
        if accepts_speech and self.pending_speech:
            return "speech", self.pending_speech.pop(0)
        return None


@dataclass
class Phone:
    """An agent's phone or browser client, keyed by E.164 number, `client:identity` or `sip:` URI.

    `answer_after`: seconds of ringing before it is picked up (None: never answered);
    `busy`: every call to it gets a busy signal; `handle_time`: seconds of conversation after
    which the agent hangs up (None: the agent waits for the other side); `digits`: keys pressed at
    successive `<Gather>`s on this phone; `then_digits`: the key pressed at every later prompt once
    `digits` are used up (e.g. "1" for an agent who takes every call offered).
    """

    contact: str
    answer_after: float | None = 2.0
    handle_time: float | None = 60.0
    busy: bool = False
    digits: str | Sequence[str] | None = None
    think_time: float = 1.0
    then_digits: str | None = None
    calls: list[str] = field(default_factory=list)
    active_calls: set[str] = field(default_factory=set)
    double_booked: list[str] = field(default_factory=list)
    pending_digits: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.contact = contact_key(self.contact)
        self.pending_digits = _inputs(self.digits)

    def answer_gather(self, accepts_dtmf: bool, accepts_speech: bool) -> tuple[str, str] | None:
        """Keys the agent presses at a prompt (e.g. "press 1 to take this call")."""
        if accepts_dtmf and self.pending_digits:
            return "dtmf", self.pending_digits.pop(0)
        if accepts_dtmf and self.then_digits:
            return "dtmf", self.then_digits
        return None


def contact_key(address: str) -> str:
    """`client:alice`, `+15551230000`, `sip:bob@example.com`: one spelling per endpoint."""
    address = address.strip()
    if address.startswith(("client:", "sip:")):
        return address
    return address.replace(" ", "")
