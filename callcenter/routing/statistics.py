"""TaskRouter's statistics: real-time numbers from the current state, cumulative ones from the events.

Real-time numbers are grouped counts over `tasks` and `workers` (by status, priority, activity).
Cumulative numbers aggregate the `events` rows of a window in SQL, through their indexed copies
(`event_type`, `event_date`, the resource sids, `wait_ms`): no event is loaded into Python.

Every function returns a plain dict with TaskRouter's snake_case field names, without `url`,
`links` and `account_sid`, which the API layer adds. Durations are whole seconds, truncated.
A `task_channel` (sid or unique name) narrows tasks and their events to that channel, and
workers to those whose channel is on (available, capacity above 0); time spent in activities
is not per channel and is never narrowed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import BigInteger, ColumnElement, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from . import validation
from .errors import InvalidParameter, NotFound
from .events import epoch_ms
from .models import (
    TASK_STATUSES,
    Activity,
    Event,
    Task,
    TaskChannel,
    TaskQueue,
    TaskQueueMember,
    Worker,
    WorkerChannel,
    Workflow,
    Workspace,
)
from .router import Router

DEFAULT_MINUTES = 15
MAX_MINUTES = 30 * 24 * 60  # cumulative statistics cover at most the past 30 days
MAX_EVENT_MINUTES = 2_147_483_647  # the Events list has no such limit: Minutes is any 32-bit count
MAX_BULK_QUEUES = 50
MAX_WAIT_THRESHOLDS = 10
WAITING = ("pending", "reserved")
RESERVATION_EVENTS = {
    "reservations_created": "reservation.created",
    "reservations_accepted": "reservation.accepted",
    "reservations_rejected": "reservation.rejected",
    "reservations_timed_out": "reservation.timeout",
    "reservations_canceled": "reservation.canceled",
    "reservations_rescinded": "reservation.rescinded",
}
TASK_EVENTS = {
    "tasks_canceled": ("task.canceled",),
    "tasks_completed": ("task.completed",),
    "tasks_deleted": ("task.deleted", "task.system-deleted"),
    "tasks_moved": ("task-queue.moved",),
}
# Every event type a cumulative statistic counts: the counting query reads only these.
COUNTED_EVENTS = (*RESERVATION_EVENTS.values(), *(t for types in TASK_EVENTS.values() for t in types),
                  "task.created", "task-queue.entered", "workflow.entered", "workflow.timeout")
_QUEUE_SID = re.compile(r"WQ[0-9a-fA-F]{32}")


# -- the window -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """The interval a cumulative statistic covers; both ends are inclusive."""

    start: datetime
    end: datetime


def window_of(now: datetime, *, minutes: int | str | None = None, start_date: datetime | str | None = None,
              end_date: datetime | str | None = None) -> Window:
    """`Minutes` back from now (default 15), or `StartDate`/`EndDate`; never more than 30 days back."""
    return _window(now, minutes, start_date, end_date, reach=MAX_MINUTES)


def events_window(now: datetime, *, minutes: int | str | None = None, start_date: datetime | str | None = None,
                  end_date: datetime | str | None = None) -> Window:
    """The Events list's window: as `window_of`, but as far back as events are kept (`EVENT_RETENTION_DAYS`,
    a live task's for ever); Twilio only redacts the task attributes of events past 30 days."""
    return _window(now, minutes, start_date, end_date, reach=None)


