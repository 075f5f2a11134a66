"""Retention of events: TaskRouter keeps a workspace's events for 30 days, and so does this engine.

Without it the events table only grows: eight rows of about a kilobyte for every call. The sweeper
deletes events older than `Router.event_retention`, oldest first, a hundred rows per transaction so
that routing never waits long behind a delete (about 3 ms each on the benchmark machine, as long as a
routing operation), at most 50 transactions per workspace once a minute per process: 5,000 rows a
minute, enough to catch up with a busy center's backlog within days. Several processes deleting the
same rows is harmless: the second finds them gone. Events of a task that still exists are kept
whatever their age: they are its history, and the invariant check expects its `task.created`.
Cumulative statistics look back at most 30 days, so with the default retention nothing they count is
deleted; the Events list may reach further back and gets the events still kept.

Callbacks given up on (outbox rows marked `dead`, kept so that they can be looked into) go after the
same time since their last attempt: a callback URL that stays broken would otherwise add one for
every event. Only pending messages hold back newer ones of the same task, so deleting dead ones
changes no delivery.

Both purges are the first entries of `Router.purgers`, which the sweeper runs in turn; the apps built
on the engine add purges of their own rows there (the voice app's call records).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, select

from .errors import NotFound
from .models import Event, OutboxMessage, Task, Workspace

if TYPE_CHECKING:
    from .router import Router, Tx

EVENT_RETENTION = timedelta(days=30)
PURGE_BATCH = 100  # rows per transaction: about as long a hold of the write lock as a routing operation


def retention_from_days(value: int | str, setting: str = "EVENT_RETENTION_DAYS", kept: str = "events") -> timedelta | None:
    """A retention setting (`EVENT_RETENTION_DAYS` by default) as a retention: a whole number of days, 0 for
    none (`kept` kept for ever)."""
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{setting} must be a whole number of days (0 keeps {kept} for ever), not {value!r}") from None
    if days < 0:
        raise ValueError(f"{setting} cannot be negative ({days}); 0 keeps {kept} for ever")
    return timedelta(days=days) if days else None


def purge_expired_events(router: Router, *, batch: int = PURGE_BATCH, max_batches: int = 50) -> int:
    """Delete events older than the router's retention (none when it is None), at most `max_batches`
    transactions of `batch` rows per workspace; returns how many were deleted."""
    if router.event_retention is None:
        return 0
    cutoff = router.clock.now() - router.event_retention
    with router.read() as session:
        workspace_sids = list(session.scalars(select(Workspace.sid).order_by(Workspace.sid)))
    deleted = 0
    for workspace_sid in workspace_sids:
        expired = (select(Event.id)
                   .where(Event.workspace_sid == workspace_sid, Event.event_date < cutoff,
                          ~exists().where(Task.sid == Event.task_sid))
                   .order_by(Event.event_date, Event.id).limit(batch))
        try:
            deleted += delete_in_batches(router, workspace_sid,
                                         rows_deleted_by(delete(Event).where(Event.id.in_(expired.scalar_subquery()))),
                                         batch, max_batches)
        except NotFound:  # the workspace was deleted meanwhile, and its events with it
            continue
    return deleted


def purge_dead_callbacks(router: Router, *, batch: int = PURGE_BATCH, max_batches: int = 50) -> int:
    """Delete outbox messages given up on longer ago than the router's retention; returns how many."""
    if router.event_retention is None:
        return 0
    cutoff = router.clock.now() - router.event_retention
    expired = (select(OutboxMessage.id)
               .where(OutboxMessage.status == "dead", OutboxMessage.next_attempt_at < cutoff)
               .order_by(OutboxMessage.id).limit(batch))
    # Outbox rows are no workspace's routing state: a transaction of no workspace.
    return delete_in_batches(router, None,
                             rows_deleted_by(delete(OutboxMessage).where(OutboxMessage.id.in_(expired.scalar_subquery()))),
                             batch, max_batches)


def rows_deleted_by(statement: Any) -> Callable[[Tx], int]:
    """A batch for `delete_in_batches`: run `statement` (a DELETE), and count the rows it deleted."""
    def run(tx: Tx) -> int:
        return tx.session.execute(statement, execution_options={"synchronize_session": False}).rowcount
    return run


def delete_in_batches(router: Router, workspace_sid: str | None, delete_batch: Callable[[Tx], int], batch: int,
                      max_batches: int) -> int:
    """Run `delete_batch`, which deletes at most `batch` rows and says how many, one transaction at a time
    until fewer go (or `max_batches` times); returns how many rows went."""
    deleted = 0
    for _ in range(max_batches):
        with router.transaction(workspace_sid) as tx:
            count = delete_batch(tx)
        deleted += count
        if count < batch:
            break
    return deleted
