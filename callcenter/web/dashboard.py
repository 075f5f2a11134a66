"""The supervisor dashboard: queues, agents, missed calls and the day's chart; and the forms that change
an agent's activity, an agent's attributes, a queue's `target_workers` and the workflow's configuration.

Forms check what they can before saving (JSON, expressions, the workflow's queues) and show the
engine's own message when it refuses; nothing is half-saved.
"""

from __future__ import annotations

import json

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from callcenter.contact_center import ContactCenter, current
from callcenter.database import get_router
from callcenter.routing import queues, validation, workers, workflows
from callcenter.routing.errors import InvalidParameter, RoutingError
from callcenter.routing.expressions import ExpressionError, compile_expression
from callcenter.routing.models import Activity, TaskQueue, TaskQueueMember, Worker, Workflow

from . import bp, error_body
from .auth import end_sessions, login_required, plural, wants_json
from .models import WebUser
from .snapshots import dashboard_snapshot


def _center() -> ContactCenter:
    return current(current_app)


def _snapshot() -> dict:
    return dashboard_snapshot(get_router(), _center(), int(current_app.config.get("SERVICE_LEVEL_SECONDS", 20)))


@bp.get("/dashboard")
@login_required("supervisor")
def dashboard():
    return render_template("dashboard.html", state=_snapshot())


@bp.get("/dashboard/state.json")
@login_required("supervisor")
def dashboard_state():
    return jsonify(_snapshot())


@bp.get("/dashboard/calls/<call_sid>/voicemail")
@login_required("supervisor")
def voicemail(call_sid: str):
    """A missed call's voicemail, fetched from Twilio with the account's credentials (Twilio can require them for
    recordings): a supervisor listens without a Twilio login. Only this account's recordings are fetched."""
    from callcenter.telephony import TelephonyError, get_telephony
    from callcenter.voice.models import Call

    with get_router().read() as session:
        call = session.get(Call, call_sid)
    if call is None or call.workspace_sid != _center().workspace_sid or not call.recording_url:
        abort(404)
    try:
        media = get_telephony().fetch_recording(call.recording_url)
    except TelephonyError as err:
        current_app.logger.warning("voicemail of %s not fetched: %s", call_sid, err)
        return render_template("error.html", status=502, message=f"The voicemail could not be fetched: {err}"), 502
    return current_app.response_class(media.body, mimetype=media.content_type, headers={
        "Cache-Control": "private, max-age=300", "Content-Disposition": f'inline; filename="voicemail-{call_sid}.wav"'})


@bp.post("/dashboard/agents/<worker_sid>/activity")
@login_required("supervisor")
def set_agent_activity(worker_sid: str):
    center = _center()
    activity_sid = request.form.get("activity_sid", "")
    with get_router().read() as session:
        activity = session.get(Activity, activity_sid)
    if activity is None or activity.workspace_sid != center.workspace_sid:
        raise InvalidParameter(f"{activity_sid or 'An empty activity'} is not an activity of this contact center")
    worker = workers.update_worker(get_router(), center.workspace_sid, worker_sid, activity_sid=activity.sid,
                                   reject_pending_reservations=not activity.available)
    message = f"{worker.friendly_name} is now {activity.friendly_name}."
    if wants_json():
        return jsonify(_snapshot() | {"message": message})
    flash(message)
    return redirect(url_for("web.dashboard"))


@bp.post("/dashboard/agents/<worker_sid>/sign-out")
@login_required("supervisor")
def sign_out_agent(worker_sid: str):
    """End every session of the agent's sign-in (a lost phone, a console left open on a shared desk)."""
    worker = _row(Worker, worker_sid)
    with get_router().read() as session:
        user_id = session.scalar(select(WebUser.id).where(WebUser.worker_sid == worker.sid))
    if user_id is None:
        message = f"{worker.friendly_name} has no sign-in."
        if wants_json():
            return jsonify(error_body(404, message)), 404
        flash(message)
        return redirect(url_for("web.dashboard"))
    ended = end_sessions(get_router(), user_id=user_id)
    message = f"{worker.friendly_name} is signed out everywhere ({plural(ended, 'session')} ended)."
    if wants_json():
        return jsonify(_snapshot() | {"message": message})
    flash(message)
    return redirect(url_for("web.dashboard"))


# -- editing ----------------------------------------------------------------------------------------

def _row(model: type, sid: str):
    center = _center()
    with get_router().read() as session:
        row = session.get(model, sid)
    if row is None or row.workspace_sid != center.workspace_sid:
        abort(404)
    return row


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except (ValueError, RecursionError):
        return text


