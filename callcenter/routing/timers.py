"""Timers: rows with a due time, fired by a sweep in each process.

Nothing waits in memory. A sweep reads what is due, and fires each timer inside its workspace's
write transaction: it deletes the row and applies the effect together, so a timer fires once
even when several processes sweep at the same time (the second finds the row gone), and a timer
that came due while every process was down fires on the first sweep after restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from .models import Reservation, Task, Timer
from .router import Router, Tx

log = logging.getLogger("callcenter.routing.timers")
# Told of every timer fired: fn(kind, lag seconds = fire time - due_at); callcenter/metrics.py adds one.
FIRED_OBSERVERS: list[Callable[[str, float], None]] = []
# A timer whose handler fails is tried again this much later: behind the timers that are due meanwhile, so
# that failing ones, however many, never fill every sweep's batch and hold the others back.
RETRY_FAILED_AFTER = timedelta(seconds=60)


def fire_due_timers(router: Router, limit: int = 500) -> int:
    """Fire every timer due by the router's clock (at most `limit`); returns how many fired."""
    now = router.clock.now()
    with router.read() as session:
        due = session.execute(
            select(Timer.id, Timer.workspace_sid, Timer.kind, Timer.subject_sid, Timer.due_at)
            # Only kinds this process can fire: an application's timers wait for it to register their handler
            # (rather than failing, and filling every sweep's batch, until it does).
            .where(Timer.due_at <= now, Timer.kind.in_(list(HANDLERS))).order_by(Timer.due_at, Timer.id).limit(limit)
        ).all()
    fired = 0
    for timer_id, workspace_sid, kind, subject_sid, due_at in due:
        try:
            with router.transaction(workspace_sid) as tx:
                # SQLite hands a deleted row's id to the next insert, so an id alone may now name a
                # timer created while this sweep ran: claim the row only if it is still this one.
                claimed = tx.session.execute(delete(Timer).where(
                    Timer.id == timer_id, Timer.kind == kind, Timer.subject_sid == subject_sid, Timer.due_at == due_at,
                )).rowcount
                if not claimed:
                    continue  # another process fired it, or the subject moved on and cancelled it
                HANDLERS[kind](tx, subject_sid)
                fired += 1
            for observe in FIRED_OBSERVERS:
                try:
                    observe(kind, (tx.now - due_at).total_seconds())
                except Exception:  # metrics must never make a fired timer look failed
                    log.exception("timer observer failed")
        except Exception as err:
            # A timer that cannot fire must not block the others; it is logged with its subject. The database's own
            # trouble (locked, connection lost) passes: the timer stays due for the next sweep. Anything else would
            # fail again: the timer is tried again later, behind the others.
            transient = isinstance(err, (OperationalError, InterfaceError))
            field = {"WR": "reservation_sid", "WT": "task_sid", "CA": "call_sid"}.get(subject_sid[:2], "subject_sid")
            log.exception("timer %s for %s failed; %s", kind, subject_sid,
                          "trying again at the next sweep" if transient else
                          f"trying again in {RETRY_FAILED_AFTER.total_seconds():.0f} s",
                          extra={"workspace_sid": workspace_sid, field: subject_sid})  # sids for JSON logs
            if not transient:
                _retry_later(router, workspace_sid, (timer_id, kind, subject_sid, due_at))
    return fired


def _retry_later(router: Router, workspace_sid: str, timer: tuple) -> None:
    timer_id, kind, subject_sid, due_at = timer
    try:
        with router.transaction(workspace_sid) as tx:
            tx.session.execute(update(Timer).where(
                Timer.id == timer_id, Timer.kind == kind, Timer.subject_sid == subject_sid, Timer.due_at == due_at,
            ).values(due_at=tx.now + RETRY_FAILED_AFTER))
    except Exception:  # the database itself is failing: the timer stays due, and the next sweep tries again
        log.exception("timer %s for %s could not be put off", kind, subject_sid)


def _reservation_timeout(tx: Tx, reservation_sid: str) -> None:
    from .reservations import time_out_reservation

    reservation = tx.session.get(Reservation, reservation_sid)
    if reservation is not None and reservation.reservation_status == "pending":
        time_out_reservation(tx, reservation)


def _target_timeout(tx: Tx, task_sid: str) -> None:
    from .targets import move_to_next_target

    task = tx.session.get(Task, task_sid)
    if task is not None and task.assignment_status in ("pending", "reserved"):
        move_to_next_target(tx, task)


def _task_ttl(tx: Tx, task_sid: str) -> None:
    from .tasks import cancel_task_in

    task = tx.session.get(Task, task_sid)
    if task is not None and task.assignment_status in ("pending", "reserved"):
        cancel_task_in(tx, task, "Task TTL Exceeded")


def _task_cleanup(tx: Tx, task_sid: str) -> None:
    task = tx.session.get(Task, task_sid)
    if task is not None and task.assignment_status in ("completed", "canceled"):
        tx.session.delete(task)


def _assigned_max_age(tx: Tx, task_sid: str) -> None:
    from .tasks import remove_task_in

    task = tx.session.get(Task, task_sid)
    if task is not None and task.assignment_status in ("assigned", "wrapping"):
        remove_task_in(tx, task, "task.system-deleted")


HANDLERS: dict[str, Callable[[Tx, str], None]] = {
    "reservation_timeout": _reservation_timeout,
    "target_timeout": _target_timeout,
    "task_ttl": _task_ttl,
    "task_cleanup": _task_cleanup,
    "assigned_max_age": _assigned_max_age,
}


def register_timer(kind: str, handler: Callable[[Tx, str], None]) -> None:
    """Let an application built on the engine keep its own durable timers (e.g. the end of wrap-up).

    The handler runs inside the workspace's write transaction, like the engine's own timers, and
    must tolerate a subject that has moved on. Every process that sweeps must register it.
    """
    existing = HANDLERS.get(kind)
    if existing is not None and existing is not handler:
        raise ValueError(f"timer kind {kind!r} is already handled by {existing.__qualname__}")
    HANDLERS[kind] = handler
