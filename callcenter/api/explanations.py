"""Explanations (`/Tasks/{WT}/Explanation`, `/Workers/{WK}/Explanation`) and `flask routing explain`.

Not a TaskRouter resource: this server's answer to "why is this task still waiting?" and "why does
this worker get nothing?", computed by the routing engine's own matching code
(`callcenter.routing.explain`). JSON with snake_case keys, like every other representation here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from flask import g

from callcenter.database import get_router, routing_cli
from callcenter.routing.errors import NotFound
from callcenter.routing.explain import TaskExplanation, WorkerExplanation, explain_task, explain_worker
from callcenter.routing.models import Task, Worker

from . import bp
from .openapi import EXTRA_PATHS
from .wire import iso, not_found, ok, url_for_path, workspace_of_account


@bp.get("/Workspaces/<workspace_sid>/Tasks/<task_sid>/Explanation")
def task_explanation(workspace_sid, task_sid):
    path = f"/Workspaces/{workspace_sid}/Tasks/{task_sid}"
    explanation = _explain(workspace_sid, path, lambda: explain_task(get_router(), workspace_sid, task_sid))
    body = _plain(explanation.as_dict())
    body.update(account_sid=g.account_sid, url=url_for_path(f"{path}/Explanation"),
                links={"task": url_for_path(path), "workspace": url_for_path(f"/Workspaces/{workspace_sid}")})
    for verdict in body["workers"]:
        verdict["links"] = {"worker": url_for_path(f"/Workspaces/{workspace_sid}/Workers/{verdict['worker_sid']}")}
    return ok(body)


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Explanation")
def worker_explanation(workspace_sid, worker_sid):
    path = f"/Workspaces/{workspace_sid}/Workers/{worker_sid}"
    explanation = _explain(workspace_sid, path, lambda: explain_worker(get_router(), workspace_sid, worker_sid))
    body = _plain(explanation.as_dict())
    body.update(account_sid=g.account_sid, url=url_for_path(f"{path}/Explanation"),
                links={"worker": url_for_path(path), "workspace": url_for_path(f"/Workspaces/{workspace_sid}")})
    for verdict in body["tasks"]:
        verdict["links"] = {"task": url_for_path(f"/Workspaces/{workspace_sid}/Tasks/{verdict['task_sid']}")}
    return ok(body)


def _explain(workspace_sid: str, path: str, explain):
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)  # another account's workspace is 404, never 403
    try:
        return explain()
    except NotFound:
        raise not_found(path) from None


def _plain(value: Any) -> Any:
    """Dates in Twilio's form; everything else is already JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return iso(value)
    return value


def _sid_parameter(name: str, prefix: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The SID of the {what}.",
            "schema": {"type": "string", "minLength": 34, "maxLength": 34, "pattern": f"^{prefix}[0-9a-fA-F]{{32}}$"}}


_VERDICT = {"type": "object", "required": ["reason", "detail", "eligible"], "properties": {
    "worker_sid": {"type": "string"}, "task_sid": {"type": "string"}, "reason": {"type": "string"},
    "detail": {"type": "string"}, "eligible": {"type": "boolean"}, "rank": {"type": ["integer", "null"]},
    "clauses": {"type": "array", "items": {"type": "object"}}}}


def _operation(operation_id: str, summary: str, sid: dict, required: list[str], items: str) -> dict:
    return {"get": {
        "operationId": operation_id, "summary": summary, "tags": ["Explanations"],
        "parameters": [_sid_parameter("WorkspaceSid", "WS", "Workspace"), sid],
        "responses": {"200": {"description": "The explanation", "content": {"application/json": {"schema": {
            "type": "object", "required": [*required, items, "summary", "url"],
            "properties": {items: {"type": "array", "items": _VERDICT}, "summary": {"type": "string"},
                           "url": {"type": "string", "format": "uri"}}}}}}},
    }}


EXTRA_PATHS["/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Explanation"] = _operation(
    "FetchTaskExplanation", "Why a task is waiting: filters, current target, and a reason per worker",
    _sid_parameter("TaskSid", "WT", "Task"), ["task_sid", "assignment_status", "filters", "target"], "workers")
EXTRA_PATHS["/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Explanation"] = _operation(
    "FetchWorkerExplanation", "Why a worker gets nothing: a reason per waiting task",
    _sid_parameter("WorkerSid", "WK", "Worker"), ["worker_sid", "activity_name", "available"], "tasks")


@routing_cli.command("explain")
@click.argument("sids", nargs=-1, required=True, metavar="WT...|WK...")
def explain_command(sids: tuple[str, ...]) -> None:
    """Explain why tasks (WT...) are waiting or why workers (WK...) get nothing."""
    router = get_router()
    failed = False
    for number, sid in enumerate(sids):
        model = {"WT": Task, "WK": Worker}.get(sid[:2])
        if model is None:
            raise click.BadParameter(f"{sid!r} is neither a task (WT...) nor a worker (WK...) sid", param_hint="SIDS")
        with router.read() as session:
            row = session.get(model, sid)
            workspace_sid = row.workspace_sid if row is not None else None
        if workspace_sid is None:
            click.echo(f"{sid}: not found", err=True)
            failed = True
            continue
        explain = explain_task if model is Task else explain_worker
        if number:
            click.echo()
        click.echo(format_explanation(explain(router, workspace_sid, sid)))
    if failed:
        raise SystemExit(1)


def format_explanation(explanation: TaskExplanation | WorkerExplanation) -> str:
    """A readable report (the CLI prints it)."""
    lines: list[str] = []
    if isinstance(explanation, TaskExplanation):
        lines.append(f"Task {explanation.task_sid}: {explanation.assignment_status}, age {explanation.age_seconds}s, "
                     f"priority {explanation.priority}")
        lines.append(f"  {explanation.summary}")
        for f in explanation.filters:
            mark = {"current": "=>", "not_evaluated": "  "}.get(f.outcome, " x")
            lines.append(f"{mark} filter {f.index + 1} {f.name!r}: {f.expression}  [{f.outcome}]")
            for clause in f.clauses:
                lines.append(f"      {'true ' if clause.result else 'false'}  {clause.text}  "
                             f"({clause.left!r} vs {clause.right!r})")
        if explanation.matched_filter == "default_filter":
            lines.append("=> default_filter")
        target = explanation.target
        if target is not None:
            left = f"{target.seconds_left:.0f}s left, then {target.then}" if target.seconds_left is not None \
                else target.then
            lines.append(f"  target {target.target_index + 1} of {target.filter_name!r}: TaskQueue "
                         f"{target.queue_name!r}" + (f", expression {target.expression!r}" if target.expression else "")
                         + (f", order_by {target.order_by}" if target.order_by else "") + f"; {left}")
        if explanation.ttl_seconds_left is not None:
            lines.append(f"  TTL: {explanation.ttl_seconds_left:.0f}s left")
        lines.append("  workers:")
        for verdict in explanation.workers:
            lines.append(f"    {verdict.worker_name} ({verdict.worker_sid}): {verdict.reason}: {verdict.detail}")
    else:
        lines.append(f"Worker {explanation.worker_name} ({explanation.worker_sid}): activity "
                     f"{explanation.activity_name!r}{'' if explanation.available else ' (unavailable)'}")
        lines.append(f"  {explanation.summary}")
        for held in explanation.reservations:
            lines.append(f"  holds {held['reservation_sid']} ({held['reservation_status']}) for {held['task_sid']}")
        lines.append("  waiting tasks:")
        for verdict in explanation.tasks:
            lines.append(f"    {verdict.task_sid}: {verdict.reason}: {verdict.detail}")
    return "\n".join(lines)
