"""Tasks: created, routed, reserved, assigned, wrapped up, completed, canceled, deleted.

`pending -> reserved -> assigned -> wrapping -> completed`, and `pending | reserved -> canceled`.
Completed and canceled tasks are kept for a retention period (TaskRouter: 5 minutes), then
deleted by a timer; their events stay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_

from . import statements, validation
from .errors import IllegalState, InvalidParameter, NotFound
from .events import emit
from .models import Reservation, Task, Worker, WorkerChannel, Workflow
from .reservations import (
    active_reservation,
    cancel_pending_reservations,
    complete_reservation_in,
    wrap_reservation_in,
)
from .router import Router, Tx
from .sids import new_sid
from .targets import enter_workflow, reroute
from .workers import check_version

DEFAULT_TTL = 86_400
MAX_TTL = 1_209_600
TASK_RETENTION_SECONDS = 300
WAITING = ("pending", "reserved")
_UNSET: Any = object()


def create_task(
    router: Router,
    workspace_sid: str,
    *,
    attributes: str | dict | None = None,
    workflow_sid: str | None = None,
    priority: int | str | None = None,
    timeout: int | str | None = None,
    task_channel: str | None = None,
    virtual_start_time: datetime | str | None = None,
    routing_target: str | None = None,
) -> Task:
    """Create a task and route it: it enters its workflow and is reserved in the same transaction."""
    attributes = validation.attributes(attributes if attributes is not None else "{}")
    priority = (validation.integer(priority, "Priority", minimum=0, maximum=validation.MAX_PRIORITY)
                if priority is not None else None)
    ttl = validation.integer(timeout, "Timeout", minimum=1, maximum=MAX_TTL) if timeout is not None else DEFAULT_TTL
    if routing_target is not None:
        raise InvalidParameter("RoutingTarget is not supported by this server; route through a workflow")
    with router.transaction(workspace_sid) as tx:
        return create_task_in(tx, attributes=attributes, workflow_sid=workflow_sid, priority=priority, ttl=ttl,
                              task_channel=task_channel, virtual_start_time=virtual_start_time)


def _target_sets_priority(tx: Tx, task: Task) -> bool:
    """A waiting task "takes on the specified priority unless it matches a Workflow Target with a Priority set"
    (TaskRouter's UpdateTask): in such a target, the target's priority stands."""
    if task.assignment_status not in WAITING:
        return False
    from .matching import current_target

    target = current_target(tx, task)
    return target is not None and target.priority is not None


def create_task_in(tx: Tx, *, attributes: str, workflow_sid: str | None = None, priority: int | None = None,
                   ttl: int = DEFAULT_TTL, task_channel: str | None = None,
                   virtual_start_time: datetime | str | None = None) -> Task:
    """Create and route a task inside a transaction the caller holds (attributes already validated)."""
    workflow = _workflow_for(tx, workflow_sid)
    from .workspaces import find_task_channel

    channel = find_task_channel(tx, task_channel or "default")
    start = _virtual_start_time(virtual_start_time, tx.now)
    task = Task(
        sid=new_sid("WT"), workspace_sid=tx.workspace.sid, workflow_sid=workflow.sid,
        task_channel_sid=channel.sid, attributes=attributes, assignment_status="pending",
        priority=priority or 0, timeout=ttl, virtual_start_time=start,
        pending_reservations=0, assignment_count=0, version=1,
        date_created=tx.now, date_updated=tx.now,
    )
    tx.session.add(task)  # inserted by the next flush, already placed in its queue
    tx.created(task.sid)
    tx.schedule("task_ttl", task.sid, ttl)
    emit(tx, "task.created", resource=task, task=task, description=f"Task {task.sid} created")
    enter_workflow(tx, task, workflow)
    return task


def _workflow_for(tx: Tx, workflow_sid: str | None) -> Workflow:
    if workflow_sid:
        workflow = tx.config.workflows.get(workflow_sid)
        if workflow is None:
            raise NotFound(f"The requested resource Workflow {workflow_sid} was not found")
        return workflow
    workflows = list(tx.config.workflows.values())
    if len(workflows) != 1:
        raise InvalidParameter("WorkflowSid is required when the workspace does not have exactly one workflow")
    return workflows[0]


def _virtual_start_time(value: datetime | str | None, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter("VirtualStartTime must be an ISO 8601 date-time") from None
    if value.tzinfo is not None:
        try:
            value = (value - value.utcoffset()).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+00:01: before the calendar's first moment in UTC
            raise InvalidParameter("VirtualStartTime must not be in the future or before 1900") from None
    if value > now or value.year < 1900:
        raise InvalidParameter("VirtualStartTime must not be in the future or before 1900")
    return value


def update_task(
    router: Router,
    workspace_sid: str,
    task_sid: str,
    *,
    attributes: str | dict | None = None,
    assignment_status: str | None = None,
    reason: str | None = None,
    priority: int | str | None = None,
    task_channel: str | None = None,
    virtual_start_time: datetime | str | None = None,
    if_match: str | None = None,
) -> Task:
    """Change a task: attributes or priority (a waiting task is routed again), or its status."""
    if attributes is not None:
        attributes = validation.attributes(attributes)
    if priority is not None:
        priority = validation.integer(priority, "Priority", minimum=0, maximum=validation.MAX_PRIORITY)
    if assignment_status is not None and attributes is not None:
        raise InvalidParameter("Change AssignmentStatus and Attributes in two separate requests")
    with router.transaction(workspace_sid) as tx:
        if assignment_status in ("wrapping", "completed"):
            task = _load_with_assignment(tx, task_sid)
        else:
            task = tx.get(Task, task_sid, "Task")
        check_version(task, if_match)
        if assignment_status is not None:
            _change_status(tx, task, assignment_status, reason)
        if task.assignment_status in ("completed", "canceled") and (attributes or priority is not None
                                                                     or task_channel or virtual_start_time):
            raise IllegalState(f"Task {task.sid} is {task.assignment_status} and cannot be changed")
        route_again = False
        if attributes is not None and attributes != task.attributes:
            task.attributes = attributes
            route_again = True
        if task_channel is not None:
            from .workspaces import find_task_channel

            channel = find_task_channel(tx, task_channel)
            if channel.sid != task.task_channel_sid:
                if task.assignment_status not in WAITING:
                    raise IllegalState("TaskChannel can only change while the task is waiting")
                task.task_channel_sid = channel.sid
                route_again = True
        # Routed again, the task enters a target whose own priority, if it has one, replaces this one then.
        rerouted = route_again and task.assignment_status in WAITING
        if priority is not None and priority != task.priority and (rerouted or not _target_sets_priority(tx, task)):
            task.priority = priority
            tx.wake_task(task)
        if virtual_start_time is not None:
            task.virtual_start_time = _virtual_start_time(virtual_start_time, tx.now)
            tx.wake_task(task)
        if attributes is not None or priority is not None or task_channel or virtual_start_time:
            task.version += 1
            task.date_updated = tx.now
            emit(tx, "task.updated", resource=task, task=task, description=f"Task {task.sid} updated")
        if route_again and task.assignment_status in WAITING:
            reroute_task(tx, task)
        return task


# Wrapping up or completing reads the task's active reservation, its worker and their channel too: one
# statement instead of four lookups (the worker and channel then come from the session's identity map and the Tx).
_WITH_ASSIGNMENT = (Task, Worker, WorkerChannel, Reservation)
_TASK_WITH_ASSIGNMENT = (
    statements.select_rows_of(*_WITH_ASSIGNMENT)
    .outerjoin(Reservation, and_(Reservation.task_sid == Task.sid,
                                 # two comparisons, not IN: an IN list is rendered per execution
                                 or_(Reservation.reservation_status == "accepted",
                                     Reservation.reservation_status == "wrapping")))
    .outerjoin(Worker, Worker.sid == Reservation.worker_sid)
    .outerjoin(WorkerChannel, and_(WorkerChannel.worker_sid == Reservation.worker_sid,
                                   WorkerChannel.task_channel_sid == Reservation.task_channel_sid))
    .where(Task.sid == bindparam("task_sid"))
)


def _load_with_assignment(tx: Tx, task_sid: str) -> Task:
    rows = (statements.load_rows(tx.session, _TASK_WITH_ASSIGNMENT, {"task_sid": task_sid}, _WITH_ASSIGNMENT)
            if isinstance(task_sid, str) else [])
    if not rows or rows[0][0].workspace_sid != tx.workspace.sid:
        raise NotFound(f"The requested resource Task {task_sid} was not found")
    for task, worker, channel, reservation in rows:
        tx.hold(worker, reservation)
        if channel is not None:
            tx.remember_channel(channel)
        if reservation is not None:
            tx.remember_active_reservation(task.sid, reservation)
    return rows[0][0]


def _change_status(tx: Tx, task: Task, status: str, reason: str | None) -> None:
    if status == "canceled":
        if task.assignment_status not in WAITING:
            raise IllegalState(f"Cannot cancel task {task.sid} because it is not pending or reserved")
        cancel_task_in(tx, task, reason or "Canceled through the API")
    elif status == "wrapping":
        wrap_task_in(tx, task)
    elif status == "completed":
        complete_task_in(tx, task, reason or "Completed through the API")
    else:
        raise InvalidParameter(f"AssignmentStatus {status!r} cannot be set; use canceled, wrapping or completed")


def reroute_task(tx: Tx, task: Task) -> None:
    """Withdraw pending offers and evaluate the workflow again from the first filter."""
    cancel_pending_reservations(tx, task)
    reroute(tx, task)


def cancel_task_in(tx: Tx, task: Task, reason: str) -> None:
    if task.assignment_status not in WAITING:
        raise IllegalState(f"Cannot cancel task {task.sid} because it is not pending or reserved")
    cancel_pending_reservations(tx, task)
    task.assignment_status = "canceled"
    task.reason = reason
    _finish(tx, task)
    emit(tx, "task.canceled", resource=task, task=task, description=f"Task {task.sid} canceled: {reason}",
         wait_ms=int((tx.now - task.date_created).total_seconds() * 1000))


def wrap_task_in(tx: Tx, task: Task) -> None:
    if task.assignment_status != "assigned":
        raise IllegalState(f"Cannot wrap up task {task.sid} because it is not currently assigned")
    task.assignment_status = "wrapping"
    task.version += 1
    task.date_updated = tx.now
    emit(tx, "task.wrapup", resource=task, task=task, description=f"Task {task.sid} wrapping up")
    reservation = active_reservation(tx, task)
    if reservation is not None:
        wrap_reservation_in(tx, reservation)


def complete_task_in(tx: Tx, task: Task, reason: str) -> None:
    if task.assignment_status not in ("assigned", "wrapping"):
        raise IllegalState(f"Cannot complete task {task.sid} because it is not assigned or wrapping")
    reservation = active_reservation(tx, task)
    task.assignment_status = "completed"
    task.reason = reason
    _finish(tx, task)
    emit(tx, "task.completed", resource=task, task=task, description=f"Task {task.sid} completed: {reason}")
    if reservation is not None:
        complete_reservation_in(tx, reservation)


def _finish(tx: Tx, task: Task) -> None:
    task.version += 1
    task.date_updated = tx.now
    task.date_finished = tx.now
    tx.cancel_timer("target_timeout", "task_ttl", "assigned_max_age", subject_sid=task.sid)
    tx.schedule("task_cleanup", task.sid, tx.now + timedelta(seconds=TASK_RETENTION_SECONDS))


def delete_task(router: Router, workspace_sid: str, task_sid: str, *, if_match: str | None = None) -> None:
    """Delete a task in any state; offers are withdrawn and held capacity is given back."""
    with router.transaction(workspace_sid) as tx:
        task = tx.get(Task, task_sid, "Task")
        check_version(task, if_match)
        remove_task_in(tx, task, "task.deleted")


def remove_task_in(tx: Tx, task: Task, event_type: str) -> None:
    from .reservations import _release_capacity

    cancel_pending_reservations(tx, task)
    reservation = active_reservation(tx, task)
    if reservation is not None:
        worker = tx.session.get(Worker, reservation.worker_sid)
        reservation.reservation_status = "canceled"
        _release_capacity(tx, reservation, worker, was_assigned=True)
    tx.cancel_timer("target_timeout", "task_ttl", "assigned_max_age", "task_cleanup", subject_sid=task.sid)
    emit(tx, event_type, resource=task, task=task, description=f"Task {task.sid} deleted")
    tx.session.flush()
    tx.unwake_task(task)  # canceling its offers woke it; a deleted task must not be offered again
    tx.session.delete(task)


def get_task(router: Router, workspace_sid: str, task_sid: str) -> Task:
    with router.read() as session:
        task = session.get(Task, task_sid)
        if task is None or task.workspace_sid != workspace_sid:
            raise NotFound(f"The requested resource /Workspaces/{workspace_sid}/Tasks/{task_sid} was not found")
        return task
