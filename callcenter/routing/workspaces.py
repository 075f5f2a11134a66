"""Workspaces, their Activities and their TaskChannels: the frame every other resource lives in."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, select

from . import validation
from .errors import DuplicateName, IllegalState, InvalidParameter
from .events import emit
from .models import Activity, Task, TaskChannel, TaskQueue, Worker, WorkerChannel, Workspace
from .router import Router, Tx
from .sids import new_sid

DEFAULT_ACTIVITIES = (("Offline", False), ("Available", True), ("Unavailable", False))
DEFAULT_CHANNELS = (("Default", "default"), ("Voice", "voice"), ("SMS", "sms"), ("Chat", "chat"), ("Video", "video"))
MAX_ACTIVITIES = 100
MAX_CHANNELS = 15
_UNSET: Any = object()


def create_workspace(
    router: Router,
    *,
    account_sid: str,
    friendly_name: str,
    event_callback_url: str | None = None,
    events_filter: str | None = None,
    multi_task_enabled: bool = True,
    template: str | None = None,
    prioritize_queue_order: str = "FIFO",
) -> Workspace:
    """Create a workspace with the default activities (Offline, Available, Unavailable) and channels.

    `template="FIFO"` also creates a queue of every worker and a workflow routing every task to it.
    """
    validation.friendly_name(friendly_name)
    template = validation.choice(template or "NONE", "Template", ("NONE", "FIFO"))
    queue_order = validation.choice(prioritize_queue_order, "PrioritizeQueueOrder", ("FIFO", "LIFO"))
    callback_url = validation.callback_url(router, event_callback_url, "EventCallbackUrl")
    events_filter = _events_filter(events_filter)
    with router.transaction(None) as tx:
        workspace = Workspace(
            sid=new_sid("WS"),
            account_sid=account_sid,
            friendly_name=friendly_name,
            event_callback_url=callback_url,
            events_filter=events_filter,
            multi_task_enabled=multi_task_enabled,
            prioritize_queue_order=queue_order,
            date_created=tx.now,
            date_updated=tx.now,
        )
        tx.session.add(workspace)
        tx.session.flush()  # no ORM relationships: parents are flushed before their children
        tx.workspace = workspace
        activities = {}
        for name, available in DEFAULT_ACTIVITIES:
            activity = Activity(sid=new_sid("WA"), workspace_sid=workspace.sid, friendly_name=name,
                                available=available, date_created=tx.now, date_updated=tx.now)
            tx.session.add(activity)
            activities[name] = activity
        workspace.default_activity_sid = activities["Offline"].sid
        workspace.timeout_activity_sid = activities["Offline"].sid
        for name, unique_name in DEFAULT_CHANNELS:
            tx.session.add(TaskChannel(sid=new_sid("TC"), workspace_sid=workspace.sid, friendly_name=name,
                                       unique_name=unique_name, channel_optimized_routing=False,
                                       date_created=tx.now, date_updated=tx.now))
        tx.session.flush()
        emit(tx, "workspace.created", resource=workspace, description=f"Workspace {friendly_name} created")
    if template == "FIFO":
        from .queues import create_task_queue
        from .workflows import create_workflow

        queue = create_task_queue(router, workspace.sid, friendly_name="Sample Queue", target_workers="1==1")
        config = {"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}}
        create_workflow(router, workspace.sid, friendly_name="Default Fifo Workflow",
                        configuration=json.dumps(config), task_reservation_timeout=120)
    return workspace


def update_workspace(
    router: Router,
    workspace_sid: str,
    *,
    friendly_name: str | None = None,
    event_callback_url: str | None = _UNSET,
    events_filter: str | None = _UNSET,
    multi_task_enabled: bool | None = None,
    default_activity_sid: str | None = None,
    timeout_activity_sid: str | None = None,
    prioritize_queue_order: str | None = None,
) -> Workspace:
    with router.transaction(workspace_sid) as tx:
        workspace = tx.workspace
        if friendly_name is not None:
            workspace.friendly_name = validation.friendly_name(friendly_name)
        if event_callback_url is not _UNSET:
            workspace.event_callback_url = validation.callback_url(router, event_callback_url, "EventCallbackUrl")
        if events_filter is not _UNSET:
            workspace.events_filter = _events_filter(events_filter)
        if multi_task_enabled is not None:
            if workspace.multi_task_enabled and not multi_task_enabled:
                raise IllegalState("Multitasking cannot be turned off once a workspace has it")
            if multi_task_enabled and not workspace.multi_task_enabled:
                # Workers busy on one channel may now take work on their others.
                for worker in tx.session.scalars(select(Worker).where(Worker.workspace_sid == workspace.sid,
                                                                      Worker.available.is_(True))):
                    tx.wake_worker(worker)
            workspace.multi_task_enabled = multi_task_enabled
        if default_activity_sid is not None:
            workspace.default_activity_sid = tx.activity(default_activity_sid).sid
        if timeout_activity_sid is not None:
            workspace.timeout_activity_sid = tx.activity(timeout_activity_sid).sid
        if prioritize_queue_order is not None:
            workspace.prioritize_queue_order = validation.choice(
                prioritize_queue_order, "PrioritizeQueueOrder", ("FIFO", "LIFO"))
        if not tx.session.is_modified(workspace):  # nothing new (an empty POST): no update to tell of
            return workspace
        workspace.date_updated = tx.now
        emit(tx, "workspace.updated", resource=workspace, description=f"Workspace {workspace.friendly_name} updated")
        return workspace


def delete_workspace(router: Router, workspace_sid: str) -> None:
    """Delete a workspace and everything in it (the database cascades)."""
    with router.transaction(workspace_sid) as tx:
        tx.session.delete(tx.workspace)


def _events_filter(value: str | None) -> str | None:
    from .events import EVENT_TYPES, TRANSFER_EVENT_TYPES

    if value in (None, ""):
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in EVENT_TYPES and name not in TRANSFER_EVENT_TYPES]
    if unknown:
        raise InvalidParameter(f"EventsFilter: unknown event type {unknown[0]!r}")
    return ",".join(names)


# -- Activities ------------------------------------------------------------------------------------

def create_activity(router: Router, workspace_sid: str, *, friendly_name: str,
                    available: bool | str | None = None) -> Activity:
    validation.friendly_name(friendly_name)
    available = validation.boolean(available, "Available") if available is not None else True
    with router.transaction(workspace_sid) as tx:
        count = tx.session.scalar(select(func.count()).where(Activity.workspace_sid == workspace_sid))
        if count >= MAX_ACTIVITIES:
            raise InvalidParameter(f"A workspace has at most {MAX_ACTIVITIES} activities")
        _unique_activity_name(tx, friendly_name)
        tx.config_changed()
        activity = Activity(sid=new_sid("WA"), workspace_sid=workspace_sid, friendly_name=friendly_name,
                            available=available, date_created=tx.now, date_updated=tx.now)
        tx.session.add(activity)
        tx.session.flush()
        emit(tx, "activity.created", resource=activity, activity=activity,
             description=f"Activity {friendly_name} created")
        return activity


def update_activity(router: Router, workspace_sid: str, activity_sid: str, *, friendly_name: str | None = None,
                    available: Any = None) -> Activity:
    if available is not None:
        raise InvalidParameter("Available cannot be changed after an activity is created")
    with router.transaction(workspace_sid) as tx:
        activity = tx.get(Activity, activity_sid, "Activity")
        if friendly_name is None or friendly_name == activity.friendly_name:
            return activity  # nothing new: no update to tell of
        tx.config_changed()
        validation.friendly_name(friendly_name)
        _unique_activity_name(tx, friendly_name)
        activity.friendly_name = friendly_name
        activity.date_updated = tx.now
        emit(tx, "activity.updated", resource=activity, activity=activity,
             description=f"Activity {activity.friendly_name} updated")
        return activity


def delete_activity(router: Router, workspace_sid: str, activity_sid: str) -> None:
    """Delete an activity that no worker, queue or workspace setting uses."""
    with router.transaction(workspace_sid) as tx:
        tx.config_changed()
        activity = tx.get(Activity, activity_sid, "Activity")
        workspace = tx.workspace
        if activity_sid in (workspace.default_activity_sid, workspace.timeout_activity_sid):
            raise IllegalState(f"Activity {activity.friendly_name} is the workspace's default or timeout activity")
        workers = tx.session.scalar(select(func.count()).where(Worker.activity_sid == activity_sid))
        if workers:
            raise IllegalState(f"Activity {activity.friendly_name} is the current activity of {workers} worker(s)")
        queues = tx.session.scalar(
            select(func.count()).where(
                (TaskQueue.reservation_activity_sid == activity_sid)
                | (TaskQueue.assignment_activity_sid == activity_sid)
            )
        )
        if queues:
            raise IllegalState(f"Activity {activity.friendly_name} is used by {queues} task queue(s)")
        emit(tx, "activity.deleted", resource=activity, activity=activity,
             description=f"Activity {activity.friendly_name} deleted")
        tx.session.delete(activity)


def _unique_activity_name(tx: Tx, name: str) -> None:
    taken = tx.session.scalar(
        select(Activity.sid).where(Activity.workspace_sid == tx.workspace.sid, Activity.friendly_name == name)
    )
    if taken:
        raise DuplicateName(f"An activity named {name!r} already exists in this workspace")


# -- TaskChannels ----------------------------------------------------------------------------------

def create_task_channel(router: Router, workspace_sid: str, *, friendly_name: str, unique_name: str,
                        channel_optimized_routing: bool | str | None = None) -> TaskChannel:
    """Create a channel; every worker gets a WorkerChannel for it (capacity 1, available)."""
    validation.friendly_name(friendly_name)
    _check_unique_name(unique_name)
    with router.transaction(workspace_sid) as tx:
        count = tx.session.scalar(select(func.count()).where(TaskChannel.workspace_sid == workspace_sid))
        if count >= MAX_CHANNELS:
            raise InvalidParameter(f"A workspace has at most {MAX_CHANNELS} task channels")
        if tx.session.scalar(select(TaskChannel.sid).where(TaskChannel.workspace_sid == workspace_sid,
                                                           TaskChannel.unique_name == unique_name)):
            raise DuplicateName(f"A task channel with unique name {unique_name!r} already exists")
        tx.config_changed()
        channel = TaskChannel(
            sid=new_sid("TC"), workspace_sid=workspace_sid, friendly_name=friendly_name, unique_name=unique_name,
            channel_optimized_routing=(validation.boolean(channel_optimized_routing, "ChannelOptimizedRouting")
                                       if channel_optimized_routing is not None else False),
            date_created=tx.now, date_updated=tx.now,
        )
        tx.session.add(channel)
        tx.session.flush()
        for worker_sid, worker_available in tx.session.execute(
                select(Worker.sid, Worker.available).where(Worker.workspace_sid == workspace_sid)):
            tx.session.add(WorkerChannel(sid=new_sid("WC"), workspace_sid=workspace_sid, worker_sid=worker_sid,
                                         task_channel_sid=channel.sid, capacity=1, available=True,
                                         worker_available=worker_available,
                                         idle_since=tx.now, date_created=tx.now, date_updated=tx.now))
        tx.session.flush()
        tx.forget_channels()
        emit(tx, "task-channel.created", resource=channel, channel=channel,
             description=f"TaskChannel {unique_name} created")
        return channel


def update_task_channel(router: Router, workspace_sid: str, channel_sid: str, *, friendly_name: str | None = None,
                        channel_optimized_routing: Any = None) -> TaskChannel:
    with router.transaction(workspace_sid) as tx:
        # The configuration cache's copy names it; the row to change is the session's (the copy is shared by
        # every transaction of the process, and a change to it would never be written).
        channel = tx.get(TaskChannel, find_task_channel(tx, channel_sid).sid, "TaskChannel")
        if friendly_name is not None:
            channel.friendly_name = validation.friendly_name(friendly_name)
        if channel_optimized_routing is not None:
            channel.channel_optimized_routing = validation.boolean(channel_optimized_routing,
                                                                   "ChannelOptimizedRouting")
        if not tx.session.is_modified(channel):
            return channel  # nothing new: no update to tell of
        tx.config_changed()
        channel.date_updated = tx.now
        emit(tx, "task-channel.updated", resource=channel, channel=channel,
             description=f"TaskChannel {channel.unique_name} updated")
        return channel


def delete_task_channel(router: Router, workspace_sid: str, channel_sid: str) -> None:
    with router.transaction(workspace_sid) as tx:
        tx.config_changed()
        channel = find_task_channel(tx, channel_sid)
        in_use = tx.session.scalar(select(func.count()).where(Task.task_channel_sid == channel.sid))
        if in_use:
            raise IllegalState(f"TaskChannel {channel.unique_name} is used by {in_use} task(s)")
        emit(tx, "task-channel.deleted", resource=channel, channel=channel,
             description=f"TaskChannel {channel.unique_name} deleted")
        tx.session.execute(delete(WorkerChannel).where(WorkerChannel.task_channel_sid == channel.sid))
        tx.session.delete(channel)


def find_task_channel(tx: Tx, sid_or_unique_name: str) -> TaskChannel:
    """A channel by sid (TC...) or by unique name (`voice`), as TaskRouter accepts either."""
    from .errors import NotFound

    config = tx.config
    if isinstance(sid_or_unique_name, str) and sid_or_unique_name.startswith("TC"):
        channel = config.channels.get(sid_or_unique_name)
    else:
        channel = config.channels_by_name.get(sid_or_unique_name)
    if channel is None:
        raise NotFound(f"TaskChannel {sid_or_unique_name} not found in this workspace")
    return channel


def _check_unique_name(value: Any) -> None:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}", value):
        raise InvalidParameter(
            "UniqueName must be letters, digits, '_' or '$', not start with a digit, and have no hyphens"
        )
