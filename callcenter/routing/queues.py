"""TaskQueues and their membership: which workers a queue's `target_workers` selects.

Membership is a table kept current whenever a worker's attributes or a queue's expression change,
so that matching reads "available members of this queue" with one indexed query instead of
evaluating every worker's attributes on every routing decision.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, insert, select

from . import validation
from .errors import DuplicateName, IllegalState, InvalidParameter
from .events import emit
from .expressions import Expression, ExpressionError, compile_expression
from .models import Task, TaskQueue, TaskQueueMember, Worker
from .router import Router, Tx
from .sids import new_sid

DEFAULT_TARGET_WORKERS = "1==1"
MAX_QUEUES = 5000
_UNSET: Any = object()


@lru_cache(maxsize=65536)
def parsed_attributes(text: str) -> dict:
    """Attributes JSON parsed once per distinct string (callers must not mutate the result)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def target_workers_expression(text: str | None) -> Expression | None:
    """The compiled `target_workers`; None (empty) selects nobody, as in TaskRouter."""
    if text is None or not text.strip():
        return None
    return compile_expression(text, "TargetWorkers")


def _validate_target_workers(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidParameter("TargetWorkers must be a string")
    if text.strip():
        try:
            compile_expression(text, "TargetWorkers")
        except ExpressionError as err:
            raise InvalidParameter(str(err)) from None
    return text


def create_task_queue(
    router: Router,
    workspace_sid: str,
    *,
    friendly_name: str,
    target_workers: str | None = None,
    max_reserved_workers: int | str | None = None,
    task_order: str | None = None,
    reservation_activity_sid: str | None = None,
    assignment_activity_sid: str | None = None,
) -> TaskQueue:
    validation.friendly_name(friendly_name)
    target = _validate_target_workers(DEFAULT_TARGET_WORKERS if target_workers is None else target_workers)
    max_reserved = (validation.integer(max_reserved_workers, "MaxReservedWorkers", minimum=1, maximum=50)
                    if max_reserved_workers is not None else 1)
    order = validation.choice(task_order or "FIFO", "TaskOrder", ("FIFO", "LIFO"))
    with router.transaction(workspace_sid) as tx:
        count = tx.session.scalar(select(func.count()).where(TaskQueue.workspace_sid == workspace_sid))
        if count >= MAX_QUEUES:
            raise InvalidParameter(f"A workspace has at most {MAX_QUEUES} task queues")
        _unique_queue_name(tx, friendly_name)
        tx.config_changed()
        queue = TaskQueue(
            sid=new_sid("WQ"), workspace_sid=workspace_sid, friendly_name=friendly_name, target_workers=target,
            max_reserved_workers=max_reserved, task_order=order,
            reservation_activity_sid=tx.activity(reservation_activity_sid).sid if reservation_activity_sid else None,
            assignment_activity_sid=tx.activity(assignment_activity_sid).sid if assignment_activity_sid else None,
            date_created=tx.now, date_updated=tx.now,
        )
        tx.session.add(queue)
        tx.session.flush()
        refresh_queue_members(tx, queue)
        emit(tx, "task-queue.created", resource=queue, queue=queue, description=f"TaskQueue {friendly_name} created")
        return queue


def update_task_queue(
    router: Router,
    workspace_sid: str,
    queue_sid: str,
    *,
    friendly_name: str | None = None,
    target_workers: str | None = None,
    max_reserved_workers: int | str | None = None,
    task_order: str | None = None,
    reservation_activity_sid: str | None = _UNSET,
    assignment_activity_sid: str | None = _UNSET,
) -> TaskQueue:
    target = _validate_target_workers(target_workers) if target_workers is not None else None
    nothing = (all(value is None for value in (friendly_name, target_workers, max_reserved_workers, task_order))
               and reservation_activity_sid is _UNSET and assignment_activity_sid is _UNSET)
    with router.transaction(workspace_sid) as tx:
        queue = tx.get(TaskQueue, queue_sid, "TaskQueue")
        if nothing:  # an empty POST: no update, and no reload of the configuration elsewhere
            return queue
        tx.config_changed()
        if friendly_name is not None and friendly_name != queue.friendly_name:
            validation.friendly_name(friendly_name)
            _unique_queue_name(tx, friendly_name)
            queue.friendly_name = friendly_name
        if max_reserved_workers is not None:
            queue.max_reserved_workers = validation.integer(max_reserved_workers, "MaxReservedWorkers",
                                                            minimum=1, maximum=50)
        if task_order is not None:
            queue.task_order = validation.choice(task_order, "TaskOrder", ("FIFO", "LIFO"))
        if reservation_activity_sid is not _UNSET:
            queue.reservation_activity_sid = (tx.activity(reservation_activity_sid).sid
                                              if reservation_activity_sid else None)
        if assignment_activity_sid is not _UNSET:
            queue.assignment_activity_sid = (tx.activity(assignment_activity_sid).sid
                                             if assignment_activity_sid else None)
        queue.date_updated = tx.now
        if target is not None and target != queue.target_workers:
            queue.target_workers = target
            refresh_queue_members(tx, queue)
            emit(tx, "task-queue.expression.updated", resource=queue, queue=queue,
                 description=f"TaskQueue {queue.friendly_name} target expression updated")
            # New members may be able to take waiting tasks right away.
            for task in waiting_tasks(tx, queue.sid):
                tx.wake_task(task)
        elif max_reserved_workers is not None:
            for task in waiting_tasks(tx, queue.sid):
                tx.wake_task(task)
        return queue


def delete_task_queue(router: Router, workspace_sid: str, queue_sid: str) -> None:
    """Delete a queue that no waiting task sits in and no workflow routes to."""
    from .models import Workflow
    from .workflows import configuration_of

    with router.transaction(workspace_sid) as tx:
        tx.config_changed()
        queue = tx.get(TaskQueue, queue_sid, "TaskQueue")
        waiting = tx.session.scalar(
            select(func.count()).where(Task.task_queue_sid == queue.sid,
                                       Task.assignment_status.in_(("pending", "reserved")))
        )
        if waiting:
            raise IllegalState(f"TaskQueue {queue.friendly_name} still holds {waiting} waiting task(s)")
        for workflow in tx.session.scalars(select(Workflow).where(Workflow.workspace_sid == workspace_sid)):
            if queue.sid in configuration_of(workflow).queue_sids:
                raise IllegalState(f"TaskQueue {queue.friendly_name} is a target of workflow "
                                   f"{workflow.friendly_name}; remove it from the configuration first")
        emit(tx, "task-queue.deleted", resource=queue, queue=queue,
             description=f"TaskQueue {queue.friendly_name} deleted")
        tx.session.delete(queue)


def _unique_queue_name(tx: Tx, name: str) -> None:
    if tx.session.scalar(select(TaskQueue.sid).where(TaskQueue.workspace_sid == tx.workspace.sid,
                                                     TaskQueue.friendly_name == name)):
        raise DuplicateName(f"A task queue named {name!r} already exists in this workspace")


def waiting_tasks(tx: Tx, queue_sid: str) -> list[Task]:
    return list(tx.session.scalars(
        select(Task).where(Task.task_queue_sid == queue_sid, Task.assignment_status.in_(("pending", "reserved")))
    ))


def worker_matches(expression: Expression | None, attributes: dict) -> bool:
    return expression is not None and expression(attributes)


def refresh_queue_members(tx: Tx, queue: TaskQueue) -> None:
    """Recompute which workers of the workspace belong to `queue`."""
    expression = target_workers_expression(queue.target_workers)
    tx.session.execute(delete(TaskQueueMember).where(TaskQueueMember.task_queue_sid == queue.sid))
    rows = tx.session.execute(
        select(Worker.sid, Worker.attributes).where(Worker.workspace_sid == tx.workspace.sid)
    ).all()
    members = [{"task_queue_sid": queue.sid, "worker_sid": sid}
               for sid, attributes in rows if worker_matches(expression, parsed_attributes(attributes))]
    if members:
        tx.session.execute(insert(TaskQueueMember), members)


def refresh_worker_memberships(tx: Tx, worker: Worker) -> set[str]:
    """Recompute the queues `worker` belongs to; returns the queue sids it joined."""
    attributes = parsed_attributes(worker.attributes)
    queues = tx.session.execute(
        select(TaskQueue.sid, TaskQueue.target_workers).where(TaskQueue.workspace_sid == tx.workspace.sid)
    ).all()
    wanted = {sid for sid, text in queues if worker_matches(target_workers_expression(text), attributes)}
    current = set(tx.session.scalars(
        select(TaskQueueMember.task_queue_sid).where(TaskQueueMember.worker_sid == worker.sid)
    ))
    gone, joined = current - wanted, wanted - current
    if gone:
        tx.session.execute(delete(TaskQueueMember).where(TaskQueueMember.worker_sid == worker.sid,
                                                         TaskQueueMember.task_queue_sid.in_(gone)))
    if joined:
        tx.session.execute(insert(TaskQueueMember),
                           [{"task_queue_sid": sid, "worker_sid": worker.sid} for sid in joined])
    return joined
