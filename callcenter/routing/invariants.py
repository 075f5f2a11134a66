"""The engine's invariants (DESIGN.md), checked against a live database.

`check_invariants` reads everything and reports each violation as a sentence naming the sids
involved; an empty list means the database is consistent. The property-based tests run it after
every step, and operators can run it on production (`flask routing check`).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import func, select

from .models import Event, Reservation, Task, TaskQueue, TaskQueueMember, Timer, Worker, WorkerChannel, Workspace
from .queues import parsed_attributes, target_workers_expression
from .router import Router, Tx

HOLDING = ("pending", "accepted", "wrapping")
STATUS_EVENTS = {
    "accepted": "reservation.accepted", "rejected": "reservation.rejected", "timeout": "reservation.timeout",
    "canceled": "reservation.canceled", "rescinded": "reservation.rescinded",
    "wrapping": "reservation.wrapup", "completed": "reservation.completed",
}
TASK_STATUS_EVENTS = {"canceled": "task.canceled", "completed": "task.completed", "wrapping": "task.wrapup"}


def check_invariants(router: Router, workspace_sid: str | None = None) -> list[str]:
    """Every violation of the engine's invariants, in one workspace or all of them."""
    with router.read() as session:
        query = select(Workspace.sid)
        if workspace_sid:
            query = query.where(Workspace.sid == workspace_sid)
        sids = list(session.scalars(query))
    problems: list[str] = []
    for sid in sids:
        problems.extend(_check_workspace(router, sid))
    return problems


