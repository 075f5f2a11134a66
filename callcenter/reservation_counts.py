"""Reservations by outcome per workspace, as running totals that each `/metrics` scrape brings up to date.

The events table keeps every state change for the retention period (30 days by default: millions of
rows at TaskRouter's limits), so counting its `reservation.*` rows at every scrape would cost more
every day, and would go back as old events are deleted. Instead `reservation_counts` holds the totals
and `event_cursors` the id of the last event counted; a scrape adds the events written since, read by
a range of the events' primary key, so its cost follows the traffic since the last scrape, not the
history. The totals live in the database: every process reports the same values, and they never go
back, across restarts or deletions of old events either (Prometheus counter semantics). Events deleted
before any scrape counted them are not counted: scraped at least once per retention period, none are.

Counting by id is only right if no event can still commit below an id already counted:
- SQLite has one writer at a time, so an event that commits later always gets a higher id.
- On PostgreSQL, writers of different workspaces commit in parallel, so a transaction that took its
  ids first may commit last. Writers of one workspace are serialized by the workspace's advisory
  lock, though, so a scrape first reads the newest id, then which workspace locks are held
  (`pg_locks`): a workspace not writing at that moment has committed everything it numbered; for one
  that is, the count stops below its transaction's ids (after its newest committed event) and the
  next scrape counts on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, func, select, text, update
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.routing import Router
from callcenter.routing.db import workspace_lock_key
from callcenter.routing.models import Base, Event, Workspace

OUTCOMES = ("created", "accepted", "rejected", "timeout", "canceled", "rescinded", "completed", "wrapup", "failed")
EVENT_TYPES = tuple(f"reservation.{outcome}" for outcome in OUTCOMES)
CURSOR = "reservation_counts"
# The most events one scrape reads. On a database that already holds millions of events (the first
# scrapes after an upgrade), the totals catch up over several scrapes instead of one slow one.
MAX_EVENTS_PER_SCRAPE = 200_000


class ReservationCount(Base):
    """How many `reservation.<outcome>` events a workspace has written, up to the cursor of `event_cursors`."""

    __tablename__ = "reservation_counts"

    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(f"outcome IN ({', '.join(repr(outcome) for outcome in OUTCOMES)})", name="outcome"),
    )


class EventCursor(Base):
    """How far a reader of the events table has got: the id of the last event it has taken into account."""

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    date_updated: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class NewEvents:
    """What one scrape read: the reservation events with ids in (`after`, `through`], counted."""

    after: int
    through: int
    stored: int | None  # the cursor as read (None: no cursor yet)
    counts: tuple[tuple[str, str, int], ...]  # (workspace_sid, outcome, how many)


def count_reservations(router: Router) -> dict[tuple[str, str], int]:
    """Bring the totals up to date with the events committed since the last call; return them by
    (workspace_sid, outcome)."""
    new = read_new_events(router)
    if new.through > new.after or new.stored != new.after:
        add_new_events(router, new)
    return reservation_totals(router)


def read_new_events(router: Router) -> NewEvents:
    """Count the reservation events past the cursor that are safe to count now (reads only)."""
    with router.read() as session:
        cursor = session.get(EventCursor, CURSOR)
        stored = cursor.last_event_id if cursor is not None else None
        newest = session.scalar(select(func.max(Event.id))) or 0
        # SQLite hands out the ids of deleted rows again (deleting the workspace that wrote the newest
        # events): count on from the newest id that is left.
        after = min(stored or 0, newest)
        through = newest
        if newest - after > MAX_EVENTS_PER_SCRAPE:  # a long way behind: this many events now (ids may have gaps)
            through = session.scalar(select(Event.id).where(Event.id > after).order_by(Event.id)
                                     .offset(MAX_EVENTS_PER_SCRAPE - 1).limit(1)) or newest
        if through > after and session.get_bind().dialect.name == "postgresql":
            through = _settled(session, after, through)
        counts: tuple[tuple[str, str, int], ...] = ()
        if through > after:
            rows = session.execute(
                select(Event.workspace_sid, Event.event_type, func.count())
                .where(Event.id > after, Event.id <= through, Event.event_type.in_(EVENT_TYPES))
                .group_by(Event.workspace_sid, Event.event_type)).all()
            counts = tuple((ws, event_type.removeprefix("reservation."), count) for ws, event_type, count in rows)
    return NewEvents(after, through, stored, counts)


def _settled(session, after: int, through: int) -> int:
    """PostgreSQL: lower `through` below the ids of any workspace transaction still running (see the module)."""
    # In this order: the newest id was read before; a workspace not writing now has committed all it numbered.
    held = session.execute(text(
        "SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).all()
    if not held:
        return through
    keys = {_signed((int(high) << 32) | int(low)) for high, low in held}
    busy = [sid for sid in session.scalars(select(Workspace.sid)) if workspace_lock_key(sid) in keys]
    if not busy:
        return through
    # A running transaction of a busy workspace numbers its events after that workspace's newest
    # committed one: count up to there (no further than `after` if it has none in the range).
    newest_of = dict(session.execute(
        select(Event.workspace_sid, func.max(Event.id))
        .where(Event.id > after, Event.id <= through, Event.workspace_sid.in_(busy))
        .group_by(Event.workspace_sid)).all())
    return min([through, *(newest_of.get(sid, after) for sid in busy)])


def _signed(key: int) -> int:
    return key - (1 << 64) if key >= 1 << 63 else key


def add_new_events(router: Router, new: NewEvents) -> bool:
    """Add what `read_new_events` counted and move the cursor, unless another scrape moved it first
    (then nothing is added: those events are counted once, by that scrape). True if added."""
    with router.transaction(None) as tx:
        session, dialect = tx.session, tx.session.get_bind().dialect.name
        if new.stored is None:
            moved = _insert_ignoring_duplicates(session, dialect, EventCursor.__table__,
                                                [{"name": CURSOR, "last_event_id": new.through,
                                                  "date_updated": tx.now}])
        else:
            moved = session.execute(
                update(EventCursor).where(EventCursor.name == CURSOR, EventCursor.last_event_id == new.stored)
                .values(last_event_id=new.through, date_updated=tx.now)).rowcount
        if not moved:
            return False
        if new.counts:
            existing = {ws for (ws,) in session.execute(select(Workspace.sid).where(
                Workspace.sid.in_({ws for ws, _, _ in new.counts})))}
            rows = [{"workspace_sid": ws, "outcome": outcome, "total": count}
                    for ws, outcome, count in new.counts if ws in existing]  # a workspace deleted meanwhile
            if rows:
                _add_to_totals(session, dialect, rows)
    return True


def _insert_ignoring_duplicates(session, dialect: str, table, rows: list[dict]) -> int:
    insert = _dialect_insert(dialect)
    # RETURNING, not rowcount: psycopg reports -1 for a multi-row VALUES insert.
    statement = insert(table).values(rows).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return len(session.execute(statement).all())


def _add_to_totals(session, dialect: str, rows: list[dict]) -> None:
    insert = _dialect_insert(dialect)
    statement = insert(ReservationCount.__table__).values(rows)
    session.execute(statement.on_conflict_do_update(
        index_elements=["workspace_sid", "outcome"],
        set_={"total": ReservationCount.__table__.c.total + statement.excluded.total}))


def _dialect_insert(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def reservation_totals(router: Router) -> dict[tuple[str, str], int]:
    """The running totals by (workspace_sid, outcome), as of the last scrape."""
    with router.read() as session:
        rows = session.execute(select(ReservationCount.workspace_sid, ReservationCount.outcome,
                                      ReservationCount.total)).all()
    return {(ws, outcome): total for ws, outcome, total in rows}
