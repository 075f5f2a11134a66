"""Statistics of the workspace, its TaskQueues, Workflows and Workers, in TaskRouter's wire shapes.

The engine (`callcenter.routing.statistics`) computes the numbers and checks the window
(`Minutes`, or `StartDate`/`EndDate`), `TaskChannel` and `SplitByWaitTime`; here they get
`account_sid`, the sids, `url` and Twilio's date format. A combined `.../Statistics` resource
nests its cumulative and real-time parts without the sids its top level already carries, as
TaskRouter shows them.

Werkzeug matches static path segments before variables, so `/TaskQueues/Statistics` and
`/Workers/Statistics` are never taken for a queue or worker sid, whatever the registration order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, request
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed

from callcenter.database import get_router
from callcenter.routing import statistics as engine
from callcenter.routing.errors import InvalidParameter, NotFound
from callcenter.routing.models import TaskQueue, TaskQueueMember, Worker

from . import bp
from .wire import iso, ok, paginate, param, param_list, url_for_path, workspace_of_account

_OWN_SIDS = ("workspace_sid", "task_queue_sid", "workflow_sid", "worker_sid")


# -- shaping ---------------------------------------------------------------------------------------

def _wire(value: Any) -> Any:
    """The engine's numbers with every datetime as `YYYY-MM-DDTHH:MM:SSZ`."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


def _nested(numbers: dict) -> dict:
    """A cumulative or real-time part inside a combined resource: its sids are on the top level."""
    return {key: value for key, value in _wire(numbers).items() if key not in _OWN_SIDS}


def _resource(numbers: dict, path: str) -> dict:
    return {"account_sid": g.account_sid, **_wire(numbers), "url": url_for_path(path)}


def _own_workspace(workspace_sid: str) -> None:
    """404 unless the workspace is the authenticated account's; the engine checks everything inside it."""
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)


def _window() -> dict[str, str | None]:
    return {"minutes": param("Minutes"), "start_date": param("StartDate"), "end_date": param("EndDate"),
            "task_channel": param("TaskChannel")}


def _cumulative_params() -> dict[str, str | None]:
    return {**_window(), "split_by_wait_time": param("SplitByWaitTime")}


# -- Workspace -------------------------------------------------------------------------------------

@bp.get("/Workspaces/<workspace_sid>/Statistics")
def workspace_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    router = get_router()
    cumulative = engine.workspace_cumulative(router, workspace_sid, **_cumulative_params())
    realtime = engine.workspace_real_time(router, workspace_sid, task_channel=param("TaskChannel"))
    return ok(_resource({"workspace_sid": workspace_sid, "cumulative": _nested(cumulative),
                         "realtime": _nested(realtime)}, f"/Workspaces/{workspace_sid}/Statistics"))


@bp.get("/Workspaces/<workspace_sid>/RealTimeStatistics")
def workspace_real_time_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workspace_real_time(get_router(), workspace_sid, task_channel=param("TaskChannel"))
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/RealTimeStatistics"))


@bp.get("/Workspaces/<workspace_sid>/CumulativeStatistics")
def workspace_cumulative_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workspace_cumulative(get_router(), workspace_sid, **_cumulative_params())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/CumulativeStatistics"))


# -- TaskQueues ------------------------------------------------------------------------------------

def _queue_statistics(workspace_sid: str, queue_sid: str) -> dict:
    router = get_router()
    cumulative = engine.task_queue_cumulative(router, workspace_sid, queue_sid, **_cumulative_params())
    realtime = engine.task_queue_real_time(router, workspace_sid, queue_sid, task_channel=param("TaskChannel"))
    return {"account_sid": g.account_sid, "workspace_sid": workspace_sid, "task_queue_sid": queue_sid,
            "cumulative": _nested(cumulative), "realtime": _nested(realtime)}


