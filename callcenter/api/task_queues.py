"""TaskQueues (their statistics live with the other statistics routes)."""

from __future__ import annotations

import json

from flask import g
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.database import get_router
from callcenter.routing import queues as engine
from callcenter.routing.errors import InvalidParameter
from callcenter.routing.models import TaskQueue, TaskQueueMember

from . import bp
from . import representations as rep
from .wire import created, deleted, has_param, not_found, ok, paginate, param, workspace_of_account
from .workers import require_activity

_ORDERINGS = {"DateUpdated:asc": False, "DateUpdated:desc": True}
_ACTIVITY_PARAMS = ("ReservationActivitySid", "AssignmentActivitySid")


def _queue(session: Session, workspace_sid: str, queue_sid: str) -> TaskQueue:
    workspace_of_account(session, workspace_sid)
    row = session.get(TaskQueue, queue_sid)
    if row is None or row.workspace_sid != workspace_sid:
        raise not_found(f"/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}")
    return row


def _queue_json(workspace_sid: str, queue_sid: str) -> dict:
    with get_router().read() as session:
        row = _queue(session, workspace_sid, queue_sid)
        return rep.task_queue(row, g.account_sid, rep.Names(session, workspace_sid))


def _worker_attributes(text: str) -> dict:
    try:
        attributes = json.loads(text)
    except ValueError as err:
        raise InvalidParameter(f"EvaluateWorkerAttributes is not valid JSON: {err}") from None
    except RecursionError:  # `[[[[...]]]]` a few thousand deep
        raise InvalidParameter("EvaluateWorkerAttributes nests too deeply") from None
    if not isinstance(attributes, dict):
        raise InvalidParameter("EvaluateWorkerAttributes must be a JSON object of worker attributes")
    return attributes


@bp.get("/Workspaces/<workspace_sid>/TaskQueues")
def list_task_queues(workspace_sid):
    name, worker_sid, ordering = param("FriendlyName"), param("WorkerSid"), param("Ordering")
    evaluate = param("EvaluateWorkerAttributes")
    if ordering and ordering not in _ORDERINGS:
        raise InvalidParameter(f"Ordering must be one of {', '.join(_ORDERINGS)}")
    attributes = _worker_attributes(evaluate) if evaluate else None
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        query = select(TaskQueue).where(TaskQueue.workspace_sid == workspace_sid)
        if name:
            query = query.where(TaskQueue.friendly_name == name)
        if worker_sid:
            query = query.where(TaskQueue.sid.in_(
                select(TaskQueueMember.task_queue_sid).where(TaskQueueMember.worker_sid == worker_sid)))
        if attributes is not None:
            targets = session.execute(select(TaskQueue.sid, TaskQueue.target_workers)
                                      .where(TaskQueue.workspace_sid == workspace_sid)).all()
            matching = [sid for sid, text in targets
                        if engine.worker_matches(engine.target_workers_expression(text), attributes)]
            query = query.where(TaskQueue.sid.in_(matching))
        if ordering:
            order = [(TaskQueue.date_updated, _ORDERINGS[ordering]), (TaskQueue.sid, False)]
        else:
            order = [(TaskQueue.date_created, False), (TaskQueue.sid, False)]
        names = rep.Names(session, workspace_sid)
        return ok(paginate(session, query, key="task_queues", path=f"/Workspaces/{workspace_sid}/TaskQueues",
                           order=order, represent=lambda row: rep.task_queue(row, g.account_sid, names),
                           filters={"FriendlyName": name, "EvaluateWorkerAttributes": evaluate,
                                    "WorkerSid": worker_sid, "Ordering": ordering}))


def _check_activities(workspace_sid: str, queue_sid: str | None = None) -> None:
    with get_router().read() as session:
        if queue_sid is None:
            workspace_of_account(session, workspace_sid)
        else:
            _queue(session, workspace_sid, queue_sid)
        for name in _ACTIVITY_PARAMS:
            require_activity(session, workspace_sid, param(name), name)


@bp.post("/Workspaces/<workspace_sid>/TaskQueues")
def create_task_queue(workspace_sid):
    _check_activities(workspace_sid)
    queue = engine.create_task_queue(
        get_router(), workspace_sid, friendly_name=param("FriendlyName"), target_workers=param("TargetWorkers"),
        max_reserved_workers=param("MaxReservedWorkers"), task_order=param("TaskOrder"),
        reservation_activity_sid=param("ReservationActivitySid") or None,
        assignment_activity_sid=param("AssignmentActivitySid") or None,
    )
    return created(_queue_json(workspace_sid, queue.sid))


@bp.get("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>")
def fetch_task_queue(workspace_sid, queue_sid):
    return ok(_queue_json(workspace_sid, queue_sid))


@bp.post("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>")
def update_task_queue(workspace_sid, queue_sid):
    _check_activities(workspace_sid, queue_sid)
    # An empty activity sid clears it; a parameter that was not sent leaves it as it is.
    activities = {f"{prefix}_activity_sid": param(name) or None
                  for prefix, name in (("reservation", "ReservationActivitySid"), ("assignment", "AssignmentActivitySid"))
                  if has_param(name)}
    engine.update_task_queue(
        get_router(), workspace_sid, queue_sid, friendly_name=param("FriendlyName"),
        target_workers=param("TargetWorkers"), max_reserved_workers=param("MaxReservedWorkers"),
        task_order=param("TaskOrder"), **activities,
    )
    return ok(_queue_json(workspace_sid, queue_sid))


@bp.delete("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>")
def delete_task_queue(workspace_sid, queue_sid):
    _queue_json(workspace_sid, queue_sid)
    engine.delete_task_queue(get_router(), workspace_sid, queue_sid)
    return deleted()