def _check_workspace(router: Router, workspace_sid: str) -> list[str]:
    problems: list[str] = []
    with router.read() as session:
        workspace = session.get(Workspace, workspace_sid)
        workers = {w.sid: w for w in session.scalars(select(Worker).where(Worker.workspace_sid == workspace_sid))}
        channels = list(session.scalars(select(WorkerChannel).where(WorkerChannel.workspace_sid == workspace_sid)))
        tasks = {t.sid: t for t in session.scalars(select(Task).where(Task.workspace_sid == workspace_sid))}
        queues = {q.sid: q for q in session.scalars(select(TaskQueue).where(TaskQueue.workspace_sid == workspace_sid))}
        reservations = list(session.scalars(select(Reservation).where(Reservation.workspace_sid == workspace_sid)))
        events = Counter(session.execute(
            select(Event.resource_sid, Event.event_type).where(Event.workspace_sid == workspace_sid)).all())
        timers = set(session.execute(
            select(Timer.kind, Timer.subject_sid).where(Timer.workspace_sid == workspace_sid)).all())
        # When each channel's capacity last changed: lowered below what the worker holds, it is over capacity
        # until they finish some (TaskRouter allows that); only a reservation made since would be a violation.
        capacity_changed = {(worker_sid, channel_sid): at for worker_sid, channel_sid, at in session.execute(
            select(Event.worker_sid, Event.task_channel_sid, func.max(Event.event_date))
            .where(Event.workspace_sid == workspace_sid, Event.event_type == "worker.capacity.update")
            .group_by(Event.worker_sid, Event.task_channel_sid)).all()}
        members = set(session.execute(
            select(TaskQueueMember.task_queue_sid, TaskQueueMember.worker_sid)
            .join(TaskQueue, TaskQueue.sid == TaskQueueMember.task_queue_sid)
            .where(TaskQueue.workspace_sid == workspace_sid)).all())

    holding = Counter((r.worker_sid, r.task_channel_sid) for r in reservations if r.reservation_status in HOLDING)
    assigned = Counter((r.worker_sid, r.task_channel_sid) for r in reservations
                       if r.reservation_status in ("accepted", "wrapping"))
    per_worker = Counter(r.worker_sid for r in reservations if r.reservation_status in HOLDING)

    newest_held: dict[tuple[str, str], object] = {}
    for r in reservations:
        key = (r.worker_sid, r.task_channel_sid)
        if r.reservation_status in HOLDING and (key not in newest_held or r.date_created > newest_held[key]):
            newest_held[key] = r.date_created

    # 1. capacity
    for ch in channels:
        key = (ch.worker_sid, ch.task_channel_sid)
        if holding[key] != ch.reserved_tasks:
            problems.append(f"worker {ch.worker_sid} channel {ch.task_channel_sid}: counter says "
                            f"{ch.reserved_tasks} reserved, reservations say {holding[key]}")
        if assigned[key] != ch.assigned_tasks:
            problems.append(f"worker {ch.worker_sid} channel {ch.task_channel_sid}: counter says "
                            f"{ch.assigned_tasks} assigned, reservations say {assigned[key]}")
        lowered_since = key in capacity_changed and key in newest_held and newest_held[key] <= capacity_changed[key]
        if holding[key] > ch.capacity and not lowered_since:
            problems.append(f"worker {ch.worker_sid} holds {holding[key]} reservations on channel "
                            f"{ch.task_channel_sid} with capacity {ch.capacity}")
        # Matching reads the copy: a copy stuck at False would hide an available worker from every task.
        owner = workers.get(ch.worker_sid)
        if owner is not None and ch.worker_available != owner.available:
            problems.append(f"worker {ch.worker_sid} channel {ch.task_channel_sid}: worker_available is "
                            f"{ch.worker_available}, the worker's available is {owner.available}")
    for sid, worker in workers.items():
        if per_worker[sid] != worker.active_reservations:
            problems.append(f"worker {sid}: counter says {worker.active_reservations} active reservations, "
                            f"reservations say {per_worker[sid]}")
        if not workspace.multi_task_enabled and per_worker[sid] > 1:
            problems.append(f"worker {sid} holds {per_worker[sid]} reservations in a single-tasking workspace")

    # 2. reservations per task, and task status against its reservations
    offers = Counter((r.task_sid, r.worker_sid) for r in reservations if r.reservation_status == "pending")
    for (task_sid, worker_sid), count in offers.items():
        if count > 1:
            problems.append(f"task {task_sid} is offered to worker {worker_sid} {count} times at once")
    by_task: dict[str, Counter] = defaultdict(Counter)
    for r in reservations:
        by_task[r.task_sid][r.reservation_status] += 1
    for sid, task in tasks.items():
        counts = by_task[sid]
        pending, taken = counts["pending"], counts["accepted"] + counts["wrapping"]
        if pending != task.pending_reservations:
            problems.append(f"task {sid}: counter says {task.pending_reservations} pending reservations, "
                            f"reservations say {pending}")
        queue = queues.get(task.task_queue_sid) if task.task_queue_sid else None
        if queue is not None and task.assignment_status in ("pending", "reserved") \
                and pending > queue.max_reserved_workers:
            problems.append(f"task {sid} has {pending} pending reservations; its queue allows "
                            f"{queue.max_reserved_workers}")
        if taken > 1:
            problems.append(f"task {sid} has {taken} accepted reservations")
        expected = {
            "pending": pending == 0 and taken == 0,
            "reserved": pending >= 1 and taken == 0,
            "assigned": counts["accepted"] == 1 and pending == 0,
            "wrapping": taken <= 1 and counts["accepted"] == 0 and pending == 0,
            "completed": pending == 0 and taken == 0,
            "canceled": pending == 0 and taken == 0,
        }[task.assignment_status]
        if not expected:
            problems.append(f"task {sid} is {task.assignment_status} with reservations {dict(counts)}")
        # 4. events and 5. timers
        if not events[(sid, "task.created")]:
            problems.append(f"task {sid} has no task.created event")
        wanted_event = TASK_STATUS_EVENTS.get(task.assignment_status)
        if wanted_event and not events[(sid, wanted_event)]:
            problems.append(f"task {sid} is {task.assignment_status} without a {wanted_event} event")
        if task.assignment_status in ("pending", "reserved") and ("task_ttl", sid) not in timers:
            problems.append(f"task {sid} is waiting without a TTL timer")
    for r in reservations:
        if not events[(r.sid, "reservation.created")]:
            problems.append(f"reservation {r.sid} has no reservation.created event")
        wanted_event = STATUS_EVENTS.get(r.reservation_status)
        if wanted_event and not events[(r.sid, wanted_event)]:
            problems.append(f"reservation {r.sid} is {r.reservation_status} without a {wanted_event} event")
        if r.reservation_status == "pending" and ("reservation_timeout", r.sid) not in timers:
            problems.append(f"reservation {r.sid} is pending without a timeout timer")

    # 3. queue membership matches target_workers
    for queue in queues.values():
        expression = target_workers_expression(queue.target_workers)
        for sid, worker in workers.items():
            should = expression is not None and expression(parsed_attributes(worker.attributes))
            if should != ((queue.sid, sid) in members):
                problems.append(f"worker {sid} {'missing from' if should else 'wrongly in'} queue {queue.sid}")

    problems.extend(_unmatched_pairs(router, workspace_sid))
    return problems


def _unmatched_pairs(router: Router, workspace_sid: str) -> list[str]:
    """A waiting task that an available eligible worker could take right now means matching missed it."""
    from .matching import current_target, eligible_workers

    problems = []
    session = router._read_sessions()
    try:
        with session.begin():
            workspace = session.get(Workspace, workspace_sid)
            tx = Tx(router, session, workspace, router.clock.now())
            waiting = session.scalars(select(Task).where(Task.workspace_sid == workspace_sid,
                                                         Task.assignment_status.in_(("pending", "reserved")),
                                                         Task.task_queue_sid.is_not(None)))
            for task in waiting:
                queue = session.get(TaskQueue, task.task_queue_sid)
                room = queue.max_reserved_workers - task.pending_reservations
                if room <= 0:
                    continue
                found = eligible_workers(tx, task, queue, current_target(tx, task), 1)
                if found:
                    problems.append(f"task {task.sid} waits in {queue.sid} although worker {found[0][0].sid} "
                                    "could take it now")
            session.rollback()
    finally:
        session.close()
    return problems
