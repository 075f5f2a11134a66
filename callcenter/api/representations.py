"""The JSON of each TaskRouter resource, field for field as `taskrouter_v1.openapi.json` names them.

Each function takes the engine's row and a `Names` lookup (friendly names of the activities,
queues, workflows and channels a representation mentions), so a list page costs one query per
kind of name, not one per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.routing.events import epoch_ms, task_age_seconds
from callcenter.routing.models import (
    Activity,
    Event,
    Reservation,
    Task,
    TaskChannel,
    TaskQueue,
    Worker,
    WorkerChannel,
    Workflow,
    Workspace,
)
from callcenter.routing.workers import available_capacity_percentage

from .wire import iso, url_for_path


@dataclass
class Names:
    """Friendly names by sid for one workspace, loaded on first use."""

    session: Session
    workspace_sid: str
    _maps: dict[str, dict[str, str]] = field(default_factory=dict)

    def _load(self, model, column) -> dict[str, str]:
        key = model.__tablename__
        if key not in self._maps:
            rows = self.session.execute(select(model.sid, column).where(model.workspace_sid == self.workspace_sid))
            self._maps[key] = dict(rows.all())
        return self._maps[key]

    def activity(self, sid: str | None) -> str | None:
        return self._load(Activity, Activity.friendly_name).get(sid) if sid else None

    def queue(self, sid: str | None) -> str | None:
        return self._load(TaskQueue, TaskQueue.friendly_name).get(sid) if sid else None

    def workflow(self, sid: str | None) -> str | None:
        return self._load(Workflow, Workflow.friendly_name).get(sid) if sid else None

    def channel(self, sid: str | None) -> str | None:
        return self._load(TaskChannel, TaskChannel.unique_name).get(sid) if sid else None

    @classmethod
    def from_configuration(cls, configuration, workspace_sid: str) -> Names:
        """Names taken from the engine's cached workspace configuration, with no database read."""
        names = cls(None, workspace_sid)  # type: ignore[arg-type]  (no session: every map is filled)
        names._maps = {
            Activity.__tablename__: {sid: row.friendly_name for sid, row in configuration.activities.items()},
            TaskQueue.__tablename__: {sid: row.friendly_name for sid, row in configuration.queues.items()},
            Workflow.__tablename__: {sid: row.friendly_name for sid, row in configuration.workflows.items()},
            TaskChannel.__tablename__: {sid: row.unique_name for sid, row in configuration.channels.items()},
        }
        return names

    def worker(self, sid: str | None) -> str | None:
        if not sid:
            return None
        cache = self._maps.setdefault("workers", {})
        if sid not in cache:
            cache[sid] = self.session.scalar(select(Worker.friendly_name).where(Worker.sid == sid))
        return cache[sid]


def _ws(workspace_sid: str) -> str:
    return f"/Workspaces/{workspace_sid}"


def workspace(row: Workspace, names: Names) -> dict:
    path = _ws(row.sid)
    return {
        "account_sid": row.account_sid,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "default_activity_name": names.activity(row.default_activity_sid),
        "default_activity_sid": row.default_activity_sid,
        "event_callback_url": row.event_callback_url,
        "events_filter": row.events_filter,
        "friendly_name": row.friendly_name,
        "multi_task_enabled": row.multi_task_enabled,
        "sid": row.sid,
        "timeout_activity_name": names.activity(row.timeout_activity_sid),
        "timeout_activity_sid": row.timeout_activity_sid,
        "prioritize_queue_order": row.prioritize_queue_order,
        "url": url_for_path(path),
        "links": {name: url_for_path(f"{path}/{suffix}") for name, suffix in (
            ("activities", "Activities"), ("statistics", "Statistics"),
            ("real_time_statistics", "RealTimeStatistics"), ("cumulative_statistics", "CumulativeStatistics"),
            ("task_queues", "TaskQueues"), ("tasks", "Tasks"), ("workers", "Workers"),
            ("workflows", "Workflows"), ("task_channels", "TaskChannels"), ("events", "Events"),
        )},
    }


def activity(row: Activity, account_sid: str) -> dict:
    return {
        "account_sid": account_sid,
        "available": row.available,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "friendly_name": row.friendly_name,
        "sid": row.sid,
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(f"{_ws(row.workspace_sid)}/Activities/{row.sid}"),
        "links": {"workspace": url_for_path(_ws(row.workspace_sid))},
    }


