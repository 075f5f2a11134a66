"""Workers, their Channels and their Reservations."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.database import get_router
from callcenter.routing import reservations as reservation_engine
from callcenter.routing import workers as engine
from callcenter.routing.errors import InvalidParameter
from callcenter.routing.expressions import compile_expression
from callcenter.routing.models import (
    RESERVATION_STATUSES,
    Activity,
    Reservation,
    TaskChannel,
    TaskQueue,
    TaskQueueMember,
    Worker,
    WorkerChannel,
)
from callcenter.routing.queues import parsed_attributes
from callcenter.routing.validation import boolean

from . import bp
from . import representations as rep
from .reservation_params import reservation_update_params
from .wire import (
    bool_param,
    created,
    deleted,
    if_match,
    not_found,
    ok,
    paginate,
    param,
    workspace_of_account,
)


def require_activity(session: Session, workspace_sid: str, activity_sid: str | None, field: str) -> None:
    """A referenced activity that is not in the workspace is a bad parameter (400), not a missing page."""
    if not activity_sid:
        return
    activity = session.get(Activity, activity_sid)
    if activity is None or activity.workspace_sid != workspace_sid:
        raise InvalidParameter(f"{field} {activity_sid} is not an activity of this workspace")


def _worker(session: Session, workspace_sid: str, worker_sid: str) -> Worker:
    workspace_of_account(session, workspace_sid)
    row = session.get(Worker, worker_sid)
    if row is None or row.workspace_sid != workspace_sid:
        raise not_found(f"/Workspaces/{workspace_sid}/Workers/{worker_sid}")
    return row


def _worker_response(workspace_sid: str, worker_sid: str, respond=ok):
    with get_router().read() as session:
        row = _worker(session, workspace_sid, worker_sid)
        return respond(rep.worker(row, g.account_sid, rep.Names(session, workspace_sid)), etag=row.version)


# -- Workers ---------------------------------------------------------------------------------------

_WORKER_ORDERINGS = {"DateStatusChanged:asc": False, "DateStatusChanged:desc": True}


@bp.get("/Workspaces/<workspace_sid>/Workers")
def list_workers(workspace_sid):
    filters = {name: param(name) for name in ("ActivityName", "ActivitySid", "Available", "FriendlyName",
                                              "TargetWorkersExpression", "TaskQueueName", "TaskQueueSid", "Ordering")}
    ordering = filters["Ordering"]
    if ordering and ordering not in _WORKER_ORDERINGS:
        raise InvalidParameter(f"Ordering must be one of {', '.join(_WORKER_ORDERINGS)}")
    expression_text = filters["TargetWorkersExpression"]
    expression = compile_expression(expression_text, "TargetWorkersExpression") if expression_text else None
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        query = select(Worker).where(Worker.workspace_sid == workspace_sid)
        if filters["ActivityName"]:
            query = query.where(Worker.activity_sid.in_(select(Activity.sid).where(
                Activity.workspace_sid == workspace_sid, Activity.friendly_name == filters["ActivityName"])))
        if filters["ActivitySid"]:
            query = query.where(Worker.activity_sid == filters["ActivitySid"])
        if filters["Available"] is not None:
            query = query.where(Worker.available.is_(boolean(filters["Available"], "Available")))
        if filters["FriendlyName"]:
            # Worker names are unique case-insensitively, so they are found that way too.
            query = query.where(Worker.name_key == filters["FriendlyName"].casefold())
        if filters["TaskQueueSid"]:
            query = query.where(Worker.sid.in_(select(TaskQueueMember.worker_sid).where(
                TaskQueueMember.task_queue_sid == filters["TaskQueueSid"])))
        if filters["TaskQueueName"]:
            queue_sids = select(TaskQueue.sid).where(TaskQueue.workspace_sid == workspace_sid,
                                                     TaskQueue.friendly_name == filters["TaskQueueName"])
            query = query.where(Worker.sid.in_(select(TaskQueueMember.worker_sid).where(
                TaskQueueMember.task_queue_sid.in_(queue_sids))))
        if expression is not None:
            query = query.where(Worker.sid.in_(_workers_matching(session, workspace_sid, query, expression)))
        if ordering:
            order = [(Worker.date_status_changed, _WORKER_ORDERINGS[ordering]), (Worker.sid, False)]
        else:
            order = [(Worker.date_created, False), (Worker.sid, False)]
        names = rep.Names(session, workspace_sid)
        with_attributes = bool(current_app.config.get("API_ATTRIBUTES_IN_LISTS"))
        return ok(paginate(session, query, key="workers", path=f"/Workspaces/{workspace_sid}/Workers", order=order,
                           represent=lambda row: rep.worker(row, g.account_sid, names,
                                                            with_attributes=with_attributes),
                           filters=filters))


def _workers_matching(session: Session, workspace_sid: str, query, expression) -> list[str]:
    """Sids of the workers `query` selects whose attributes plus built-in fields match `expression`."""
    candidates = query.with_only_columns(Worker.sid, Worker.friendly_name, Worker.activity_sid, Worker.attributes)
    activity_names = dict(session.execute(select(Activity.sid, Activity.friendly_name)
                                          .where(Activity.workspace_sid == workspace_sid)).all())
    matching = []
    for sid, friendly_name, activity_sid, attributes in session.execute(candidates):
        env = {**parsed_attributes(attributes), "sid": sid, "friendly_name": friendly_name,
               "activity_sid": activity_sid, "activity_name": activity_names.get(activity_sid)}
        if expression(env):
            matching.append(sid)
    return matching


@bp.post("/Workspaces/<workspace_sid>/Workers")
def create_worker(workspace_sid):
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        require_activity(session, workspace_sid, param("ActivitySid"), "ActivitySid")
    worker = engine.create_worker(get_router(), workspace_sid, friendly_name=param("FriendlyName"),
                                  activity_sid=param("ActivitySid") or None, attributes=param("Attributes"))
    return _worker_response(workspace_sid, worker.sid, created)


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>")
def fetch_worker(workspace_sid, worker_sid):
    return _worker_response(workspace_sid, worker_sid)


@bp.post("/Workspaces/<workspace_sid>/Workers/<worker_sid>")
def update_worker(workspace_sid, worker_sid):
    with get_router().read() as session:
        _worker(session, workspace_sid, worker_sid)
        require_activity(session, workspace_sid, param("ActivitySid"), "ActivitySid")
    engine.update_worker(get_router(), workspace_sid, worker_sid, friendly_name=param("FriendlyName"),
                         activity_sid=param("ActivitySid") or None, attributes=param("Attributes"),
                         reject_pending_reservations=bool(bool_param("RejectPendingReservations")),
                         if_match=if_match())
    return _worker_response(workspace_sid, worker_sid)


@bp.delete("/Workspaces/<workspace_sid>/Workers/<worker_sid>")
def delete_worker(workspace_sid, worker_sid):
    with get_router().read() as session:
        _worker(session, workspace_sid, worker_sid)
    engine.delete_worker(get_router(), workspace_sid, worker_sid, if_match=if_match())
    return deleted()


# -- Worker Channels -------------------------------------------------------------------------------

def _worker_channel(session: Session, workspace_sid: str, worker_sid: str, channel: str) -> WorkerChannel:
    """A worker's channel by its WC sid, or by the TaskChannel's sid or unique name (`voice`)."""
    _worker(session, workspace_sid, worker_sid)
    if channel.startswith("WC"):
        row = session.get(WorkerChannel, channel)
    else:
        task_channel = select(TaskChannel.sid).where(TaskChannel.workspace_sid == workspace_sid)
        task_channel = task_channel.where(TaskChannel.sid == channel if channel.startswith("TC")
                                          else TaskChannel.unique_name == channel)
        row = session.scalar(select(WorkerChannel).where(WorkerChannel.worker_sid == worker_sid,
                                                         WorkerChannel.task_channel_sid.in_(task_channel)))
    if row is None or row.worker_sid != worker_sid:
        raise not_found(f"/Workspaces/{workspace_sid}/Workers/{worker_sid}/Channels/{channel}")
    return row


def _channel_json(workspace_sid: str, worker_sid: str, channel: str) -> dict:
    with get_router().read() as session:
        row = _worker_channel(session, workspace_sid, worker_sid, channel)
        return rep.worker_channel(row, g.account_sid, rep.Names(session, workspace_sid))


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Channels")
def list_worker_channels(workspace_sid, worker_sid):
    with get_router().read() as session:
        _worker(session, workspace_sid, worker_sid)
        names = rep.Names(session, workspace_sid)
        query = select(WorkerChannel).where(WorkerChannel.worker_sid == worker_sid)
        return ok(paginate(session, query, key="channels",
                           path=f"/Workspaces/{workspace_sid}/Workers/{worker_sid}/Channels",
                           order=[(WorkerChannel.date_created, False), (WorkerChannel.sid, False)],
                           represent=lambda row: rep.worker_channel(row, g.account_sid, names)))


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Channels/<channel_sid>")
def fetch_worker_channel(workspace_sid, worker_sid, channel_sid):
    return ok(_channel_json(workspace_sid, worker_sid, channel_sid))


@bp.post("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Channels/<channel_sid>")
def update_worker_channel(workspace_sid, worker_sid, channel_sid):
    sid = _channel_json(workspace_sid, worker_sid, channel_sid)["sid"]
    engine.update_worker_channel(get_router(), workspace_sid, worker_sid, sid, capacity=param("Capacity"),
                                 available=param("Available"))
    return ok(_channel_json(workspace_sid, worker_sid, sid))


# -- Worker Reservations ---------------------------------------------------------------------------

def _reservation_response(workspace_sid: str, worker_sid: str, reservation_sid: str):
    with get_router().read() as session:
        _worker(session, workspace_sid, worker_sid)
        row = session.get(Reservation, reservation_sid)
        if row is None or row.worker_sid != worker_sid or row.workspace_sid != workspace_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/Workers/{worker_sid}/Reservations/{reservation_sid}")
        body = rep.reservation(row, g.account_sid, rep.Names(session, workspace_sid), under_worker=True)
        return ok(body, etag=row.version)


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Reservations")
def list_worker_reservations(workspace_sid, worker_sid):
    status = param("ReservationStatus")
    if status and status not in RESERVATION_STATUSES:
        raise InvalidParameter(f"ReservationStatus must be one of {', '.join(RESERVATION_STATUSES)}")
    with get_router().read() as session:
        _worker(session, workspace_sid, worker_sid)
        names = rep.Names(session, workspace_sid)
        query = select(Reservation).where(Reservation.worker_sid == worker_sid)
        if status:
            query = query.where(Reservation.reservation_status == status)
        return ok(paginate(session, query, key="reservations",
                           path=f"/Workspaces/{workspace_sid}/Workers/{worker_sid}/Reservations",
                           order=[(Reservation.date_created, False), (Reservation.sid, False)],
                           represent=lambda row: rep.reservation(row, g.account_sid, names, under_worker=True),
                           filters={"ReservationStatus": status}))


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Reservations/<reservation_sid>")
def fetch_worker_reservation(workspace_sid, worker_sid, reservation_sid):
    return _reservation_response(workspace_sid, worker_sid, reservation_sid)


@bp.post("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Reservations/<reservation_sid>")
def update_worker_reservation(workspace_sid, worker_sid, reservation_sid):
    _reservation_response(workspace_sid, worker_sid, reservation_sid)  # 404 unless it is this worker's
    update = reservation_update_params(supervise=False)
    with get_router().read() as session:
        require_activity(session, workspace_sid, update.worker_activity_sid, "WorkerActivitySid")
    reservation_engine.update_reservation(
        get_router(), workspace_sid, reservation_sid, reservation_status=update.reservation_status,
        worker_activity_sid=update.worker_activity_sid, instruction=update.instruction,
        instruction_params=update.instruction_params, worker_sid=worker_sid, if_match=if_match(),
    )
    return _reservation_response(workspace_sid, worker_sid, reservation_sid)