def _window(now: datetime, minutes: int | str | None, start_date: datetime | str | None,
            end_date: datetime | str | None, *, reach: int | None) -> Window:
    if minutes is not None and (start_date is not None or end_date is not None):
        raise InvalidParameter("Minutes cannot be combined with StartDate or EndDate")
    if start_date is None and end_date is None:
        span = DEFAULT_MINUTES if minutes is None else validation.integer(
            minutes, "Minutes", minimum=1, maximum=MAX_EVENT_MINUTES if reach is None else reach)
        return Window(_minutes_before(now, span), now)
    end = _naive_utc(end_date, "EndDate") if end_date is not None else now
    if reach is not None and end < now - timedelta(minutes=reach):
        raise InvalidParameter("Statistics cover at most the past 30 days: EndDate is too early")
    start = _naive_utc(start_date, "StartDate") if start_date is not None else _minutes_before(end, DEFAULT_MINUTES)
    if start > now:  # first: without EndDate, "after EndDate" would name a parameter the caller never sent
        raise InvalidParameter("StartDate must not be in the future")
    if start > end:
        raise InvalidParameter("StartDate must not be after EndDate")
    if reach is not None and start < now - timedelta(minutes=reach):
        raise InvalidParameter("Statistics cover at most the past 30 days: StartDate is too early")
    return Window(start, end)


def _minutes_before(moment: datetime, minutes: int) -> datetime:
    """`moment` less `minutes`, but no earlier than year 1: an Events window may reach back that far."""
    return moment - min(timedelta(minutes=minutes), moment - datetime.min)


