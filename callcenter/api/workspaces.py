"""Workspaces, Activities and TaskChannels."""

from __future__ import annotations

from flask import g
from sqlalchemy import select

from callcenter.database import get_router
from callcenter.routing import workspaces as engine
from callcenter.routing.models import Activity, TaskChannel, Workspace
from callcenter.routing.validation import boolean

from . import bp
from . import representations as rep
from .wire import (
    bool_param,
    created,
    deleted,
    has_param,
    not_found,
    ok,
    paginate,
    param,
    workspace_of_account,
)


def _workspace_json(workspace_sid: str) -> dict:
    with get_router().read() as session:
        row = workspace_of_account(session, workspace_sid)
        return rep.workspace(row, rep.Names(session, row.sid))


# -- Workspaces ------------------------------------------------------------------------------------

@bp.get("/Workspaces")
def list_workspaces():
    name = param("FriendlyName")
    with get_router().read() as session:
        query = select(Workspace).where(Workspace.account_sid == g.account_sid)
        if name:
            query = query.where(Workspace.friendly_name == name)
        return ok(paginate(session, query, key="workspaces", path="/Workspaces",
                           order=[(Workspace.date_created, False), (Workspace.sid, False)],
                           represent=lambda row: rep.workspace(row, rep.Names(session, row.sid)),
                           filters={"FriendlyName": name}))


@bp.post("/Workspaces")
def create_workspace():
    multi = bool_param("MultiTaskEnabled")
    workspace = engine.create_workspace(
        get_router(), account_sid=g.account_sid, friendly_name=param("FriendlyName"),
        event_callback_url=param("EventCallbackUrl"), events_filter=param("EventsFilter"),
        multi_task_enabled=True if multi is None else multi, template=param("Template"),
        prioritize_queue_order=param("PrioritizeQueueOrder") or "FIFO",
    )
    return created(_workspace_json(workspace.sid))


@bp.get("/Workspaces/<workspace_sid>")
def fetch_workspace(workspace_sid):
    return ok(_workspace_json(workspace_sid))


@bp.post("/Workspaces/<workspace_sid>")
def update_workspace(workspace_sid):
    _workspace_json(workspace_sid)  # 404 unless it is this account's
    options = {}
    if has_param("EventCallbackUrl"):
        options["event_callback_url"] = param("EventCallbackUrl")
    if has_param("EventsFilter"):
        options["events_filter"] = param("EventsFilter")
    engine.update_workspace(
        get_router(), workspace_sid, friendly_name=param("FriendlyName"),
        multi_task_enabled=bool_param("MultiTaskEnabled"), default_activity_sid=param("DefaultActivitySid"),
        timeout_activity_sid=param("TimeoutActivitySid"), prioritize_queue_order=param("PrioritizeQueueOrder"),
        **options,
    )
    return ok(_workspace_json(workspace_sid))


@bp.delete("/Workspaces/<workspace_sid>")
def delete_workspace(workspace_sid):
    _workspace_json(workspace_sid)
    engine.delete_workspace(get_router(), workspace_sid)
    return deleted()


# -- Activities ------------------------------------------------------------------------------------

def _activity_json(workspace_sid: str, activity_sid: str) -> dict:
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        row = session.get(Activity, activity_sid)
        if row is None or row.workspace_sid != workspace_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/Activities/{activity_sid}")
        return rep.activity(row, g.account_sid)


@bp.get("/Workspaces/<workspace_sid>/Activities")
def list_activities(workspace_sid):
    name, available = param("FriendlyName"), param("Available")
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        query = select(Activity).where(Activity.workspace_sid == workspace_sid)
        if name:
            query = query.where(Activity.friendly_name == name)
        if available is not None:
            query = query.where(Activity.available.is_(boolean(available, "Available")))
        return ok(paginate(session, query, key="activities", path=f"/Workspaces/{workspace_sid}/Activities",
                           order=[(Activity.date_created, False), (Activity.sid, False)],
                           represent=lambda row: rep.activity(row, g.account_sid),
                           filters={"FriendlyName": name, "Available": available}))


