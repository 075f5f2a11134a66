"""Who is texting: the agent whose worker has the sender's phone number, from a small per-process index.

A worker's number is its `phone` attribute, else its `contact_uri` when that is a phone number, both
compared in E.164. Parsing every worker's attributes on every text would cost a workspace of
thousands of agents milliseconds per message, so each process keeps `{number: worker sids}` per
workspace and rebuilds it only when the workspace's worker.created, worker.attributes.update or
worker.deleted events change (events are append-only; their count and latest date are read from an
index). Activity changes, by far the most frequent worker updates, leave the index alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from callcenter.phones import phone_of
from callcenter.routing import Router
from callcenter.routing.models import Event, Worker

# The only events after which a worker's number can have changed.
WORKER_IDENTITY_EVENTS = ("worker.created", "worker.attributes.update", "worker.deleted")
@dataclass(frozen=True)
class _Index:
    fingerprint: tuple[int, datetime | None]
    workers_by_phone: dict[str, tuple[str, ...]]


class PhoneDirectory:
    """Finds the workers registered with a phone number; one per app (see `directory(app)`)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()
        self.rebuilds = 0  # how many times an index was built (tests check it stays put)

    def workers_with(self, workspace_sid: str, phone: str) -> tuple[str, ...]:
        """The sids of the workspace's workers registered with `phone` (E.164): usually one, or none."""
        with self.router.read() as session:
            fingerprint = tuple(session.execute(
                select(func.count(), func.max(Event.event_date))
                .where(Event.workspace_sid == workspace_sid, Event.event_type.in_(WORKER_IDENTITY_EVENTS))
            ).one())
        index = self._indexes.get(workspace_sid)
        if index is None or index.fingerprint != fingerprint:
            with self._lock:
                index = self._indexes.get(workspace_sid)
                if index is None or index.fingerprint != fingerprint:
                    index = self._build(workspace_sid, fingerprint)
                    self._indexes[workspace_sid] = index
        return index.workers_by_phone.get(phone, ())

    def _build(self, workspace_sid: str, fingerprint: tuple[int, datetime | None]) -> _Index:
        # The fingerprint was read first: a change made while building is seen by the next text.
        found: dict[str, list[str]] = {}
        with self.router.read() as session:
            rows = session.execute(select(Worker.sid, Worker.attributes).where(Worker.workspace_sid == workspace_sid))
            for sid, attributes in rows:
                phone = phone_of(attributes)
                if phone:
                    found.setdefault(phone, []).append(sid)
        self.rebuilds += 1
        return _Index(fingerprint, {phone: tuple(sids) for phone, sids in found.items()})
