"""Tasks and their Reservations (`/Tasks/{WT}/Reservations`)."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy import bindparam, false, select

from callcenter.database import get_router
from callcenter.routing import reservations as reservation_engine
from callcenter.routing import tasks as engine
from callcenter.routing import validation
from callcenter.routing.errors import InvalidParameter
from callcenter.routing.expressions import compile_expression
from callcenter.routing.models import RESERVATION_STATUSES, TASK_STATUSES, Reservation, Task, TaskQueue, Workflow
from callcenter.routing.queues import parsed_attributes

from . import bp
from . import representations as rep
from .reservation_params import reservation_update_params
from .wire import (
    check_workspace_owner,
    created,
    deleted,
    has_param,
    if_match,
    not_found,
    ok,
    paginate,
    param,
    param_list,
    workspace_of_account,
)
from .workers import require_activity

# `Ordering` attributes and the columns they sort on.
ORDERING_COLUMNS = {"datecreated": Task.date_created, "priority": Task.priority,
                    "virtualstarttime": Task.virtual_start_time}


def _attributes_in_lists() -> bool:
    return bool(current_app.config.get("API_ATTRIBUTES_IN_LISTS", False))


def _task_row(session, workspace_sid: str, task_sid: str) -> Task:
    workspace_of_account(session, workspace_sid)
    row = session.get(Task, task_sid)
    if row is None or row.workspace_sid != workspace_sid:
        raise not_found(f"/Workspaces/{workspace_sid}/Tasks/{task_sid}")
    return row


def _task_response(workspace_sid: str, task_sid: str, status: int = 200):
    with get_router().read() as session:
        row = _task_row(session, workspace_sid, task_sid)
        body = rep.task(row, g.account_sid, rep.Names(session, workspace_sid), get_router().clock.now())
        return (created if status == 201 else ok)(body, etag=row.version)


# -- Tasks -----------------------------------------------------------------------------------------

def task_ordering(text: str | None) -> list:
    """`Attribute:Order[,Attribute:Order]` as paginate's order, ending with the sid so page tokens stay stable."""
    if not text:
        return [(Task.date_created, False), (Task.sid, False)]
    order, seen = [], []
    for part in text.split(","):
        attribute, _, direction = part.strip().partition(":")
        column = ORDERING_COLUMNS.get(attribute.strip().lower())
        direction = direction.strip().lower()
        if column is None or direction not in ("asc", "desc"):
            raise InvalidParameter(f"Ordering {part.strip()!r} is not Attribute:Order, with Attribute one of "
                                   "DateCreated, Priority, VirtualStartTime and Order asc or desc")
        if column.key in seen:
            raise InvalidParameter(f"Ordering names {attribute.strip()} twice")
        seen.append(column.key)
        order.append((column, direction == "desc"))
    if {"date_created", "virtual_start_time"} <= set(seen):
        raise InvalidParameter("Ordering cannot pair DateCreated with VirtualStartTime")
    return [*order, (Task.sid, False)]


