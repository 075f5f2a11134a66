"""Events: every state change writes its event rows in the transaction that made it.

`event_data` holds the snake_case fields TaskRouter stores on its Event resource (values as
strings, as Twilio sends them); the event callback sends the same fields in PascalCase, plus the
common ones (`EventType`, `AccountSid`, `Timestamp`, ...). Events that the workspace's
`EventCallbackUrl` wants also get an outbox row, in the same transaction.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .models import Activity, Event, Reservation, Task, TaskChannel, TaskQueue, Worker, Workflow
from .sids import new_ordered_sid

if TYPE_CHECKING:
    from .router import Tx

EVENT_TYPES = frozenset((
    "activity.created", "activity.updated", "activity.deleted",
    "reservation.created", "reservation.accepted", "reservation.rejected", "reservation.timeout",
    "reservation.canceled", "reservation.rescinded", "reservation.completed", "reservation.failed",
    "reservation.wrapup",
    "task.created", "task.updated", "task.canceled", "task.wrapup", "task.completed", "task.deleted",
    "task.system-deleted",
    "task-channel.created", "task-channel.updated", "task-channel.deleted",
    "task-queue.created", "task-queue.deleted", "task-queue.entered", "task-queue.timeout",
    "task-queue.moved", "task-queue.expression.updated",
    "worker.created", "worker.deleted", "worker.activity.update", "worker.attributes.update",
    "worker.capacity.update", "worker.channel.availability.update",
    "workflow.created", "workflow.updated", "workflow.deleted", "workflow.target-matched", "workflow.entered",
    "workflow.timeout", "workflow.skipped",
    "workspace.created", "workspace.updated", "workspace.deleted",
))
# Flex's task transfers: this server never emits them, but an EventsFilter copied from a Flex workspace names them.
TRANSFER_EVENT_TYPES = frozenset((
    "task.transfer-initiated", "task.transfer-attempt-failed", "task.transfer-failed", "task.transfer-canceled",
    "task.transfer-completed",
))


# json.dumps(..., separators=(",", ":")) builds an encoder per call; every event and outbox row is encoded.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def epoch_ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)


def task_age_seconds(task: Task, now: datetime) -> int:
    return max(0, int((now - task.date_created).total_seconds()))


def task_fields(tx: Tx, task: Task) -> dict[str, Any]:
    channel = tx.channel(task.task_channel_sid)
    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    fields = {
        "task_sid": task.sid,
        "task_attributes": task.attributes,
        "task_age": str(task_age_seconds(task, tx.now)),
        "task_priority": str(task.priority),
        "task_assignment_status": task.assignment_status,
        "task_date_created": str(epoch_ms(task.date_created) // 1000),
        "task_channel_sid": task.task_channel_sid,
        "task_channel_unique_name": channel.unique_name if channel else None,
        "task_version": str(task.version),
        "workflow_sid": task.workflow_sid,
        "workflow_name": workflow.friendly_name if workflow else None,
    }
    if task.task_queue_sid:
        queue = tx.config.queues.get(task.task_queue_sid)
        fields["task_queue_sid"] = task.task_queue_sid
        fields["task_queue_name"] = queue.friendly_name if queue else None
        if queue is not None:
            fields["task_queue_target_expression"] = queue.target_workers
        if task.task_queue_entered_date:
            fields["task_queue_entered_date"] = str(epoch_ms(task.task_queue_entered_date) // 1000)
    if task.assignment_status == "canceled":
        fields["task_canceled_reason"] = task.reason
    if task.assignment_status == "completed":
        fields["task_completed_reason"] = task.reason
    return fields


def worker_fields(tx: Tx, worker: Worker) -> dict[str, Any]:
    activity = tx.activity(worker.activity_sid)
    return {
        "worker_sid": worker.sid,
        "worker_name": worker.friendly_name,
        "worker_attributes": worker.attributes,
        "worker_activity_sid": worker.activity_sid,
        "worker_activity_name": activity.friendly_name,
        "worker_version": str(worker.version),
    }


def emit(
    tx: Tx,
    event_type: str,
    *,
    resource: object,
    description: str,
    task: Task | None = None,
    worker: Worker | None = None,
    reservation: Reservation | None = None,
    queue: TaskQueue | None = None,
    workflow: Workflow | None = None,
    activity: Activity | None = None,
    channel: TaskChannel | None = None,
    data: dict[str, Any] | None = None,
    wait_ms: int | None = None,
    queue_wait_ms: int | None = None,
    actor: object | None = None,
) -> None:
    """Write one event (and its callback, when the workspace wants it) in the current transaction."""
    assert event_type in EVENT_TYPES, event_type
    workspace = tx.workspace
    fields: dict[str, Any] = {}
    if task is not None:
        fields.update(task_fields(tx, task))
    if worker is not None:
        fields.update(worker_fields(tx, worker))
    if reservation is not None:
        fields["reservation_sid"] = reservation.sid
        fields.setdefault("task_queue_sid", reservation.task_queue_sid)
    if queue is not None:
        fields["task_queue_sid"] = queue.sid
        fields["task_queue_name"] = queue.friendly_name
        fields["task_queue_target_expression"] = queue.target_workers
    if workflow is not None:
        fields["workflow_sid"] = workflow.sid
        fields["workflow_name"] = workflow.friendly_name
    if activity is not None:
        fields["activity_sid"] = activity.sid
        fields["activity_name"] = activity.friendly_name
        fields["activity_available"] = str(activity.available).lower()
    if channel is not None:
        fields["task_channel_sid"] = channel.sid
        fields["task_channel_name"] = channel.friendly_name
        fields["task_channel_unique_name"] = channel.unique_name
        fields["task_channel_optimized_routing"] = str(bool(channel.channel_optimized_routing)).lower()
    if data:
        fields.update(data)
    fields["workspace_sid"] = workspace.sid
    fields["workspace_name"] = workspace.friendly_name
    event_data = {key: value if value.__class__ is str else _as_string(value)
                  for key, value in fields.items() if value is not None}

    resource_type, resource_sid = _resource_of(resource)
    actor_type, actor_sid = _resource_of(actor) if actor is not None else ("workspace", workspace.sid)
    row = {
        "sid": new_ordered_sid("EV", tx.now),  # in time order: see sids.py
        "workspace_sid": workspace.sid,
        "account_sid": workspace.account_sid,
        "event_type": event_type,
        "event_date": tx.now,
        "resource_type": resource_type,
        "resource_sid": resource_sid,
        "actor_type": actor_type,
        "actor_sid": actor_sid,
        "description": description,
        "event_data": compact_json(event_data),
        "task_sid": fields.get("task_sid"),
        "worker_sid": fields.get("worker_sid"),
        "reservation_sid": fields.get("reservation_sid"),
        "task_queue_sid": fields.get("task_queue_sid"),
        "workflow_sid": fields.get("workflow_sid"),
        "task_channel_sid": fields.get("task_channel_sid"),
        "activity_sid": fields.get("worker_activity_sid") or fields.get("activity_sid"),
        "previous_activity_sid": fields.get("worker_previous_activity_sid"),
        "previous_task_queue_sid": fields.get("task_queue_moved_from"),
        "wait_ms": wait_ms,
        "queue_wait_ms": queue_wait_ms,
    }
    tx.add_event(row)


def callback_params(event: Event | dict[str, Any]) -> dict[str, str]:
    """The form parameters of the event callback POST for one stored event."""
    get = event.get if isinstance(event, dict) else lambda key: getattr(event, key)
    data = json.loads(get("event_data"))
    moment = get("event_date")
    params = {_pascal(key): value for key, value in data.items()}
    params.update(
        {
            "Sid": get("sid"),
            "EventType": get("event_type"),
            "AccountSid": get("account_sid"),
            "WorkspaceSid": get("workspace_sid"),
            "EventDescription": get("description"),
            "ResourceType": get("resource_type"),
            "ResourceSid": get("resource_sid"),
            "Timestamp": str(epoch_ms(moment) // 1000),
            "TimestampMs": str(epoch_ms(moment)),
        }
    )
    return params


def wants_callback(events_filter: str | None, event_type: str) -> bool:
    if not events_filter:
        return True
    return event_type in {part.strip() for part in events_filter.split(",")}


_RESOURCE_TYPES = {
    Task: "task",
    Worker: "worker",
    Reservation: "reservation",
    TaskQueue: "taskqueue",
    Workflow: "workflow",
    Activity: "activity",
    TaskChannel: "taskchannel",
}


def _resource_of(resource: object) -> tuple[str, str]:
    name = _RESOURCE_TYPES.get(type(resource))
    if name is not None:
        return name, resource.sid  # type: ignore[attr-defined]
    for model, name in _RESOURCE_TYPES.items():  # a subclass
        if isinstance(resource, model):
            return name, resource.sid  # type: ignore[attr-defined]
    return "workspace", resource.sid  # type: ignore[attr-defined]


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


def _pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def snake(pascal: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", pascal).lower()
