"""Reservations: an offer of one task to one worker, and everything that ends it.

`pending -> accepted -> wrapping -> completed`, or `pending -> rejected | timeout | canceled |
rescinded`. A pending, accepted or wrapping reservation holds one unit of the worker's capacity on
the task's channel; every function that ends one gives it back and wakes the worker, so the freed
capacity is matched in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, bindparam, select

from . import statements
from .errors import IllegalState, InvalidParameter, NotFound, ReservationNotPending
from .events import emit, epoch_ms, task_age_seconds
from .models import Reservation, Task, TaskQueue, Worker, WorkerChannel
from .router import Router, Tx
from .sids import new_sid
from .workers import check_version, set_activity, worker_channel

MAX_ASSIGNMENT_COUNT = 1000
ASSIGNED_MAX_AGE = 86_400
INSTRUCTIONS = ("accept", "reject", "dequeue", "call", "redirect", "conference")


def create_reservation(tx: Tx, task: Task, worker: Worker, channel: WorkerChannel, queue: TaskQueue) -> Reservation:
    """Offer `task` to `worker`: hold capacity, start the reservation timer, queue the assignment callback."""
    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    reservation = Reservation(
        sid=new_sid("WR"), workspace_sid=task.workspace_sid, task_sid=task.sid, worker_sid=worker.sid,
        task_queue_sid=queue.sid, workflow_sid=task.workflow_sid, task_channel_sid=task.task_channel_sid,
        reservation_status="pending", worker_previous_activity_sid=worker.activity_sid, version=1,
        date_created=tx.now, date_updated=tx.now,
    )
    tx.session.add(reservation)
    tx.created(reservation.sid)
    tx.offered(task.sid)
    channel.reserved_tasks += 1
    channel.idle_since = tx.now
    worker.active_reservations += 1
    if task.assignment_status == "pending":
        # One pending -> reserved transition, however many workers this batch reserves.
        task.assignment_status = "reserved"
        task.assignment_count += 1
    task.pending_reservations += 1
    task.version += 1
    task.date_updated = tx.now
    if not tx.workspace.multi_task_enabled and queue.reservation_activity_sid:
        set_activity(tx, worker, tx.activity(queue.reservation_activity_sid), wake=False, keep_pending=True)
    timeout = workflow.task_reservation_timeout if workflow else 120
    tx.schedule("reservation_timeout", reservation.sid, timeout)
    emit(tx, "reservation.created", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} created for Worker {worker.friendly_name}")
    if workflow is not None and workflow.assignment_callback_url:
        tx.add_outbox(
            kind="assignment",
            url=workflow.assignment_callback_url,
            fallback_url=workflow.fallback_assignment_callback_url,
            reservation_sid=reservation.sid,
            payload=assignment_callback_params(tx, task, worker, reservation, queue),
        )
    return reservation


def assignment_callback_params(tx: Tx, task: Task, worker: Worker, reservation: Reservation,
                               queue: TaskQueue) -> dict[str, str]:
    """The form parameters TaskRouter posts to the workflow's AssignmentCallbackUrl."""
    return {
        "Timestamp": str(epoch_ms(tx.now) // 1000),
        "AccountSid": tx.workspace.account_sid,
        "WorkspaceSid": tx.workspace.sid,
        "WorkflowSid": task.workflow_sid or "",
        "TaskQueueSid": queue.sid,
        "WorkerSid": worker.sid,
        "WorkerAttributes": worker.attributes,
        "TaskSid": task.sid,
        "TaskAttributes": task.attributes,
        "TaskAge": str(task_age_seconds(task, tx.now)),
        "TaskPriority": str(task.priority),
        "ReservationSid": reservation.sid,
        "TaskChannelSid": task.task_channel_sid,
        "TaskChannelUniqueName": tx.channel(task.task_channel_sid).unique_name,
    }


# -- ending a pending reservation ------------------------------------------------------------------

def _end_pending(tx: Tx, reservation: Reservation, status: str) -> tuple[Task, Worker]:
    """Move a pending reservation to `status`, give back its capacity, update the task's count."""
    if reservation.reservation_status != "pending":
        raise ReservationNotPending(
            f"Reservation {reservation.sid} is {reservation.reservation_status}, not pending"
        )
    task = tx.session.get(Task, reservation.task_sid)
    worker = tx.session.get(Worker, reservation.worker_sid)
    reservation.reservation_status = status
    reservation.version += 1
    reservation.date_updated = tx.now
    tx.cancel_timer("reservation_timeout", reservation.sid)
    _release_capacity(tx, reservation, worker, was_assigned=False)
    task.pending_reservations -= 1
    task.version += 1
    task.date_updated = tx.now
    if task.assignment_status == "reserved" and task.pending_reservations == 0:
        task.assignment_status = "pending"
    if task.assignment_status in ("pending", "reserved"):
        # The place this offer held under MaxReservedWorkers goes to the next eligible worker.
        tx.wake_task(task)
    return task, worker


def _release_capacity(tx: Tx, reservation: Reservation, worker: Worker, *, was_assigned: bool) -> None:
    channel = worker_channel(tx, worker, reservation.task_channel_sid)
    channel.reserved_tasks -= 1
    if was_assigned:
        channel.assigned_tasks -= 1
    channel.idle_since = tx.now
    worker.active_reservations -= 1
    if worker.available:
        tx.wake_worker(worker)


def _restore_activity(tx: Tx, reservation: Reservation, worker: Worker, activity_sid: str | None) -> None:
    """After an offer ends unaccepted: the activity asked for, or the one the reservation moved them from."""
    if activity_sid:
        activity = tx.activity(activity_sid)
        # Going unavailable withdraws the worker's other pending offers too: they could not answer them.
        set_activity(tx, worker, activity, reject_pending=not activity.available)
        return
    queue = tx.config.queues.get(reservation.task_queue_sid) if reservation.task_queue_sid else None
    moved_by_reservation = (queue is not None and queue.reservation_activity_sid
                            and worker.activity_sid == queue.reservation_activity_sid)
    if moved_by_reservation and reservation.worker_previous_activity_sid and worker.active_reservations == 0:
        set_activity(tx, worker, tx.activity(reservation.worker_previous_activity_sid))


def reject_reservation_in(tx: Tx, reservation: Reservation, *, activity_sid: str | None,
                          restore_activity: bool = True) -> Reservation:
    if activity_sid:
        tx.activity(activity_sid)  # validate before changing anything
    task, worker = _end_pending(tx, reservation, "rejected")
    emit(tx, "reservation.rejected", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} rejected by Worker {worker.friendly_name}")
    if restore_activity:
        _restore_activity(tx, reservation, worker, activity_sid)
    _cancel_if_over_assignment_limit(tx, task)
    return reservation


def time_out_reservation(tx: Tx, reservation: Reservation) -> None:
    """No answer in time: the worker moves to the workspace's timeout activity and the task waits on."""
    task, worker = _end_pending(tx, reservation, "timeout")
    emit(tx, "reservation.timeout", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} timed out for Worker {worker.friendly_name}")
    timeout_activity = tx.workspace.timeout_activity_sid
    if timeout_activity:
        # Pending offers elsewhere would keep the worker from moving to an unavailable activity; an absent worker
        # cannot take them. An available timeout activity (allowed, if unusual) leaves them be.
        activity = tx.activity(timeout_activity)
        set_activity(tx, worker, activity, reject_pending=not activity.available)
    _cancel_if_over_assignment_limit(tx, task)


def cancel_reservation_in(tx: Tx, reservation: Reservation, status: str = "canceled") -> None:
    """End an unanswered offer because the task moved on (`canceled`) or someone else took it (`rescinded`)."""
    task, worker = _end_pending(tx, reservation, status)
    emit(tx, f"reservation.{status}", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} {status} for Worker {worker.friendly_name}")
    _restore_activity(tx, reservation, worker, None)


def cancel_pending_reservations(tx: Tx, task: Task, status: str = "canceled", *, keep: str | None = None) -> None:
    for reservation in pending_reservations(tx, task):
        if reservation.sid != keep:
            cancel_reservation_in(tx, reservation, status)


_PENDING = (select(Reservation).where(Reservation.task_sid == bindparam("task_sid"),
                                      Reservation.reservation_status == "pending")
            .order_by(Reservation.date_created, Reservation.sid))
_ACTIVE = select(Reservation).where(Reservation.task_sid == bindparam("task_sid"),
                                    Reservation.reservation_status.in_(("accepted", "wrapping")))


def pending_reservations(tx: Tx, task: Task) -> list[Reservation]:
    return list(tx.session.scalars(_PENDING, {"task_sid": task.sid}))


def _cancel_if_over_assignment_limit(tx: Tx, task: Task) -> None:
    if task.assignment_status == "pending" and task.assignment_count >= MAX_ASSIGNMENT_COUNT:
        from .tasks import cancel_task_in

        cancel_task_in(tx, task, "Task TTL Exceeded or Max assignment count exceeded")


# -- accepting and finishing -----------------------------------------------------------------------

def accept_reservation_in(tx: Tx, reservation: Reservation) -> Reservation:
    """The worker takes the task: siblings are rescinded, the task is assigned, its timers stop."""
    if reservation.reservation_status != "pending":
        raise ReservationNotPending(
            f"Reservation {reservation.sid} is {reservation.reservation_status} and can no longer be accepted"
        )
    task = tx.session.get(Task, reservation.task_sid)
    worker = tx.session.get(Worker, reservation.worker_sid)
    reservation.reservation_status = "accepted"
    reservation.version += 1
    reservation.date_updated = tx.now
    tx.cancel_timer("reservation_timeout", reservation.sid)
    task.pending_reservations -= 1
    channel = worker_channel(tx, worker, reservation.task_channel_sid)
    channel.assigned_tasks += 1
    wait_ms = int((tx.now - task.date_created).total_seconds() * 1000)
    queue_wait_ms = (int((tx.now - task.task_queue_entered_date).total_seconds() * 1000)
                     if task.task_queue_entered_date else None)
    task.assignment_status = "assigned"
    task.date_assigned = tx.now
    task.version += 1
    task.date_updated = tx.now
    tx.cancel_timer("target_timeout", "task_ttl", subject_sid=task.sid)
    tx.schedule("assigned_max_age", task.sid, ASSIGNED_MAX_AGE)
    emit(tx, "reservation.accepted", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} accepted by Worker {worker.friendly_name}",
         wait_ms=wait_ms, queue_wait_ms=queue_wait_ms)
    # Rescinding runs with the task already assigned, so the freed workers are not re-offered it.
    if task.pending_reservations:  # the counter says whether there is anything to rescind
        for other in pending_reservations(tx, task):
            cancel_reservation_in(tx, other, "rescinded")
    queue = tx.config.queues.get(reservation.task_queue_sid) if reservation.task_queue_sid else None
    if not tx.workspace.multi_task_enabled and queue is not None and queue.assignment_activity_sid:
        set_activity(tx, worker, tx.activity(queue.assignment_activity_sid), wake=False)
    return reservation