def task_channel(row: TaskChannel, account_sid: str) -> dict:
    return {
        "account_sid": account_sid,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "friendly_name": row.friendly_name,
        "sid": row.sid,
        "unique_name": row.unique_name,
        "workspace_sid": row.workspace_sid,
        "channel_optimized_routing": bool(row.channel_optimized_routing),
        "url": url_for_path(f"{_ws(row.workspace_sid)}/TaskChannels/{row.sid}"),
        "links": {"workspace": url_for_path(_ws(row.workspace_sid))},
    }


def task_queue(row: TaskQueue, account_sid: str, names: Names) -> dict:
    ws = _ws(row.workspace_sid)
    path = f"{ws}/TaskQueues/{row.sid}"
    links = {
        "workspace": url_for_path(ws),
        "statistics": url_for_path(f"{path}/Statistics"),
        "real_time_statistics": url_for_path(f"{path}/RealTimeStatistics"),
        "cumulative_statistics": url_for_path(f"{path}/CumulativeStatistics"),
        "list_statistics": url_for_path(f"{ws}/TaskQueues/Statistics"),
        "bulk_real_time_statistics": url_for_path(f"{ws}/TaskQueues/RealTimeStatistics"),
    }
    if row.assignment_activity_sid:
        links["assignment_activity"] = url_for_path(f"{ws}/Activities/{row.assignment_activity_sid}")
    if row.reservation_activity_sid:
        links["reservation_activity"] = url_for_path(f"{ws}/Activities/{row.reservation_activity_sid}")
    return {
        "account_sid": account_sid,
        "assignment_activity_sid": row.assignment_activity_sid,
        "assignment_activity_name": names.activity(row.assignment_activity_sid),
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "friendly_name": row.friendly_name,
        "max_reserved_workers": row.max_reserved_workers,
        "reservation_activity_sid": row.reservation_activity_sid,
        "reservation_activity_name": names.activity(row.reservation_activity_sid),
        "sid": row.sid,
        "target_workers": row.target_workers,
        "task_order": row.task_order,
        "url": url_for_path(path),
        "workspace_sid": row.workspace_sid,
        "links": links,
    }


def worker(row: Worker, account_sid: str, names: Names, *, with_attributes: bool = True) -> dict:
    ws = _ws(row.workspace_sid)
    path = f"{ws}/Workers/{row.sid}"
    return {
        "account_sid": account_sid,
        "activity_name": names.activity(row.activity_sid),
        "activity_sid": row.activity_sid,
        "attributes": row.attributes if with_attributes else None,
        "available": row.available,
        "date_created": iso(row.date_created),
        "date_status_changed": iso(row.date_status_changed),
        "date_updated": iso(row.date_updated),
        "friendly_name": row.friendly_name,
        "sid": row.sid,
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(path),
        "links": {
            "channels": url_for_path(f"{path}/Channels"),
            "worker_channels": url_for_path(f"{path}/Channels"),
            "reservations": url_for_path(f"{path}/Reservations"),
            "worker_statistics": url_for_path(f"{path}/Statistics"),
            "activity": url_for_path(f"{ws}/Activities/{row.activity_sid}"),
            "workspace": url_for_path(ws),
            "statistics": url_for_path(f"{ws}/Workers/Statistics"),
            "real_time_statistics": url_for_path(f"{ws}/Workers/RealTimeStatistics"),
            "cumulative_statistics": url_for_path(f"{ws}/Workers/CumulativeStatistics"),
        },
    }


def worker_channel(row: WorkerChannel, account_sid: str, names: Names) -> dict:
    return {
        "account_sid": account_sid,
        "assigned_tasks": row.assigned_tasks,
        "available": row.available,
        "available_capacity_percentage": available_capacity_percentage(row),
        "configured_capacity": row.capacity,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "sid": row.sid,
        "task_channel_sid": row.task_channel_sid,
        "task_channel_unique_name": names.channel(row.task_channel_sid),
        "worker_sid": row.worker_sid,
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(f"{_ws(row.workspace_sid)}/Workers/{row.worker_sid}/Channels/{row.sid}"),
    }


def workflow(row: Workflow, account_sid: str) -> dict:
    path = f"{_ws(row.workspace_sid)}/Workflows/{row.sid}"
    return {
        "account_sid": account_sid,
        "assignment_callback_url": row.assignment_callback_url,
        "configuration": row.configuration,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "document_content_type": "application/json",
        "fallback_assignment_callback_url": row.fallback_assignment_callback_url,
        "friendly_name": row.friendly_name,
        "sid": row.sid,
        "task_reservation_timeout": row.task_reservation_timeout,
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(path),
        "links": {
            "statistics": url_for_path(f"{path}/Statistics"),
            "real_time_statistics": url_for_path(f"{path}/RealTimeStatistics"),
            "cumulative_statistics": url_for_path(f"{path}/CumulativeStatistics"),
        },
    }