def task_filters(workspace_sid: str) -> tuple[list, dict]:
    """The SQL conditions of the Tasks list's filters (all but EvaluateTaskAttributes), and their echo."""
    echo = {name: param(name) for name in ("Priority", "WorkflowSid", "WorkflowName", "TaskQueueSid",
                                           "TaskQueueName", "EvaluateTaskAttributes", "RoutingTarget",
                                           "Ordering", "HasAddons")}
    echo["AssignmentStatus"] = statuses = param_list("AssignmentStatus")
    conditions = [Task.workspace_sid == workspace_sid]
    if echo["Priority"] not in (None, ""):
        conditions.append(Task.priority == validation.integer(echo["Priority"], "Priority", minimum=0,
                                                              maximum=validation.MAX_PRIORITY))
    for status in statuses:
        if status not in TASK_STATUSES:
            raise InvalidParameter(f"AssignmentStatus {status!r} is not one of {', '.join(TASK_STATUSES)}")
    if statuses:
        conditions.append(Task.assignment_status.in_(statuses))
    if echo["WorkflowSid"]:
        conditions.append(Task.workflow_sid == echo["WorkflowSid"])
    if echo["WorkflowName"]:
        conditions.append(Task.workflow_sid.in_(select(Workflow.sid).where(
            Workflow.workspace_sid == workspace_sid, Workflow.friendly_name == echo["WorkflowName"])))
    if echo["TaskQueueSid"]:
        conditions.append(Task.task_queue_sid == echo["TaskQueueSid"])
    if echo["TaskQueueName"]:
        conditions.append(Task.task_queue_sid.in_(select(TaskQueue.sid).where(
            TaskQueue.workspace_sid == workspace_sid, TaskQueue.friendly_name == echo["TaskQueueName"])))
    if echo["RoutingTarget"]:
        conditions.append(Task.routing_target == echo["RoutingTarget"])
    if echo["HasAddons"] is not None and validation.boolean(echo["HasAddons"], "HasAddons"):
        conditions.append(false())  # this server runs no Add-ons: every task's `addons` is "{}"
    return conditions, echo


@bp.get("/Workspaces/<workspace_sid>/Tasks")
def list_tasks(workspace_sid):
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        conditions, echo = task_filters(workspace_sid)
        order = task_ordering(echo["Ordering"])
        query = select(Task).where(*conditions)
        if echo["EvaluateTaskAttributes"] not in (None, ""):
            expression = compile_expression(echo["EvaluateTaskAttributes"], "EvaluateTaskAttributes")
            # Expressions are evaluated in Python, never turned into SQL; the matching sids are then
            # inlined (literal_execute) so that a large workspace does not hit bound-parameter limits.
            rows = session.execute(select(Task.sid, Task.attributes).where(*conditions)).all()
            matching = [sid for sid, text in rows if expression(parsed_attributes(text))]
            query = query.where(Task.sid.in_(bindparam("matching", matching, expanding=True, literal_execute=True)))
        names, now, with_attributes = rep.Names(session, workspace_sid), get_router().clock.now(), _attributes_in_lists()
        return ok(paginate(
            session, query, key="tasks", path=f"/Workspaces/{workspace_sid}/Tasks", order=order,
            represent=lambda row: rep.task(row, g.account_sid, names, now, with_attributes=with_attributes),
            filters=echo,
        ))


@bp.post("/Workspaces/<workspace_sid>/Tasks")
def create_task(workspace_sid):
    router = get_router()
    check_workspace_owner(workspace_sid, router)
    if param("TaskQueueSid") not in (None, ""):
        raise InvalidParameter("TaskQueueSid is not supported by this server: tasks enter a queue through their "
                               "workflow (pass WorkflowSid)")
    routing_target = param("RoutingTarget")
    if has_param("IgnoreCapacity") and routing_target in (None, ""):
        raise InvalidParameter("IgnoreCapacity can only be used with a RoutingTarget that is a Worker")
    task = engine.create_task(
        get_router(), workspace_sid, attributes=param("Attributes"), workflow_sid=param("WorkflowSid") or None,
        priority=param("Priority"), timeout=param("Timeout"), task_channel=param("TaskChannel") or None,
        virtual_start_time=param("VirtualStartTime") or None, routing_target=routing_target or None,
    )
    # The engine returns the task as committed; its names come from the configuration that
    # transaction just validated, so the busiest call of the API reads nothing more.
    configuration = router.configurations.latest(workspace_sid)
    if configuration is None:
        return _task_response(workspace_sid, task.sid, status=201)
    names = rep.Names.from_configuration(configuration, workspace_sid)
    return created(rep.task(task, g.account_sid, names, router.clock.now()), etag=task.version)


@bp.get("/Workspaces/<workspace_sid>/Tasks/<task_sid>")
def fetch_task(workspace_sid, task_sid):
    return _task_response(workspace_sid, task_sid)