def wrap_reservation_in(tx: Tx, reservation: Reservation) -> None:
    if reservation.reservation_status != "accepted":
        raise IllegalState(f"Reservation {reservation.sid} is {reservation.reservation_status}, not accepted")
    task = tx.session.get(Task, reservation.task_sid)
    worker = tx.session.get(Worker, reservation.worker_sid)
    reservation.reservation_status = "wrapping"
    reservation.version += 1
    reservation.date_updated = tx.now
    emit(tx, "reservation.wrapup", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} wrapping up")


def complete_reservation_in(tx: Tx, reservation: Reservation) -> None:
    if reservation.reservation_status not in ("accepted", "wrapping"):
        raise IllegalState(f"Reservation {reservation.sid} is {reservation.reservation_status}; only accepted "
                           "or wrapping reservations can be completed")
    task = tx.session.get(Task, reservation.task_sid)
    worker = tx.session.get(Worker, reservation.worker_sid)
    reservation.reservation_status = "completed"
    reservation.version += 1
    reservation.date_updated = tx.now
    _release_capacity(tx, reservation, worker, was_assigned=True)
    emit(tx, "reservation.completed", resource=reservation, task=task, worker=worker, reservation=reservation,
         description=f"Reservation {reservation.sid} completed")


def active_reservation(tx: Tx, task: Task) -> Reservation | None:
    """The accepted or wrapping reservation of a task, if it has one."""
    known = tx.active_reservation_of(task.sid)
    if known is not None:
        return known
    return tx.session.scalar(_ACTIVE, {"task_sid": task.sid})