@bp.get("/Workspaces/<workspace_sid>/TaskQueues/Statistics")
def list_task_queues_statistics(workspace_sid):
    name = param("FriendlyName")
    # Checked once up front, so that a bad window is a 400 even for a workspace without queues.
    engine.window_of(get_router().clock.now(), minutes=param("Minutes"), start_date=param("StartDate"),
                     end_date=param("EndDate"))
    engine.wait_thresholds(param("SplitByWaitTime"))
    with get_router().read() as session:
        workspace_of_account(session, workspace_sid)
        engine.task_channel_sid(session, workspace_sid, param("TaskChannel"))  # an unknown one is a 404, once
        query = select(TaskQueue).where(TaskQueue.workspace_sid == workspace_sid)
        if name:
            query = query.where(TaskQueue.friendly_name == name)
        page = paginate(session, query, key="task_queues_statistics",
                        path=f"/Workspaces/{workspace_sid}/TaskQueues/Statistics",
                        order=[(TaskQueue.date_created, False), (TaskQueue.sid, False)], represent=lambda row: row.sid,
                        filters={key: param(key) for key in ("FriendlyName", "Minutes", "StartDate", "EndDate",
                                                                "TaskChannel", "SplitByWaitTime")})
    # Each queue's numbers come from the engine's own reads, after the page's session is closed; a queue deleted
    # meanwhile is left out of the page (it made the whole list a 404).
    statistics = []
    for sid in page["task_queues_statistics"]:
        try:
            statistics.append(_queue_statistics(workspace_sid, sid))
        except NotFound:
            if _queue_exists(sid):  # the workspace or the channel went: not this queue's absence alone
                raise
    page["task_queues_statistics"] = statistics
    return ok(page)


def _queue_exists(queue_sid: str) -> bool:
    with get_router().read() as session:
        return session.get(TaskQueue, queue_sid) is not None


@bp.post("/Workspaces/<workspace_sid>/TaskQueues/RealTimeStatistics")
def bulk_task_queues_real_time_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    numbers = engine.task_queues_real_time_bulk(get_router(), workspace_sid, _queue_sids())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/TaskQueues/RealTimeStatistics"))


def _queue_sids() -> Any:
    """`QueueSids` of the JSON body (TaskRouter's example spells it `queueSids`), or repeated form keys."""
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # `[[[[...]]]]` thousands deep: no body TaskRouter would take
            body = None
        if not isinstance(body, dict):
            raise InvalidParameter("The body must be a JSON object like {\"QueueSids\": [\"WQ...\"]}")
        for key in ("QueueSids", "queueSids"):
            if key in body:
                return body[key]
    elif "QueueSids" in request.form:
        return param_list("QueueSids")
    raise InvalidParameter("Missing required parameter QueueSids in the post body")


@bp.get("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>/Statistics")
def task_queue_statistics(workspace_sid, queue_sid):
    _own_workspace(workspace_sid)
    body = _queue_statistics(workspace_sid, queue_sid)
    return ok({**body, "url": url_for_path(f"/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}/Statistics")})


@bp.get("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>/RealTimeStatistics")
def task_queue_real_time_statistics(workspace_sid, queue_sid):
    _own_workspace(workspace_sid)
    numbers = engine.task_queue_real_time(get_router(), workspace_sid, queue_sid, task_channel=param("TaskChannel"))
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}/RealTimeStatistics"))


@bp.get("/Workspaces/<workspace_sid>/TaskQueues/<queue_sid>/CumulativeStatistics")
def task_queue_cumulative_statistics(workspace_sid, queue_sid):
    _own_workspace(workspace_sid)
    numbers = engine.task_queue_cumulative(get_router(), workspace_sid, queue_sid, **_cumulative_params())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/TaskQueues/{queue_sid}/CumulativeStatistics"))


# -- Workflows -------------------------------------------------------------------------------------

@bp.get("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>/Statistics")
def workflow_statistics(workspace_sid, workflow_sid):
    _own_workspace(workspace_sid)
    router = get_router()
    cumulative = engine.workflow_cumulative(router, workspace_sid, workflow_sid, **_cumulative_params())
    realtime = engine.workflow_real_time(router, workspace_sid, workflow_sid, task_channel=param("TaskChannel"))
    return ok(_resource({"workspace_sid": workspace_sid, "workflow_sid": workflow_sid,
                         "cumulative": _nested(cumulative), "realtime": _nested(realtime)},
                        f"/Workspaces/{workspace_sid}/Workflows/{workflow_sid}/Statistics"))


