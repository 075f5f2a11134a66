""""Why is this call still waiting?" and "why does this agent get nothing?", answered on the dashboard.

The pages render the engine's own explanation (`callcenter.routing.explain`), computed by the code
that routes, so what a supervisor reads here is what the engine does.
"""

from __future__ import annotations

from flask import abort, current_app, render_template

from callcenter.contact_center import current
from callcenter.database import get_router
from callcenter.routing.errors import NotFound
from callcenter.routing.explain import explain_task, explain_worker

from . import bp
from .auth import login_required

# What each reason means to a supervisor, in the order the engine checks them.
REASON_LABELS = {
    "offered": "Being offered this call now",
    "eligible_now": "Would be offered this call now",
    "not_in_queue": "Not in the queue's agents (target_workers)",
    "activity_unavailable": "In an unavailable activity",
    "channel_unavailable": "Channel turned off for them",
    "channel_at_capacity": "Busy: being rung or on a call (channel full)",
    "failed_target_expression": "Fails the routing step's expression",
    "rejected": "Already declined this call",
    "reservation_pending_elsewhere": "Busy with another task (one at a time)",
    "lower_in_order": "Another agent comes first (longest idle / order_by)",
}


@bp.get("/dashboard/tasks/<task_sid>/explanation")
@login_required("supervisor")
def task_explanation(task_sid: str):
    center = current(current_app)
    try:
        explanation = explain_task(get_router(), center.workspace_sid, task_sid)
    except NotFound:
        abort(404)
    return render_template("explanation.html", kind="task", explanation=explanation.as_dict(), labels=REASON_LABELS)


@bp.get("/dashboard/agents/<worker_sid>/explanation")
@login_required("supervisor")
def worker_explanation(worker_sid: str):
    center = current(current_app)
    try:
        explanation = explain_worker(get_router(), center.workspace_sid, worker_sid)
    except NotFound:
        abort(404)
    return render_template("explanation.html", kind="worker", explanation=explanation.as_dict(), labels=REASON_LABELS)