def _naive_utc(value: datetime | str, field: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter(f"{field} must be an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidParameter(f"{field} must be a date-time")
    if value.tzinfo is not None:
        try:
            value = (value - value.utcoffset()).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable moment
            raise InvalidParameter(f"{field} is out of range") from None
    return value


def wait_thresholds(value: str | Iterable[int] | None) -> list[int] | None:
    """`SplitByWaitTime`: comma-separated thresholds in seconds (`"5,30"`), or a list of them."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    thresholds = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue
        thresholds.append(validation.integer(part, "SplitByWaitTime", minimum=0, maximum=MAX_MINUTES * 60))
    if not thresholds or len(thresholds) > MAX_WAIT_THRESHOLDS:
        raise InvalidParameter(f"SplitByWaitTime takes 1 to {MAX_WAIT_THRESHOLDS} thresholds in seconds, "
                               "separated by commas")
    return sorted(set(thresholds))


# -- real-time statistics ---------------------------------------------------------------------------

def workspace_real_time(router: Router, ws: str, task_channel: str | None = None) -> dict[str, Any]:
    """Tasks by status and priority, the longest waiting task, and workers by activity, right now."""
    with router.read() as session:
        _workspace(session, ws)
        channel_sid = task_channel_sid(session, ws, task_channel)
        now = router.clock.now()
        tasks = [Task.workspace_sid == ws, *_task_channel_filter(channel_sid)]
        activity_statistics, _ = _activity_statistics(session, ws, _workers_in_activities(ws, channel_sid))
        return {
            "workspace_sid": ws,
            **_task_statistics(session, tasks, now),
            "activity_statistics": activity_statistics,
            "total_workers": sum(entry["workers"] for entry in activity_statistics),
        }


def task_queue_real_time(router: Router, ws: str, queue_sid: str, task_channel: str | None = None) -> dict[str, Any]:
    """A queue's waiting tasks and its members (`total_eligible_workers`) by activity, right now."""
    with router.read() as session:
        _workspace(session, ws)
        _resource(session, TaskQueue, ws, queue_sid, "TaskQueue")
        channel_sid = task_channel_sid(session, ws, task_channel)
        now = router.clock.now()
        tasks = [Task.task_queue_sid == queue_sid, Task.workspace_sid == ws, *_task_channel_filter(channel_sid)]
        # "Relative" ages count from when the task entered this queue, not from its creation.
        age, sid = _longest_waiting(session, tasks, Task.task_queue_entered_date, now)
        return {"workspace_sid": ws, **_queue_real_time(session, ws, queue_sid, channel_sid, now),
                "longest_relative_task_age_in_queue": age, "longest_relative_task_sid_in_queue": sid}


def task_queues_real_time_bulk(router: Router, ws: str, queue_sids: Iterable[str]) -> dict[str, Any]:
    """Real-time statistics of 1 to 50 queues; a well-formed sid of no queue here gets zeroed numbers."""
    if isinstance(queue_sids, str) or not isinstance(queue_sids, Iterable):
        raise InvalidParameter("QueueSids must be a list of TaskQueue sids")
    queue_sids = list(queue_sids)
    for sid in queue_sids:
        if not isinstance(sid, str) or not _QUEUE_SID.fullmatch(sid):
            raise InvalidParameter(f"QueueSids: {sid!r} is not a TaskQueue sid")
    wanted = list(dict.fromkeys(queue_sids))
    if not 1 <= len(wanted) <= MAX_BULK_QUEUES:
        raise InvalidParameter(f"QueueSids must name 1 to {MAX_BULK_QUEUES} TaskQueues")
    with router.read() as session:
        _workspace(session, ws)
        now = router.clock.now()
        data = [_queue_real_time(session, ws, sid, None, now) for sid in wanted]
        return {"workspace_sid": ws, "task_queue_data": data, "task_queue_response_count": len(data)}


def workflow_real_time(router: Router, ws: str, workflow_sid: str, task_channel: str | None = None) -> dict[str, Any]:
    """The tasks a workflow controls, by status and priority, and its longest waiting one."""
    with router.read() as session:
        _workspace(session, ws)
        _resource(session, Workflow, ws, workflow_sid, "Workflow")
        channel_sid = task_channel_sid(session, ws, task_channel)
        tasks = [Task.workflow_sid == workflow_sid, *_task_channel_filter(channel_sid)]
        return {"workspace_sid": ws, "workflow_sid": workflow_sid,
                **_task_statistics(session, tasks, router.clock.now())}


def workers_real_time(router: Router, ws: str, task_channel: str | None = None, *,
                      worker_sids: Collection[str] | None = None) -> dict[str, Any]:
    """Workers by activity; with a task channel, only workers whose channel is on with capacity.

    `worker_sids` narrows the count to those workers (the API's TaskQueue and name filters).
    """
    with router.read() as session:
        _workspace(session, ws)
        channel_sid = task_channel_sid(session, ws, task_channel)
        workers = _workers_in_activities(ws, channel_sid).where(*_only_workers(Worker.sid, worker_sids))
        activity_statistics, _ = _activity_statistics(session, ws, workers)
        return {"workspace_sid": ws, "activity_statistics": activity_statistics,
                "total_workers": sum(entry["workers"] for entry in activity_statistics)}


def _queue_real_time(session: Session, ws: str, queue_sid: str, channel_sid: str | None,
                     now: datetime) -> dict[str, Any]:
    """The fields of one queue in the bulk statistics; a sid of no queue of `ws` gets zeroes."""
    tasks = [Task.task_queue_sid == queue_sid, Task.workspace_sid == ws, *_task_channel_filter(channel_sid)]
    members = _workers_in_activities(ws, channel_sid).join(
        TaskQueueMember, and_(TaskQueueMember.worker_sid == Worker.sid, TaskQueueMember.task_queue_sid == queue_sid)
    )
    activity_statistics, available = _activity_statistics(session, ws, members)
    return {
        "task_queue_sid": queue_sid,
        **_task_statistics(session, tasks, now),
        "activity_statistics": activity_statistics,
        "total_eligible_workers": sum(entry["workers"] for entry in activity_statistics),
        "total_available_workers": available,
    }


def _task_statistics(session: Session, conditions: list, now: datetime) -> dict[str, Any]:
    """Counts by status (int) and by priority (string, as TaskRouter shows them), and the longest waiting task."""
    rows = session.execute(
        select(Task.assignment_status, Task.priority, func.count()).where(*conditions)
        .group_by(Task.assignment_status, Task.priority)
    ).all()
    by_status = dict.fromkeys(TASK_STATUSES, 0)
    by_priority: dict[int, int] = {}
    for status, priority, count in rows:
        by_status[status] += count
        by_priority[priority] = by_priority.get(priority, 0) + count
    age, sid = _longest_waiting(session, conditions, Task.date_created, now)
    return {
        "longest_task_waiting_age": age,
        "longest_task_waiting_sid": sid,
        "tasks_by_priority": {str(priority): str(count) for priority, count in sorted(by_priority.items())},
        "tasks_by_status": by_status,
        "total_tasks": sum(by_status.values()),
    }


def _longest_waiting(session: Session, conditions: list, since, now: datetime) -> tuple[int, str | None]:
    """Age in seconds and sid of the pending or reserved task with the oldest `since` (0, None if none)."""
    row = session.execute(
        select(Task.sid, since).where(*conditions, Task.assignment_status.in_(WAITING), since.is_not(None))
        .order_by(since, Task.sid).limit(1)
    ).first()
    if row is None:
        return 0, None
    return max(0, int((now - row[1]).total_seconds())), row[0]


def _workers_in_activities(ws: str, channel_sid: str | None):
    """`SELECT activity_sid, count(*)` over the workspace's workers, to be narrowed and grouped."""
    query = select(Worker.activity_sid, func.count()).where(Worker.workspace_sid == ws)
    if channel_sid is not None:
        query = query.join(WorkerChannel, and_(WorkerChannel.worker_sid == Worker.sid,
                                               WorkerChannel.task_channel_sid == channel_sid,
                                               WorkerChannel.available.is_(True), WorkerChannel.capacity > 0))
    return query


def _activity_statistics(session: Session, ws: str, counts_query) -> tuple[list[dict[str, Any]], int]:
    """Workers in each activity of the workspace (zero included), and how many are in available ones."""
    counts = dict(session.execute(counts_query.group_by(Worker.activity_sid)).all())
    activities = _activities(session, ws)
    entries = [{"sid": sid, "friendly_name": name, "workers": counts.get(sid, 0)} for sid, name, _ in activities]
    return entries, sum(counts.get(sid, 0) for sid, _, available in activities if available)


def _activities(session: Session, ws: str) -> list[tuple[str, str, bool]]:
    return list(session.execute(
        select(Activity.sid, Activity.friendly_name, Activity.available).where(Activity.workspace_sid == ws)
        .order_by(Activity.date_created, Activity.friendly_name)
    ).all())


# -- cumulative statistics --------------------------------------------------------------------------

def workspace_cumulative(router: Router, ws: str, *, minutes: int | str | None = None,
                         start_date: datetime | str | None = None, end_date: datetime | str | None = None,
                         task_channel: str | None = None, split_by_wait_time: str | Iterable[int] | None = None,
                         ) -> dict[str, Any]:
    """What happened in the workspace during the window: tasks, reservations and waits."""
    window = window_of(router.clock.now(), minutes=minutes, start_date=start_date, end_date=end_date)
    thresholds = wait_thresholds(split_by_wait_time)
    with router.read() as session:
        _workspace(session, ws)
        scope = [Event.workspace_sid == ws, *_event_channel_filter(task_channel_sid(session, ws, task_channel))]
        counts = _event_counts(session, scope, window)
        return {
            "workspace_sid": ws,
            **_window_fields(window),
            **_reservation_counts(counts),
            "tasks_created": counts["task.created"],
            **_task_counts(counts),
            "tasks_timed_out_in_workflow": counts["workflow.timeout"],
            **_wait_fields(session, scope, window, thresholds),
        }


def task_queue_cumulative(router: Router, ws: str, queue_sid: str, *, minutes: int | str | None = None,
                          start_date: datetime | str | None = None, end_date: datetime | str | None = None,
                          task_channel: str | None = None, split_by_wait_time: str | Iterable[int] | None = None,
                          ) -> dict[str, Any]:
    """What happened in one queue during the window; `tasks_moved` counts tasks that left it for another."""
    window = window_of(router.clock.now(), minutes=minutes, start_date=start_date, end_date=end_date)
    thresholds = wait_thresholds(split_by_wait_time)
    with router.read() as session:
        _workspace(session, ws)
        _resource(session, TaskQueue, ws, queue_sid, "TaskQueue")
        channel = _event_channel_filter(task_channel_sid(session, ws, task_channel))
        scope = [Event.task_queue_sid == queue_sid, *channel]
        counts = _event_counts(session, scope, window)
        # task-queue.moved names the queue the task went to; the one it left is `previous_task_queue_sid`.
        counts["task-queue.moved"] = _event_counts(
            session, [Event.workspace_sid == ws, Event.previous_task_queue_sid == queue_sid, *channel], window,
            ("task-queue.moved",),
        )["task-queue.moved"]
        return {
            "workspace_sid": ws,
            "task_queue_sid": queue_sid,
            **_window_fields(window),
            **_reservation_counts(counts),
            "tasks_entered": counts["task-queue.entered"],
            **_task_counts(counts),
            **_wait_fields(session, scope, window, thresholds),
            "wait_duration_in_queue_until_accepted": _durations(session, scope, window, "reservation.accepted",
                                                                Event.queue_wait_ms),
        }


def workflow_cumulative(router: Router, ws: str, workflow_sid: str, *, minutes: int | str | None = None,
                        start_date: datetime | str | None = None, end_date: datetime | str | None = None,
                        task_channel: str | None = None, split_by_wait_time: str | Iterable[int] | None = None,
                        ) -> dict[str, Any]:
    """What happened to the tasks of one workflow during the window."""
    window = window_of(router.clock.now(), minutes=minutes, start_date=start_date, end_date=end_date)
    thresholds = wait_thresholds(split_by_wait_time)
    with router.read() as session:
        _workspace(session, ws)
        _resource(session, Workflow, ws, workflow_sid, "Workflow")
        scope = [Event.workflow_sid == workflow_sid,
                 *_event_channel_filter(task_channel_sid(session, ws, task_channel))]
        counts = _event_counts(session, scope, window)
        return {
            "workspace_sid": ws,
            "workflow_sid": workflow_sid,
            **_window_fields(window),
            **_reservation_counts(counts),
            "tasks_entered": counts["workflow.entered"],
            **_task_counts(counts),
            "tasks_timed_out_in_workflow": counts["workflow.timeout"],
            **_wait_fields(session, scope, window, thresholds),
        }


def workers_cumulative(router: Router, ws: str, *, minutes: int | str | None = None,
                       start_date: datetime | str | None = None, end_date: datetime | str | None = None,
                       task_channel: str | None = None, worker_sids: Collection[str] | None = None) -> dict[str, Any]:
    """Reservations of every worker in the window, and the time workers spent in each activity.

    `task_channel` narrows the reservations; activities are not per channel, so durations are not.
    `worker_sids` narrows both to those workers.
    """
    now = router.clock.now()
    window = window_of(now, minutes=minutes, start_date=start_date, end_date=end_date)
    with router.read() as session:
        _workspace(session, ws)
        scope = [Event.workspace_sid == ws, *_event_channel_filter(task_channel_sid(session, ws, task_channel)),
                 *_only_workers(Event.worker_sid, worker_sids)]
        return {
            "workspace_sid": ws,
            **_window_fields(window),
            **_reservation_counts(_event_counts(session, scope, window, tuple(RESERVATION_EVENTS.values()))),
            "activity_durations": _activity_durations(session, ws, worker_sids, window, now),
        }


def worker_cumulative(router: Router, ws: str, worker_sid: str, *, minutes: int | str | None = None,
                      start_date: datetime | str | None = None, end_date: datetime | str | None = None,
                      task_channel: str | None = None) -> dict[str, Any]:
    """One worker's reservations in the window and the time they spent in each activity."""
    now = router.clock.now()
    window = window_of(now, minutes=minutes, start_date=start_date, end_date=end_date)
    with router.read() as session:
        _workspace(session, ws)
        _resource(session, Worker, ws, worker_sid, "Worker")
        scope = [Event.worker_sid == worker_sid,
                 *_event_channel_filter(task_channel_sid(session, ws, task_channel))]
        cumulative = {
            **_window_fields(window),
            **_reservation_counts(_event_counts(session, scope, window, tuple(RESERVATION_EVENTS.values()))),
            "activity_durations": _activity_durations(session, ws, worker_sid, window, now),
        }
        return {"workspace_sid": ws, "worker_sid": worker_sid, "cumulative": cumulative}


def _window_fields(window: Window) -> dict[str, datetime]:
    return {"start_time": window.start, "end_time": window.end}


def _in_window(column, window: Window) -> list:
    return [column >= window.start, column <= window.end]


def _event_counts(session: Session, scope: list, window: Window,
                  event_types: tuple[str, ...] = COUNTED_EVENTS) -> Counter[str]:
    """How many events of each type the window holds in `scope` (a Counter: absent types are 0)."""
    rows = session.execute(
        select(Event.event_type, func.count())
        .where(*scope, Event.event_type.in_(event_types), *_in_window(Event.event_date, window))
        .group_by(Event.event_type)
    ).all()
    return Counter(dict(rows))


def _reservation_counts(counts: Counter[str]) -> dict[str, int]:
    return {field: counts[event_type] for field, event_type in RESERVATION_EVENTS.items()}


def _task_counts(counts: Counter[str]) -> dict[str, int]:
    return {field: sum(counts[event_type] for event_type in types) for field, types in TASK_EVENTS.items()}


def _wait_fields(session: Session, scope: list, window: Window, thresholds: list[int] | None) -> dict[str, Any]:
    accepted = _durations(session, scope, window, "reservation.accepted", Event.wait_ms)
    return {
        "avg_task_acceptance_time": accepted["avg"],
        "wait_duration_until_accepted": accepted,
        "wait_duration_until_canceled": _durations(session, scope, window, "task.canceled", Event.wait_ms),
        "split_by_wait_time": _split_by_wait_time(session, scope, window, thresholds) if thresholds else None,
    }


def _durations(session: Session, scope: list, window: Window, event_type: str, column) -> dict[str, int]:
    """avg/min/max/total seconds of `column` (milliseconds) over the window's `event_type` events."""
    count, total, least, most = session.execute(
        select(func.count(column), func.sum(column), func.min(column), func.max(column))
        .where(*scope, Event.event_type == event_type, *_in_window(Event.event_date, window), column.is_not(None))
    ).one()
    return _seconds(count, total, least, most)


def _seconds(count: int, total_ms: Any, min_ms: Any, max_ms: Any) -> dict[str, int]:
    if not count:
        return {"avg": 0, "min": 0, "max": 0, "total": 0}
    total_ms = int(total_ms)
    return {"avg": total_ms // (count * 1000), "min": int(min_ms) // 1000, "max": int(max_ms) // 1000,
            "total": total_ms // 1000}


def _split_by_wait_time(session: Session, scope: list, window: Window, thresholds: list[int]) -> dict[str, Any]:
    """Per threshold, tasks canceled and reservations accepted after waiting above it, or at most it."""
    columns = []
    for seconds in thresholds:
        limit = seconds * 1000
        columns.append(func.sum(case((Event.wait_ms > limit, 1), else_=0)))
        columns.append(func.sum(case((Event.wait_ms <= limit, 1), else_=0)))
    rows = session.execute(
        select(Event.event_type, *columns)
        .where(*scope, Event.event_type.in_(("task.canceled", "reservation.accepted")),
               *_in_window(Event.event_date, window), Event.wait_ms.is_not(None))
        .group_by(Event.event_type)
    ).all()
    sums = {row[0]: [int(value or 0) for value in row[1:]] for row in rows}
    canceled = sums.get("task.canceled", [0] * len(columns))
    accepted = sums.get("reservation.accepted", [0] * len(columns))
    return {
        str(seconds): {
            side: {"tasks_canceled": canceled[2 * index + offset], "reservations_accepted": accepted[2 * index + offset]}
            for offset, side in enumerate(("above", "below"))
        }
        for index, seconds in enumerate(thresholds)
    }


# -- steering SQLite's planner -----------------------------------------------------------------------

class NotIndexed(ColumnElement):
    """`column` in a condition that SQLite must not serve from an index led by it (`+column`, SQLite's way).

    Without statistics SQLite prefers the index that matches the most terms: `workspace_sid = ? AND
    event_date BETWEEN ? AND ?` over `task_sid = ?`, which reads every event of the workspace in the window
    to find a task's dozen. Other databases keep statistics and get the plain column."""

    inherit_cache = True
    _traverse_internals: ClassVar = [("column", InternalTraversal.dp_clauseelement)]  # in the cache key

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(NotIndexed, "sqlite")
def _not_indexed_sqlite(element, compiler, **kw) -> str:
    return f"+{compiler.process(element.column, **kw)}"


@compiles(NotIndexed)
def _not_indexed_default(element, compiler, **kw) -> str:
    return compiler.process(element.column, **kw)


# -- time in each activity --------------------------------------------------------------------------

class _EpochMs(FunctionElement):
    """Milliseconds since 1970 of a naive UTC datetime column, so SQL can clip stints to the window."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_ms"


@compiles(_EpochMs, "sqlite")
def _epoch_ms_sqlite(element, compiler, **kw) -> str:
    return f"CAST(ROUND((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400000.0) AS INTEGER)"


@compiles(_EpochMs)
def _epoch_ms_default(element, compiler, **kw) -> str:
    return f"CAST(ROUND(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000) AS BIGINT)"


def _activity_durations(session: Session, ws: str, workers: str | Collection[str] | None, window: Window,
                        now: datetime) -> list[dict[str, Any]]:
    """Per activity, avg/min/max/total seconds of the stints workers spent in it, clipped to the window.

    A stint is one continuous stay of one worker in one activity. Those that ended in the window
    come from `worker.activity.update` events (`wait_ms` is the stay, `previous_activity_sid` the
    activity); the stay in progress at the window's end (the current one, when the window ends
    now) counts up to the window's end, or up to now for a window that ends later.
    """
    start, end = window.start, min(window.end, now)
    totals: dict[str, list[int]] = {}
    if end > start:
        for activity_sid, count, total, least, most in _stints(session, ws, workers, start, end):
            if activity_sid is None or not count:
                continue
            merged = totals.setdefault(activity_sid, [0, 0, int(least), int(most)])
            merged[0] += count
            merged[1] += int(total)
            merged[2] = min(merged[2], int(least))
            merged[3] = max(merged[3], int(most))
    result = []
    for sid, name, _ in _activities(session, ws):
        count, total, least, most = totals.get(sid, (0, 0, 0, 0))
        result.append({"sid": sid, "friendly_name": name, **_seconds(count, total, least, most)})
    return result


_STINT_ENDS = ("worker.activity.update", "worker.deleted")


def _stints(session: Session, ws: str, workers: str | Collection[str] | None, start: datetime,
            end: datetime) -> list[tuple]:
    """(activity sid, count, total ms, min ms, max ms) of the stints overlapping [start, end], in three groups."""
    start_ms, end_ms = epoch_ms(start), epoch_ms(end)

    def activity_updates(events) -> list:
        # A stint ends when the worker changes activity, or is deleted (its event's activity is the stint's).
        found = [events.event_type.in_(_STINT_ENDS), events.wait_ms.is_not(None)]
        if workers is None:
            return [events.workspace_sid == ws, *found]
        # Given workers (whose sids are the workspace's), nothing but the worker index can serve the
        # statement: with the workspace too, SQLite's planner was seen to read the whole workspace's
        # activity changes in the window off its type index instead.
        return [*found, *_only_workers(events.worker_sid, workers)]

    def aggregate(activity_column, overlap):
        return select(activity_column, func.count(), func.sum(overlap), func.min(overlap), func.max(overlap))

    ended_at = _EpochMs(Event.event_date)
    began = ended_at - Event.wait_ms
    stint_activity = func.coalesce(Event.previous_activity_sid, Event.activity_sid)
    # Stints that ended inside the window; one that began before it counts from the window's start.
    ended = aggregate(stint_activity, case((began < start_ms, ended_at - start_ms), else_=Event.wait_ms)) \
        .where(*activity_updates(Event), Event.event_date > start, Event.event_date <= end) \
        .group_by(stint_activity)
    # Stints in progress at the window's end that ended later: each worker's first change after it.
    later = aliased(Event)
    first_change = select(func.min(later.id)).where(*activity_updates(later), later.event_date > end) \
        .group_by(later.worker_sid)
    ended_later = aggregate(stint_activity, end_ms - case((began < start_ms, start_ms), else_=began)) \
        .where(Event.id.in_(first_change), began < end_ms).group_by(stint_activity)
    # Stints still going on, for workers who have not changed activity since the window's end.
    since = _EpochMs(Worker.date_status_changed)
    changed_later = select(later.worker_sid).where(*activity_updates(later), later.event_date > end)
    current = aggregate(Worker.activity_sid, end_ms - case((since < start_ms, start_ms), else_=since)) \
        .where(Worker.workspace_sid == ws, Worker.date_status_changed < end, Worker.sid.not_in(changed_later))
    current = current.where(*_only_workers(Worker.sid, workers)).group_by(Worker.activity_sid)
    return [row for query in (ended, ended_later, current) for row in session.execute(query).all()]


# -- lookups ----------------------------------------------------------------------------------------

def _workspace(session: Session, ws: str) -> Workspace:
    workspace = session.get(Workspace, ws)
    if workspace is None:
        raise NotFound(f"The requested resource /Workspaces/{ws} was not found")
    return workspace


def _resource(session: Session, model: type, ws: str, sid: str, name: str) -> Any:
    row = session.get(model, sid) if isinstance(sid, str) else None
    if row is None or row.workspace_sid != ws:
        raise NotFound(f"The requested resource {name} {sid} was not found")
    return row


def task_channel_sid(session: Session, ws: str, task_channel: str | None) -> str | None:
    """The sid of a TaskChannel given by sid or unique name (`voice`); None when not filtering."""
    if task_channel is None:
        return None
    if not isinstance(task_channel, str):
        raise InvalidParameter("TaskChannel must be a TaskChannel sid or unique name")
    column = TaskChannel.sid if task_channel.startswith("TC") else TaskChannel.unique_name
    sid = session.scalar(select(TaskChannel.sid).where(TaskChannel.workspace_sid == ws, column == task_channel))
    if sid is None:
        raise NotFound(f"TaskChannel {task_channel} not found in this workspace")
    return sid


def _only_workers(column, workers: str | Collection[str] | None) -> list:
    """`column` narrowed to one worker sid or to a collection of them; no condition for None (every worker)."""
    if workers is None:
        return []
    return [column == workers] if isinstance(workers, str) else [column.in_(list(workers))]


def _task_channel_filter(channel_sid: str | None) -> list:
    return [] if channel_sid is None else [Task.task_channel_sid == channel_sid]


def _event_channel_filter(channel_sid: str | None) -> list:
    return [] if channel_sid is None else [Event.task_channel_sid == channel_sid]