@bp.get("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>/RealTimeStatistics")
def workflow_real_time_statistics(workspace_sid, workflow_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workflow_real_time(get_router(), workspace_sid, workflow_sid, task_channel=param("TaskChannel"))
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/Workflows/{workflow_sid}/RealTimeStatistics"))


@bp.get("/Workspaces/<workspace_sid>/Workflows/<workflow_sid>/CumulativeStatistics")
def workflow_cumulative_statistics(workspace_sid, workflow_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workflow_cumulative(get_router(), workspace_sid, workflow_sid, **_cumulative_params())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/Workflows/{workflow_sid}/CumulativeStatistics"))


# -- Workers ---------------------------------------------------------------------------------------

def _selected_workers(workspace_sid: str) -> list[str] | None:
    """The workers `TaskQueueSid`, `TaskQueueName` and `FriendlyName` select; None when none is given (all)."""
    queue_sid, queue_name, name = param("TaskQueueSid"), param("TaskQueueName"), param("FriendlyName")
    if not (queue_sid or queue_name or name):
        return None
    with get_router().read() as session:
        query = select(Worker.sid).where(Worker.workspace_sid == workspace_sid)
        if name:
            # Worker names are unique case-insensitively, and the Workers list finds them that way too.
            query = query.where(Worker.name_key == name.casefold())
        if queue_sid:
            query = query.where(Worker.sid.in_(select(TaskQueueMember.worker_sid)
                                               .where(TaskQueueMember.task_queue_sid == queue_sid)))
        if queue_name:
            queues = select(TaskQueue.sid).where(TaskQueue.workspace_sid == workspace_sid,
                                                 TaskQueue.friendly_name == queue_name)
            query = query.where(Worker.sid.in_(select(TaskQueueMember.worker_sid)
                                               .where(TaskQueueMember.task_queue_sid.in_(queues))))
        return list(session.scalars(query))


@bp.get("/Workspaces/<workspace_sid>/Workers/Statistics")
def workers_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    router, workers = get_router(), _selected_workers(workspace_sid)
    cumulative = engine.workers_cumulative(router, workspace_sid, **_window(), worker_sids=workers)
    realtime = engine.workers_real_time(router, workspace_sid, task_channel=param("TaskChannel"), worker_sids=workers)
    return ok(_resource({"workspace_sid": workspace_sid, "cumulative": _nested(cumulative),
                         "realtime": _nested(realtime)}, f"/Workspaces/{workspace_sid}/Workers/Statistics"))


@bp.get("/Workspaces/<workspace_sid>/Workers/RealTimeStatistics")
def workers_real_time_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workers_real_time(get_router(), workspace_sid, task_channel=param("TaskChannel"))
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/Workers/RealTimeStatistics"))


@bp.get("/Workspaces/<workspace_sid>/Workers/CumulativeStatistics")
def workers_cumulative_statistics(workspace_sid):
    _own_workspace(workspace_sid)
    numbers = engine.workers_cumulative(get_router(), workspace_sid, **_window())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/Workers/CumulativeStatistics"))


@bp.get("/Workspaces/<workspace_sid>/Workers/<worker_sid>/Statistics")
def worker_statistics(workspace_sid, worker_sid):
    _own_workspace(workspace_sid)
    numbers = engine.worker_cumulative(get_router(), workspace_sid, worker_sid, **_window())
    return ok(_resource(numbers, f"/Workspaces/{workspace_sid}/Workers/{worker_sid}/Statistics"))


# The collections' statistics paths, with the methods each has. The others would be taken for a queue's or a
# worker's sid (`GET /TaskQueues/RealTimeStatistics` answered 404 "TaskQueue RealTimeStatistics not found"):
# they answer 405 with the methods that exist, as any other wrong method does.
_COLLECTION_PATHS = {
    "/Workspaces/<workspace_sid>/TaskQueues/Statistics": ("GET", "HEAD"),
    "/Workspaces/<workspace_sid>/TaskQueues/RealTimeStatistics": ("POST",),
    "/Workspaces/<workspace_sid>/Workers/Statistics": ("GET", "HEAD"),
    "/Workspaces/<workspace_sid>/Workers/RealTimeStatistics": ("GET", "HEAD"),
    "/Workspaces/<workspace_sid>/Workers/CumulativeStatistics": ("GET", "HEAD"),
}


def _not_allowed(allowed: tuple[str, ...]):
    def view(workspace_sid: str):
        raise MethodNotAllowed(valid_methods=list(allowed))

    return view


for _path, _allowed in _COLLECTION_PATHS.items():
    bp.add_url_rule(_path, endpoint=f"not_allowed_{_path.rsplit('/', 2)[-2]}_{_path.rsplit('/', 1)[-1]}",
                    view_func=_not_allowed(_allowed),
                    methods=[method for method in ("GET", "POST", "DELETE") if method not in _allowed])
