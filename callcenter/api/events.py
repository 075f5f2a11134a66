"""Events (`/Workspaces/{WS}/Events`): the read-only log of every state change.

Twilio's docs do not say in which order the list comes; this server returns events in the order
they were written (the integer id, oldest first), which is also the order callbacks are delivered.
"""

from __future__ import annotations

from flask import request
from sqlalchemy import false, select

from callcenter.database import get_router
from callcenter.routing.models import Event, TaskChannel
from callcenter.routing.statistics import NotIndexed, events_window

from . import bp
from . import representations as rep
from .wire import not_found, ok, paginate, param, workspace_of_account

# Query parameter -> the indexed column of `events` it filters on.
SID_FILTERS = {
    "Sid": Event.sid,
    "EventType": Event.event_type,
    "ReservationSid": Event.reservation_sid,
    "TaskQueueSid": Event.task_queue_sid,
    "TaskSid": Event.task_sid,
    "WorkerSid": Event.worker_sid,
    "WorkflowSid": Event.workflow_sid,
}


@bp.get("/Workspaces/<workspace_sid>/Events")
def list_events(workspace_sid):
    minutes, start, end = param("Minutes"), param("StartDate"), param("EndDate")
    channel = param("TaskChannel")
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        window = events_window(get_router().clock.now(), minutes=minutes or None, start_date=start or None,
                               end_date=end or None)
        # One task's or one worker's events are read off its own index, not off the workspace's (NotIndexed).
        by_own_index = any(request.args.get(name) for name in ("Sid", "TaskSid", "WorkerSid"))
        workspace_column = NotIndexed(Event.workspace_sid) if by_own_index else Event.workspace_sid
        query = select(Event).where(workspace_column == workspace_sid, Event.event_date >= window.start,
                                    Event.event_date <= window.end)
        for name, column in SID_FILTERS.items():
            if request.args.get(name):
                query = query.where(column == request.args[name])
        if channel:
            channel_sid = channel if channel.startswith("TC") else session.scalar(
                select(TaskChannel.sid).where(TaskChannel.workspace_sid == workspace_sid,
                                              TaskChannel.unique_name == channel))
            query = query.where(Event.task_channel_sid == channel_sid) if channel_sid else query.where(false())
        filters = {name: request.args.get(name) for name in SID_FILTERS}
        # The pages' URLs carry the window as dates: one that ends "now" (Minutes, or no EndDate) would move on
        # with every page, and a stream on a busy workspace would keep finding newer events, never ending.
        filters.update({"StartDate": _iso(window.start), "EndDate": _iso(window.end), "TaskChannel": channel})
        return ok(paginate(session, query, key="events", path=f"/Workspaces/{workspace_sid}/Events",
                           order=[(Event.id, False)], represent=rep.event, filters=filters))


@bp.get("/Workspaces/<workspace_sid>/Events/<event_sid>")
def fetch_event(workspace_sid, event_sid):
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        row = session.scalar(select(Event).where(Event.sid == event_sid))
        if row is None or row.workspace_sid != workspace_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/Events/{event_sid}")
        return ok(rep.event(row))


def _iso(moment) -> str:
    """A window's bound, to the microsecond (events are dated to it), in UTC."""
    return moment.isoformat(timespec="microseconds") + "Z"
