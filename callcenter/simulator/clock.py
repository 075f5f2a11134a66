"""Time for the simulator: a virtual clock that jumps from event to event, or the wall clock.

Every simulated delay (a phone ringing, a prompt playing, a caller's patience) is an event in the
`Scheduler`. With a `VirtualClock`, `advance(seconds)` runs the events due in that span at their own
moments, so a day of calls runs in seconds and tests never sleep. With the `WallClock`, a runner
thread (`Scheduler.run_forever`) fires events as real time reaches them, for demos.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callcenter.routing.clock import FakeClock, SystemClock

log = logging.getLogger("callcenter.simulator")


# The engine's clocks: one object can drive the simulator and the engine together.
VirtualClock = FakeClock
WallClock = SystemClock


def is_virtual(clock: object) -> bool:
    """A clock the simulator may move itself (anything with `set`, such as the engine's FakeClock)."""
    return callable(getattr(clock, "set", None))


@dataclass(order=True)
class Event:
    due: datetime
    seq: int
    action: Callable[[], None] = field(compare=False)
    label: str = field(compare=False, default="")


class Scheduler:
    """Events in due order; ties run in the order they were scheduled."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self._heap: list[Event] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._running = False
        self._stopping = threading.Event()

    def at(self, due: datetime, action: Callable[[], None], label: str = "") -> None:
        with self._lock:
            heapq.heappush(self._heap, Event(due, next(self._seq), action, label))
        self._wake.set()

    def after(self, seconds: float, action: Callable[[], None], label: str = "") -> None:
        self.at(self.clock.now() + timedelta(seconds=seconds), action, label)

    def soon(self, action: Callable[[], None], label: str = "") -> None:
        """Run `action` at the current moment, after whatever is already due now."""
        self.after(0, action, label)

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def next_due(self) -> datetime | None:
        with self._lock:
            return self._heap[0].due if self._heap else None

    def _pop_due(self, limit: datetime) -> Event | None:
        with self._lock:
            if self._heap and self._heap[0].due <= limit:
                return heapq.heappop(self._heap)
            return None

    def run_next(self, limit: datetime) -> bool:
        """Run the first event due by `limit` (moving a virtual clock to its moment)."""
        event = self._pop_due(limit)
        if event is None:
            return False
        if is_virtual(self.clock) and event.due > self.clock.now():
            self.clock.set(event.due)
        event.action()
        return True

    def advance(self, seconds: float) -> None:
        target = self.clock.now() + timedelta(seconds=seconds)
        while self.run_next(target):
            pass
        if self.clock.now() < target:
            self.clock.set(target)

    def run_due(self) -> int:
        count = 0
        while self.run_next(self.clock.now()):
            count += 1
        return count

    def run_forever(self, poll: float = 0.05) -> None:
        """Fire events as the wall clock reaches them until `stop()`."""
        self._stopping.clear()
        while not self._stopping.is_set():
            try:
                self.run_due()
            except Exception:  # one bad event must not stop every simulated call
                log.exception("simulator event failed")
            due = self.next_due()
            wait = poll if due is None else max(0.0, min(poll, (due - self.clock.now()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