@bp.post("/Workspaces/<workspace_sid>/Activities")
def create_activity(workspace_sid):
    _workspace_json(workspace_sid)
    activity = engine.create_activity(get_router(), workspace_sid, friendly_name=param("FriendlyName"),
                                      available=param("Available"))
    return created(_activity_json(workspace_sid, activity.sid))


@bp.get("/Workspaces/<workspace_sid>/Activities/<activity_sid>")
def fetch_activity(workspace_sid, activity_sid):
    return ok(_activity_json(workspace_sid, activity_sid))


@bp.post("/Workspaces/<workspace_sid>/Activities/<activity_sid>")
def update_activity(workspace_sid, activity_sid):
    _activity_json(workspace_sid, activity_sid)
    engine.update_activity(get_router(), workspace_sid, activity_sid, friendly_name=param("FriendlyName"),
                           available=param("Available"))
    return ok(_activity_json(workspace_sid, activity_sid))


@bp.delete("/Workspaces/<workspace_sid>/Activities/<activity_sid>")
def delete_activity(workspace_sid, activity_sid):
    _activity_json(workspace_sid, activity_sid)
    engine.delete_activity(get_router(), workspace_sid, activity_sid)
    return deleted()


# -- TaskChannels ----------------------------------------------------------------------------------

def _channel_json(workspace_sid: str, channel: str) -> dict:
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        if channel.startswith("TC"):
            row = session.get(TaskChannel, channel)
        else:  # TaskRouter also accepts the unique name in place of the sid
            row = session.scalar(select(TaskChannel).where(TaskChannel.workspace_sid == workspace_sid,
                                                           TaskChannel.unique_name == channel))
        if row is None or row.workspace_sid != workspace_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/TaskChannels/{channel}")
        return rep.task_channel(row, g.account_sid)


@bp.get("/Workspaces/<workspace_sid>/TaskChannels")
def list_task_channels(workspace_sid):
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        query = select(TaskChannel).where(TaskChannel.workspace_sid == workspace_sid)
        return ok(paginate(session, query, key="channels", path=f"/Workspaces/{workspace_sid}/TaskChannels",
                           order=[(TaskChannel.date_created, False), (TaskChannel.sid, False)],
                           represent=lambda row: rep.task_channel(row, g.account_sid)))


@bp.post("/Workspaces/<workspace_sid>/TaskChannels")
def create_task_channel(workspace_sid):
    _workspace_json(workspace_sid)
    channel = engine.create_task_channel(get_router(), workspace_sid, friendly_name=param("FriendlyName"),
                                         unique_name=param("UniqueName"),
                                         channel_optimized_routing=param("ChannelOptimizedRouting"))
    return created(_channel_json(workspace_sid, channel.sid))


@bp.get("/Workspaces/<workspace_sid>/TaskChannels/<channel_sid>")
def fetch_task_channel(workspace_sid, channel_sid):
    return ok(_channel_json(workspace_sid, channel_sid))


@bp.post("/Workspaces/<workspace_sid>/TaskChannels/<channel_sid>")
def update_task_channel(workspace_sid, channel_sid):
    sid = _channel_json(workspace_sid, channel_sid)["sid"]
    engine.update_task_channel(get_router(), workspace_sid, sid, friendly_name=param("FriendlyName"),
                               channel_optimized_routing=param("ChannelOptimizedRouting"))
    return ok(_channel_json(workspace_sid, sid))


@bp.delete("/Workspaces/<workspace_sid>/TaskChannels/<channel_sid>")
def delete_task_channel(workspace_sid, channel_sid):
    sid = _channel_json(workspace_sid, channel_sid)["sid"]
    engine.delete_task_channel(get_router(), workspace_sid, sid)
    return deleted()