# -- the public operation: REST updates and assignment-callback replies share it -------------------

def update_reservation(
    router: Router,
    workspace_sid: str,
    reservation_sid: str,
    *,
    reservation_status: str | None = None,
    worker_activity_sid: str | None = None,
    instruction: str | None = None,
    instruction_params: dict[str, Any] | None = None,
    worker_sid: str | None = None,
    task_sid: str | None = None,
    if_match: str | None = None,
) -> Reservation:
    """Carry out a reservation update: a status change, or an instruction with its parameters."""
    with router.transaction(workspace_sid) as tx:
        reservation = load_reservation(tx, reservation_sid)
        if (worker_sid and reservation.worker_sid != worker_sid) or (task_sid and reservation.task_sid != task_sid):
            raise NotFound(f"The requested resource Reservation {reservation_sid} was not found")
        check_version(reservation, if_match)
        if instruction is not None:
            carry_out_instruction(tx, reservation, {"instruction": instruction, **(instruction_params or {})})
        elif reservation_status is not None:
            _change_status(tx, reservation, reservation_status, worker_activity_sid)
        elif worker_activity_sid is not None:
            raise InvalidParameter("WorkerActivitySid is only valid with ReservationStatus=rejected")
        return reservation


# One statement for the reservation, its task, its worker and their channel, which every status change
# reads (four lookups otherwise); later `session.get` calls find them in the session's identity map.
_PARTIES = (Reservation, Task, Worker, WorkerChannel)
_RESERVATION_WITH_PARTIES = (
    statements.select_rows_of(*_PARTIES)
    .join(Task, Task.sid == Reservation.task_sid)
    .join(Worker, Worker.sid == Reservation.worker_sid)
    .outerjoin(WorkerChannel, and_(WorkerChannel.worker_sid == Reservation.worker_sid,
                                   WorkerChannel.task_channel_sid == Reservation.task_channel_sid))
    .where(Reservation.sid == bindparam("reservation_sid"))
)