def task(row: Task, account_sid: str, names: Names, now, *, with_attributes: bool = True) -> dict:
    ws = _ws(row.workspace_sid)
    path = f"{ws}/Tasks/{row.sid}"
    links = {"workspace": url_for_path(ws), "reservations": url_for_path(f"{path}/Reservations")}
    if row.task_queue_sid:
        links["task_queue"] = url_for_path(f"{ws}/TaskQueues/{row.task_queue_sid}")
    if row.workflow_sid:
        links["workflow"] = url_for_path(f"{ws}/Workflows/{row.workflow_sid}")
    return {
        "account_sid": account_sid,
        "age": task_age_seconds(row, now),
        "assignment_status": row.assignment_status,
        "attributes": row.attributes if with_attributes else None,
        "addons": "{}",
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "task_queue_entered_date": iso(row.task_queue_entered_date),
        "priority": row.priority,
        "reason": row.reason,
        "sid": row.sid,
        "task_queue_sid": row.task_queue_sid,
        "task_queue_friendly_name": names.queue(row.task_queue_sid),
        "task_channel_sid": row.task_channel_sid,
        "task_channel_unique_name": names.channel(row.task_channel_sid),
        "timeout": row.timeout,
        "workflow_sid": row.workflow_sid,
        "workflow_friendly_name": names.workflow(row.workflow_sid),
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(path),
        "links": links,
        "virtual_start_time": iso(row.virtual_start_time),
        "ignore_capacity": bool(row.ignore_capacity),
        "routing_target": row.routing_target,
    }


def reservation(row: Reservation, account_sid: str, names: Names, *, under_worker: bool = False) -> dict:
    ws = _ws(row.workspace_sid)
    path = (f"{ws}/Workers/{row.worker_sid}/Reservations/{row.sid}" if under_worker
            else f"{ws}/Tasks/{row.task_sid}/Reservations/{row.sid}")
    return {
        "account_sid": account_sid,
        "date_created": iso(row.date_created),
        "date_updated": iso(row.date_updated),
        "reservation_status": row.reservation_status,
        "sid": row.sid,
        "task_sid": row.task_sid,
        "worker_name": names.worker(row.worker_sid),
        "worker_sid": row.worker_sid,
        "workspace_sid": row.workspace_sid,
        "url": url_for_path(path),
        "links": {
            "task": url_for_path(f"{ws}/Tasks/{row.task_sid}"),
            "worker": url_for_path(f"{ws}/Workers/{row.worker_sid}"),
            "workspace": url_for_path(ws),
        },
    }


_RESOURCE_PATHS = {"task": "Tasks", "worker": "Workers", "reservation": None, "taskqueue": "TaskQueues",
                   "workflow": "Workflows", "activity": "Activities", "taskchannel": "TaskChannels"}


def event(row: Event) -> dict:
    ws = _ws(row.workspace_sid)

    def resource_url(kind: str | None, sid: str | None) -> str | None:
        if not kind or not sid:
            return None
        if kind == "workspace":
            return url_for_path(ws)
        if kind == "reservation":
            return url_for_path(f"{ws}/Tasks/{row.task_sid}/Reservations/{sid}") if row.task_sid else None
        folder = _RESOURCE_PATHS.get(kind)
        return url_for_path(f"{ws}/{folder}/{sid}") if folder else None

    return {
        "account_sid": row.account_sid,
        "actor_sid": row.actor_sid,
        "actor_type": row.actor_type,
        "actor_url": resource_url(row.actor_type, row.actor_sid),
        "description": row.description,
        "event_data": json.loads(row.event_data),
        "event_date": iso(row.event_date),
        "event_date_ms": epoch_ms(row.event_date),
        "event_type": row.event_type,
        "resource_sid": row.resource_sid,
        "resource_type": row.resource_type,
        "resource_url": resource_url(row.resource_type, row.resource_sid),
        "sid": row.sid,
        "source": "twilio",
        "source_ip_address": None,
        "url": url_for_path(f"{ws}/Events/{row.sid}"),
        "workspace_sid": row.workspace_sid,
    }