@bp.route("/dashboard/agents/<worker_sid>/edit", methods=["GET", "POST"])
@login_required("supervisor")
def edit_agent(worker_sid: str):
    worker = _row(Worker, worker_sid)
    text, error, joins = _pretty(worker.attributes), None, None
    if request.method == "POST":
        text = request.form.get("attributes", "")
        try:
            try:
                attributes = json.loads(text, parse_constant=validation.not_json)
            except RecursionError:
                raise InvalidParameter("Attributes nest too deeply") from None
            if not isinstance(attributes, dict):
                raise InvalidParameter("Attributes must be a JSON object, like {\"products\": [\"sales\"]}")
            joins = _queues_matching(attributes)
            workers.update_worker(get_router(), worker.workspace_sid, worker.sid, attributes=json.dumps(attributes))
        except ValueError as err:
            error = f"Attributes are not valid JSON: {err}"
        except RoutingError as err:
            error = err.message
        else:
            flash(f"Saved {worker.friendly_name}: in {', '.join(joins) or 'no queue'}.")
            return redirect(url_for("web.dashboard"))
    return render_template("edit.html", kind="agent", title=f"Agent {worker.friendly_name}", field="attributes",
                           label="Attributes (JSON)", value=text, error=error, rows=12,
                           help="contact_uri is the phone or client the agent is rung at; queues pick agents by "
                                "these attributes (their target_workers).",
                           preview=_queues_matching_text(text))


def _queues_matching(attributes: dict) -> list[str]:
    """The queues whose target_workers these attributes satisfy (what saving them would change)."""
    with get_router().read() as session:
        rows = session.scalars(select(TaskQueue).where(TaskQueue.workspace_sid == _center().workspace_sid)
                               .order_by(TaskQueue.friendly_name)).all()
    names = []
    for queue in rows:
        try:
            if compile_expression(queue.target_workers or "1 == 1")(attributes):
                names.append(queue.friendly_name)
        except (ExpressionError, AttributeError, TypeError):
            continue
    return names


def _queues_matching_text(text: str) -> str | None:
    try:
        attributes = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(attributes, dict):
        return None
    return "In queues: " + (", ".join(_queues_matching(attributes)) or "none")


@bp.route("/dashboard/queues/<queue_sid>/edit", methods=["GET", "POST"])
@login_required("supervisor")
def edit_queue(queue_sid: str):
    queue = _row(TaskQueue, queue_sid)
    text, error = queue.target_workers or "", None
    if request.method == "POST":
        text = request.form.get("target_workers", "").strip()
        try:
            compile_expression(text, "TargetWorkers")  # refused with its column, before anything is written
            queues.update_task_queue(get_router(), queue.workspace_sid, queue.sid, target_workers=text)
        except RoutingError as err:
            error = err.message
        else:
            members = _members_of(queue.sid)
            # A typo in an attribute's name or value matches nobody, and is no error: its callers would wait for
            # no one until voicemail. Said at once.
            flash(f"Saved queue {queue.friendly_name}: " + (
                f"{members} agent{'s' if members != 1 else ''} match it." if members else
                "no agent matches it, so its callers will wait for nobody. Check the expression against the "
                "agents' attributes."))
            return redirect(url_for("web.dashboard"))
    return render_template("edit.html", kind="queue", title=f"Queue {queue.friendly_name}", field="target_workers",
                           label="Target workers (expression)", value=text, error=error, rows=3,
                           help="Which agents serve this queue, e.g. products HAS 'support'.", preview=None)


def _members_of(queue_sid: str) -> int:
    with get_router().read() as session:
        return session.scalar(select(func.count()).select_from(TaskQueueMember)
                              .where(TaskQueueMember.task_queue_sid == queue_sid))


@bp.route("/dashboard/workflow/edit", methods=["GET", "POST"])
@login_required("supervisor")
def edit_workflow():
    workflow = _row(Workflow, _center().workflow_sid)
    text, error = _pretty(workflow.configuration), None
    if request.method == "POST":
        text = request.form.get("configuration", "")
        try:
            workflows.parse_configuration(text)  # JSON, filters and expressions, before anything is written
            workflows.update_workflow(get_router(), workflow.workspace_sid, workflow.sid, configuration=text,
                                      re_evaluate_tasks=request.form.get("re_evaluate") == "on")
        except RoutingError as err:
            error = err.message
        else:
            flash(f"Saved workflow {workflow.friendly_name}.")
            return redirect(url_for("web.dashboard"))
    return render_template("edit.html", kind="workflow", title=f"Workflow {workflow.friendly_name}",
                           field="configuration", label="Configuration (JSON)", value=text, error=error, rows=20,
                           help="task_routing.filters: expression and targets (queue sids) per filter. Loading "
                                "contact-center.toml again puts the file's version back.",
                           preview=None, re_evaluate=True)