@bp.post("/Workspaces/<workspace_sid>/Tasks/<task_sid>")
def update_task(workspace_sid, task_sid):
    with get_router().read() as session:
        _task_row(session, workspace_sid, task_sid)
    engine.update_task(
        get_router(), workspace_sid, task_sid, attributes=param("Attributes"),
        assignment_status=param("AssignmentStatus") or None, reason=param("Reason"), priority=param("Priority"),
        task_channel=param("TaskChannel") or None, virtual_start_time=param("VirtualStartTime") or None,
        if_match=if_match(),
    )
    return _task_response(workspace_sid, task_sid)


@bp.delete("/Workspaces/<workspace_sid>/Tasks/<task_sid>")
def delete_task(workspace_sid, task_sid):
    with get_router().read() as session:
        _task_row(session, workspace_sid, task_sid)
    engine.delete_task(get_router(), workspace_sid, task_sid, if_match=if_match())
    return deleted()


# -- Task Reservations -----------------------------------------------------------------------------

def _reservation_response(workspace_sid: str, task_sid: str, reservation_sid: str):
    with get_router().read() as session:
        _task_row(session, workspace_sid, task_sid)
        row = session.get(Reservation, reservation_sid)
        if row is None or row.workspace_sid != workspace_sid or row.task_sid != task_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/Tasks/{task_sid}/Reservations/{reservation_sid}")
        return ok(rep.reservation(row, g.account_sid, rep.Names(session, workspace_sid)), etag=row.version)


@bp.get("/Workspaces/<workspace_sid>/Tasks/<task_sid>/Reservations")
def list_task_reservations(workspace_sid, task_sid):
    status, worker_sid = param("ReservationStatus"), param("WorkerSid")
    with get_router().read() as session:
        _task_row(session, workspace_sid, task_sid)
        if status not in (None, "") and status not in RESERVATION_STATUSES:
            raise InvalidParameter(f"ReservationStatus {status!r} is not one of {', '.join(RESERVATION_STATUSES)}")
        query = select(Reservation).where(Reservation.workspace_sid == workspace_sid, Reservation.task_sid == task_sid)
        if status:
            query = query.where(Reservation.reservation_status == status)
        if worker_sid:
            query = query.where(Reservation.worker_sid == worker_sid)
        names = rep.Names(session, workspace_sid)
        return ok(paginate(session, query, key="reservations",
                           path=f"/Workspaces/{workspace_sid}/Tasks/{task_sid}/Reservations",
                           order=[(Reservation.date_created, False), (Reservation.sid, False)],
                           represent=lambda row: rep.reservation(row, g.account_sid, names),
                           filters={"ReservationStatus": status, "WorkerSid": worker_sid}))


@bp.get("/Workspaces/<workspace_sid>/Tasks/<task_sid>/Reservations/<reservation_sid>")
def fetch_task_reservation(workspace_sid, task_sid, reservation_sid):
    return _reservation_response(workspace_sid, task_sid, reservation_sid)


@bp.post("/Workspaces/<workspace_sid>/Tasks/<task_sid>/Reservations/<reservation_sid>")
def update_task_reservation(workspace_sid, task_sid, reservation_sid):
    _reservation_response(workspace_sid, task_sid, reservation_sid)  # 404 unless it is this task's
    update = reservation_update_params()
    with get_router().read() as session:
        require_activity(session, workspace_sid, update.worker_activity_sid, "WorkerActivitySid")
    reservation_engine.update_reservation(
        get_router(), workspace_sid, reservation_sid, reservation_status=update.reservation_status,
        worker_activity_sid=update.worker_activity_sid, instruction=update.instruction,
        instruction_params=update.instruction_params, task_sid=task_sid, if_match=if_match(),
    )
    return _reservation_response(workspace_sid, task_sid, reservation_sid)