def load_reservation(tx: Tx, reservation_sid: str) -> Reservation:
    """A reservation of this workspace, loaded with its task, worker and worker channel, or NotFound."""
    rows = (statements.load_rows(tx.session, _RESERVATION_WITH_PARTIES, {"reservation_sid": reservation_sid},
                                 _PARTIES) if isinstance(reservation_sid, str) else [])
    row = rows[0] if rows else None
    if row is None or row[0].workspace_sid != tx.workspace.sid:
        raise NotFound(f"The requested resource Reservation {reservation_sid} was not found")
    tx.hold(*row)
    if row[3] is not None:
        tx.remember_channel(row[3])
    return row[0]


def _change_status(tx: Tx, reservation: Reservation, status: str, worker_activity_sid: str | None) -> None:
    if status == "accepted":
        accept_reservation_in(tx, reservation)
    elif status == "rejected":
        reject_reservation_in(tx, reservation, activity_sid=worker_activity_sid)
    elif status in ("wrapping", "completed"):
        from .tasks import complete_task_in, wrap_task_in

        task = tx.session.get(Task, reservation.task_sid)
        if reservation.reservation_status not in ("accepted", "wrapping"):
            raise IllegalState(f"Reservation {reservation.sid} is {reservation.reservation_status}; only an "
                               f"accepted reservation can move to {status}")
        if status == "wrapping":
            wrap_task_in(tx, task)
        else:
            complete_task_in(tx, task, "Reservation completed")
    else:
        raise InvalidParameter(f"ReservationStatus {status!r} cannot be set; use accepted, rejected, wrapping "
                               "or completed")


def carry_out_instruction(tx: Tx, reservation: Reservation, instruction: dict[str, Any]) -> None:
    """Carry out an assignment instruction (`accept`, `reject`, or a voice one handed to the app)."""
    name = instruction.get("instruction")
    if name not in INSTRUCTIONS:
        raise InvalidParameter(f"Unknown instruction {name!r}; expected one of {', '.join(INSTRUCTIONS)}",
                               code=55555)
    if reservation.reservation_status != "pending":
        raise ReservationNotPending(f"Reservation {reservation.sid} is {reservation.reservation_status}, "
                                    "not pending", code=40114)
    if name == "accept":
        accept_reservation_in(tx, reservation)
        return
    if name == "reject":
        activity_sid = instruction.get("activity_sid")
        if activity_sid:
            try:
                tx.activity(activity_sid)
            except Exception:
                raise InvalidParameter(f"activity_sid {activity_sid} is not an activity of this workspace",
                                       code=40100) from None
        reject_reservation_in(tx, reservation, activity_sid=activity_sid)
        return
    handler = tx.router.instruction_handler
    if handler is None:
        raise IllegalState(f"The {name!r} instruction needs a voice application to carry it out; none is "
                           "configured")
    task = tx.session.get(Task, reservation.task_sid)
    worker = tx.session.get(Worker, reservation.worker_sid)
    # The handler places calls after commit; it reports back with accept/reject through this module.
    handler(tx, reservation=reservation, task=task, worker=worker, instruction=dict(instruction))
    if name in ("call", "redirect") and _truthy(instruction.get("accept")):
        accept_reservation_in(tx, reservation)


def apply_callback_reply(router: Router, workspace_sid: str, reservation_sid: str, body: str, *,
                         finish: Callable[[Tx], object] | None = None) -> str:
    """Carry out an assignment callback's JSON reply; returns what was done (for logs). `finish` runs in the
    transaction that carries the reply out (the outbox ends the callback's message there), if there is one."""
    text = (body or "").strip()
    if not text:
        return "manual"
    try:
        reply = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return "warning 40001: reply is not valid JSON"
    if not isinstance(reply, dict) or not reply:
        return "manual"
    if "instruction" not in reply:
        return "warning 40005: reply has no instruction"
    with router.transaction(workspace_sid) as tx:
        reservation = tx.get(Reservation, reservation_sid, "Reservation")
        carry_out_instruction(tx, reservation, reply)
        if finish is not None:
            finish(tx)
    return str(reply["instruction"])


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))
