"""Workflows (their statistics live with the other statistics routes)."""

from __future__ import annotations

from flask import g
from sqlalchemy import select

from callcenter.database import get_router
from callcenter.routing import workflows as engine
from callcenter.routing.errors import InvalidParameter
from callcenter.routing.models import Workflow

from . import bp
from . import representations as rep
from .wire import bool_param, created, deleted, has_param, not_found, ok, paginate, param, workspace_of_account


def _workflow_json(workspace_sid: str, workflow_sid: str) -> dict:
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        row = session.get(Workflow, workflow_sid)
        if row is None or row.workspace_sid != workspace_sid:
            raise not_found(f"/Workspaces/{workspace_sid}/Workflows/{workflow_sid}")
        return rep.workflow(row, g.account_sid)


def _workspace_exists(workspace_sid: str) -> None:
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)


@bp.get("/Workspaces/<workspace_sid>/Workflows")
def list_workflows(workspace_sid):
    name = param("FriendlyName")
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        query = select(Workflow).where(Workflow.workspace_sid == workspace_sid)
        if name:
            query = query.where(Workflow.friendly_name == name)
        return ok(paginate(session, query, key="workflows", path=f"/Workspaces/{workspace_sid}/Workflows",
                           order=[(Workflow.date_created, False), (Workflow.sid, False)],
                           represent=lambda row: rep.workflow(row, g.account_sid), filters={"FriendlyName": name}))


@bp.post("/Workspaces/<workspace_sid>/Workflows")
def create_workflow(workspace_sid):
    _workspace_exists(workspace_sid)
    if not has_param("Configuration"):
        raise InvalidParameter("Missing required parameter Configuration in the post body")
    workflow = engine.create_workflow(
        get_router(), workspace_sid, friendly_name=param("FriendlyName"), configuration=param("Configuration"),
        assignment_callback_url=param("AssignmentCallbackUrl"),
        fallback_assignment_callback_url=param("FallbackAssignmentCallbackUrl"),
        task_reservation_timeout=param("TaskReservationTimeout"),
    )
    return created(_workflow_json(workspace_sid, workflow.sid))


@bp.get("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>")
def fetch_workflow(workspace_sid, workflow_sid):
    return ok(_workflow_json(workspace_sid, workflow_sid))


@bp.post("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>")
def update_workflow(workspace_sid, workflow_sid):
    _workflow_json(workspace_sid, workflow_sid)
    # A callback URL that was sent empty is cleared; one that was not sent is kept.
    urls = {key: param(name) for key, name in (("assignment_callback_url", "AssignmentCallbackUrl"),
                                               ("fallback_assignment_callback_url", "FallbackAssignmentCallbackUrl"))
            if has_param(name)}
    engine.update_workflow(
        get_router(), workspace_sid, workflow_sid, friendly_name=param("FriendlyName"),
        configuration=param("Configuration"), task_reservation_timeout=param("TaskReservationTimeout"),
        re_evaluate_tasks=bool(bool_param("ReEvaluateTasks")), **urls,
    )
    return ok(_workflow_json(workspace_sid, workflow_sid))


@bp.delete("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>")
def delete_workflow(workspace_sid, workflow_sid):
    _workflow_json(workspace_sid, workflow_sid)
    engine.delete_workflow(get_router(), workspace_sid, workflow_sid)
    return deleted()
