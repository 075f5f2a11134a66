"""Explanations: why a task is still waiting, and why a worker gets nothing.

Each answer is computed by the code that routes. The column part of a worker's eligibility comes
from `matching.worker_conditions` (the same SQL conditions as the candidate query, evaluated per
worker instead of used as a filter), the target's own conditions from `matching.target_accepts`,
and the order in which eligible workers are offered the task from `matching.eligible_workers`. So
"eligible now" means exactly: the engine's next `reserve_for_task` would reserve this worker.

Every worker gets the FIRST reason, in `REASONS` order, that keeps them from this task.
`explain_task` and `explain_worker` return plain dataclasses (`.as_dict()` for JSON); they read
through one read-only session and change nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import BindParameter, and_, case, exists, func, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import replacement_traverse

from .errors import NotFound
from .events import task_age_seconds
from .expressions import Clause, resolve
from .matching import (
    _reads_channels,
    _serving_key,
    _serving_order,
    current_target,
    eligible_candidates,
    target_accepts,
    worker_conditions,
    worker_view,
)
from .models import (
    WAITING_PREDICATE,
    Event,
    Reservation,
    Task,
    TaskQueue,
    TaskQueueMember,
    Timer,
    Worker,
    WorkerChannel,
    Workspace,
)
from .queues import parsed_attributes, target_workers_expression
from .router import Router, Tx
from .targets import DEFAULT_FILTER, step_end_age
from .workflows import Target, configuration_of

# Why a worker is not being offered a task, in the order they are checked: a worker gets the first
# that applies. "offered" (they hold this task's pending reservation) is checked before all of them.
REASONS = (
    "not_in_queue",                   # the queue's target_workers does not select them
    "activity_unavailable",           # their activity is not an available one
    "channel_unavailable",            # their channel for the task's TaskChannel is switched off
    "channel_at_capacity",            # every slot of that channel is taken
    "failed_target_expression",       # the current target's expression (or known worker) excludes them
    "rejected",                       # they rejected this task in its current routing step
    "reservation_pending_elsewhere",  # multitasking is off and they hold another reservation
    "lower_in_order",                 # eligible, but others are offered the task first
)
OFFERED, ELIGIBLE_NOW = "offered", "eligible_now"
WAITING = ("pending", "reserved")
# Closest to getting the task first, in lists.
_LIST_ORDER = {reason: place for place, reason in enumerate((OFFERED, ELIGIBLE_NOW, *reversed(REASONS)))}


@dataclass
class FilterExplanation:
    """One workflow filter as evaluated against the task's attributes."""

    index: int
    name: str
    expression: str
    matched: bool | None  # None: not evaluated, an earlier filter holds the task
    outcome: str  # "no_match", "timed_out", "skipped", "current", "not_evaluated"
    clauses: list[Clause] = field(default_factory=list)


@dataclass
class TargetExplanation:
    """The routing step the task is in, and when it moves on."""

    filter_index: int
    filter_name: str
    target_index: int
    queue_sid: str
    queue_name: str
    expression: str | None
    order_by: str | None
    priority: int | None
    timeout: int | None
    moves_on_at: datetime | None
    seconds_left: float | None
    then: str
    # The step's skip_if: checked when the task entered it and nobody could be reserved at once.
    skip_if: str | None = None


@dataclass
class Verdict:
    """Why one worker is (not) being offered one task."""

    worker_sid: str
    worker_name: str
    task_sid: str
    reason: str  # one of REASONS, "offered" or "eligible_now"
    detail: str
    eligible: bool = False
    rank: int | None = None  # place in the engine's offer order, among eligible workers (1 = first)
    clauses: list[Clause] = field(default_factory=list)
    reservation_sid: str | None = None


@dataclass
class TaskExplanation:
    workspace_sid: str
    task_sid: str
    assignment_status: str
    summary: str
    age_seconds: int
    priority: int
    workflow_sid: str | None
    filters: list[FilterExplanation]
    matched_filter: str | None
    target: TargetExplanation | None
    task_queue_sid: str | None
    max_reserved_workers: int | None
    pending_reservations: int
    ttl_seconds_left: float | None
    workers: list[Verdict]
    explained_at: datetime
    # Waiting tasks of its queue and channel that the queue serves before it (None: not waiting in a queue).
    ahead_in_queue: int | None = None
    # When the workflow cancels it (workflow.timeout) if nobody takes it first, skip_if aside; None: it does not.
    workflow_timeout_seconds_left: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class WorkerExplanation:
    workspace_sid: str
    worker_sid: str
    worker_name: str
    activity_name: str
    available: bool
    summary: str
    reservations: list[dict]
    tasks: list[Verdict]
    explained_at: datetime

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- entry points ------------------------------------------------------------------------------------

def explain_task(router: Router, workspace_sid: str, task_sid: str) -> TaskExplanation:
    """Why `task_sid` is waiting: its workflow filters, its current target, and a verdict per worker."""
    with read_tx(router, workspace_sid) as tx:
        return explain_task_in(tx, tx.get(Task, task_sid, "Task"))


def explain_worker(router: Router, workspace_sid: str, worker_sid: str, *, limit: int = 200) -> WorkerExplanation:
    """Why `worker_sid` gets nothing: a verdict for each waiting task (at most `limit`, in queue order)."""
    with read_tx(router, workspace_sid) as tx:
        return explain_worker_in(tx, tx.get(Worker, worker_sid, "Worker"), limit=limit)


@contextmanager
def read_tx(router: Router, workspace_sid: str) -> Iterator[Tx]:
    """A `Tx` on a read-only session, so matching's own functions can be called; nothing is written."""
    with router.read() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One snapshot for all the explanation's queries (SQLite's read transaction already is one).
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        workspace = session.get(Workspace, workspace_sid)
        if workspace is None:
            raise NotFound(f"The requested resource /Workspaces/{workspace_sid} was not found")
        yield Tx(router, session, workspace, router.clock.now())


# -- a task --------------------------------------------------------------------------------------------

def explain_task_in(tx: Tx, task: Task) -> TaskExplanation:
    """`explain_task` inside a transaction the caller holds (tests compare it with `reserve_for_task`)."""
    filters, matched_filter = _explain_filters(tx, task)
    target = current_target(tx, task)
    queue = tx.config.queues.get(task.task_queue_sid) if task.task_queue_sid else None
    waiting = task.assignment_status in WAITING
    verdicts = task_verdicts(tx, task) if waiting and queue is not None else []
    ahead = ahead_in_queue(tx.session, task, queue) if waiting and queue is not None else None
    steps = _steps_ahead(tx, task) if waiting else []
    timeout_left = None
    if steps and steps[-1].queue_sid is None:
        timeout_left = max(0.0, (task.date_created + timedelta(seconds=steps[-1].age) - tx.now).total_seconds())
    return TaskExplanation(
        workspace_sid=task.workspace_sid,
        task_sid=task.sid,
        assignment_status=task.assignment_status,
        summary=_task_summary(task, queue, verdicts, ahead),
        age_seconds=task_age_seconds(task, tx.now),
        priority=task.priority,
        workflow_sid=task.workflow_sid,
        filters=filters,
        matched_filter=matched_filter,
        target=_explain_target(tx, task, target, queue, steps) if waiting and target is not None and queue else None,
        task_queue_sid=task.task_queue_sid,
        max_reserved_workers=queue.max_reserved_workers if queue else None,
        pending_reservations=task.pending_reservations,
        ttl_seconds_left=_seconds_left(tx, "task_ttl", task.sid) if waiting else None,
        workers=verdicts,
        explained_at=tx.now,
        ahead_in_queue=ahead,
        workflow_timeout_seconds_left=timeout_left,
    )


def ahead_in_queue(session: Session, task: Task, queue: TaskQueue) -> int:
    """How many waiting tasks of its queue and channel the queue serves before this one (matching's order)."""
    if queue.task_order == "FIFO":
        before = or_(Task.priority > task.priority,
                     and_(Task.priority == task.priority,
                          or_(Task.virtual_start_time < task.virtual_start_time,
                              and_(Task.virtual_start_time == task.virtual_start_time, Task.sid < task.sid))))
    else:
        before = or_(Task.virtual_start_time > task.virtual_start_time,
                     and_(Task.virtual_start_time == task.virtual_start_time, Task.sid > task.sid))
    return session.scalar(
        select(func.count()).select_from(Task).where(
            Task.task_queue_sid == queue.sid, Task.task_channel_sid == task.task_channel_sid,
            text(f"tasks.{WAITING_PREDICATE}"), before))


class Step(NamedTuple):
    """Where the workflow sends the task at `age` (seconds) if nobody takes it: a target, or canceled
    (`queue_sid` None)."""

    age: int
    filter_index: int | None
    target_index: int | None
    queue_sid: str | None


def _steps_ahead(tx: Tx, task: Task) -> list[Step]:
    """The steps the workflow will move the task through, from the one it is in, each time a step's timeout
    ends it, as `targets.place` does (skip_if aside): empty when its step has no timeout."""
    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    if workflow is None or task.filter_index is None or task.filter_index == DEFAULT_FILTER:
        return []
    config = configuration_of(workflow)
    if not 0 <= task.filter_index < len(config.filters):
        return []
    attributes = parsed_attributes(task.attributes)
    steps: list[Step] = []
    index, position = task.filter_index, task.target_index or 0
    ends = step_end_age(config.filters[index].targets, position)
    while ends is not None and len(steps) < 100:
        following = _next_step(config, attributes, index, position + 1, ends)
        if following is None:
            steps.append(Step(ends, None, None, None))
            break
        index, position = following
        steps.append(Step(ends, index, position, config.filters[index].targets[position].queue_sid))
        ends = step_end_age(config.filters[index].targets, position)
    return steps


def _next_step(config, attributes: dict, index: int, first: int, age: int) -> tuple[int, int] | None:
    """The first target at or after (index, first) whose step is still open at `age` (targets.place)."""
    while index < len(config.filters):
        routing_filter = config.filters[index]
        if first > 0 or routing_filter.expression(attributes):  # continuing in a filter keeps its match
            for position in range(first, len(routing_filter.targets)):
                ends = step_end_age(routing_filter.targets, position)
                if ends is None or age < ends:
                    return index, position
        index, first = index + 1, 0
    return None


def task_verdicts(tx: Tx, task: Task) -> list[Verdict]:
    """The first reason each worker of the workspace is not being offered `task`, closest to it first."""
    queue = tx.queue(task.task_queue_sid)
    single_tasking = not tx.workspace.multi_task_enabled
    member = exists().where(TaskQueueMember.worker_sid == Worker.sid, TaskQueueMember.task_queue_sid == queue.sid)
    query = (
        select(Worker, WorkerChannel, *_flag_columns(member, single_tasking))
        .outerjoin(WorkerChannel, and_(WorkerChannel.worker_sid == Worker.sid,
                                       WorkerChannel.task_channel_sid == task.task_channel_sid))
        .where(Worker.workspace_sid == tx.workspace.sid)
    )
    rows = tx.session.execute(query, {"task_sid": task.sid, "step_started": task.task_queue_entered_date}).all()
    offers = _pending_offers(tx, [task.sid])
    target = current_target(tx, task)
    verdicts = [_first_reason(tx, task, queue, target, row[0], row[1], row._mapping, offers, single_tasking)
                for row in rows]
    passing = [verdict for verdict in verdicts if not verdict.reason]
    if passing:
        _rank(tx, task, queue, target, passing, offers)
    verdicts.sort(key=lambda v: (_LIST_ORDER[v.reason], v.rank or 0, v.worker_name.casefold()))
    return verdicts


def worker_verdicts(tx: Tx, worker: Worker, tasks: list[Task]) -> list[Verdict]:
    """The first reason `worker` is not being offered each of `tasks` (waiting tasks in queues), in one query.

    The same conditions as `task_verdicts`, with the task's sid and step start taken from each row.
    """
    if not tasks:
        return []
    single_tasking = not tx.workspace.multi_task_enabled
    member = exists().where(TaskQueueMember.worker_sid == Worker.sid, TaskQueueMember.task_queue_sid == Task.task_queue_sid)
    per_task = {"task_sid": Task.sid, "step_started": Task.task_queue_entered_date}
    flags = [replacement_traverse(column, {}, lambda element: per_task.get(element.key)
                                  if isinstance(element, BindParameter) else None)
             for column in _flag_columns(member, single_tasking)]
    query = (
        select(Task.sid, WorkerChannel, *flags)
        .select_from(Task)
        .join(Worker, Worker.sid == worker.sid)
        .outerjoin(WorkerChannel, and_(WorkerChannel.worker_sid == Worker.sid,
                                       WorkerChannel.task_channel_sid == Task.task_channel_sid))
        .where(Task.sid.in_([task.sid for task in tasks]))
    )
    rows = {row[0]: row for row in tx.session.execute(query)}
    offers = _pending_offers(tx, [task.sid for task in tasks])
    verdicts = []
    for task in tasks:
        row = rows[task.sid]
        queue, target = tx.queue(task.task_queue_sid), current_target(tx, task)
        verdict = _first_reason(tx, task, queue, target, worker, row[1], row._mapping, offers, single_tasking)
        if not verdict.reason:
            _rank(tx, task, queue, target, [verdict], offers, until_sid=worker.sid)
        verdicts.append(verdict)
    return verdicts


def _flag_columns(member, single_tasking: bool) -> list:
    """Queue membership and `matching.worker_conditions`, each as a labelled true/false column."""
    return [case((member, True), else_=False).label("member"),
            *(case((condition, True), else_=False).label(name) for name, condition in worker_conditions(single_tasking))]


def _pending_offers(tx: Tx, task_sids: list[str]) -> dict[tuple[str, str], Reservation]:
    found = tx.session.scalars(select(Reservation).where(Reservation.task_sid.in_(task_sids),
                                                         Reservation.reservation_status == "pending"))
    return {(r.task_sid, r.worker_sid): r for r in found}


def _first_reason(tx: Tx, task: Task, queue: TaskQueue, target: Target | None, worker: Worker,
                  channel: WorkerChannel | None, flags, offers: dict[tuple[str, str], Reservation],
                  single_tasking: bool) -> Verdict:
    """The verdict for one pair, in `REASONS` order; `reason` stays "" when every check passes (ranked later)."""
    verdict = Verdict(worker.sid, worker.friendly_name, task.sid, "", "")
    offer = offers.get((task.sid, worker.sid))
    if offer is not None:
        verdict.reason, verdict.reservation_sid = OFFERED, offer.sid
        verdict.detail = f"holds this task's pending reservation {offer.sid}"
    elif not flags["member"]:
        _not_in_queue(verdict, queue, worker)
    elif not flags["activity_unavailable"]:
        verdict.reason = "activity_unavailable"
        verdict.detail = f"activity {tx.activity(worker.activity_sid).friendly_name!r} is not available"
    elif channel is None or not flags["channel_unavailable"]:
        verdict.reason = "channel_unavailable"
        verdict.detail = f"channel {tx.channel(task.task_channel_sid).unique_name!r} is unavailable for this worker"
    elif not flags["channel_at_capacity"]:
        verdict.reason = "channel_at_capacity"
        verdict.detail = (f"channel {tx.channel(task.task_channel_sid).unique_name!r} is at capacity "
                          f"({channel.reserved_tasks} of {channel.capacity} taken: "
                          f"{_held(tx, worker, task.task_channel_sid)})")
    elif not target_accepts(tx, target, task, worker):
        _failed_target(verdict, tx, target, task, worker)
    elif not flags["offer_blocked"]:
        verdict.reason = "rejected"
        if task.filter_index is None or (target is not None and target.timeout is not None):
            verdict.detail = ("rejected this task in its current routing step; it can be offered to them again "
                              "once the step ends (its timeout)")
        else:
            verdict.detail = ("rejected this task in its current routing step, which has no timeout: it is not "
                              "offered to them again unless the task's attributes change or the workflow is "
                              "updated with ReEvaluateTasks; otherwise it waits until its TTL")
    elif single_tasking and not flags["reservation_pending_elsewhere"]:
        verdict.reason = "reservation_pending_elsewhere"
        verdict.detail = f"multitasking is off and they hold another task ({_held(tx, worker)})"
    return verdict


def _held(tx: Tx, worker: Worker, channel_sid: str | None = None) -> str:
    """The worker's live reservations, as "1 pending offer, 1 accepted" (on one channel, when given). Read
    once per explanation for the whole workspace: a task's explanation asks it of every busy worker."""
    held = tx.__dict__.get("explain_held")
    if held is None:
        held = tx.__dict__["explain_held"] = {}
        for worker_sid, channel, status, count in tx.session.execute(
                select(Reservation.worker_sid, Reservation.task_channel_sid, Reservation.reservation_status,
                       func.count())
                .where(Reservation.workspace_sid == tx.workspace.sid,
                       Reservation.reservation_status.in_(("pending", "accepted", "wrapping")))
                .group_by(Reservation.worker_sid, Reservation.task_channel_sid, Reservation.reservation_status)):
            held.setdefault(worker_sid, []).append((channel, status, count))
    counts: dict[str, int] = {}
    for channel, status, count in held.get(worker.sid, ()):
        if channel_sid in (None, channel):
            counts[status] = counts.get(status, 0) + count
    words = {"pending": "pending offer", "accepted": "accepted", "wrapping": "wrapping up"}
    return ", ".join(f"{counts[status]} {word}" for status, word in words.items() if counts.get(status)) or "none"


def _rank(tx: Tx, task: Task, queue: TaskQueue, target: Target | None, passing: list[Verdict],
          offers: dict[tuple[str, str], Reservation], *, until_sid: str | None = None) -> None:
    """Order the workers who pass every check exactly as `reserve_for_task` would offer them the task.

    With `until_sid` (one worker's explanation, over many tasks), only the first `room` places are looked
    at: whether the worker is among them is what decides; their exact place further down is left out, as
    walking every candidate for every waiting task took seconds in a large center."""
    room = queue.max_reserved_workers - task.pending_reservations
    order = ("order_by " + ", ".join(f"{p} {'DESC' if d else 'ASC'}" for p, d in target.order_by)
             if target is not None and target.order_by else "longest idle first")
    ahead = ", ".join(worker_sid for task_sid, worker_sid in offers if task_sid == task.sid) or "nobody"
    if until_sid is not None:
        first = [candidate.sid for candidate in eligible_candidates(tx, task, queue, target, limit=room)] \
            if room > 0 else []
        for verdict in passing:
            if verdict.worker_sid in first:
                verdict.rank = first.index(verdict.worker_sid) + 1
                verdict.reason, verdict.eligible = ELIGIBLE_NOW, True
                verdict.detail = f"the engine's next match reserves this worker (place {verdict.rank})"
            elif room <= 0:
                verdict.reason = "lower_in_order"
                verdict.detail = f"the task's {queue.max_reserved_workers} offer(s) are out to {ahead}"
            else:
                verdict.reason = "lower_in_order"
                verdict.detail = f"not among the first {room} the engine offers it to ({order})"
        return
    ranked = [candidate.sid for candidate in eligible_candidates(tx, task, queue, target, limit=1_000_000)]
    place = {sid: position for position, sid in enumerate(ranked, 1)}
    for verdict in passing:
        position = place.get(verdict.worker_sid)
        verdict.rank = position
        if position is None:  # the candidate query and the checks above cannot disagree; say so if they do
            verdict.reason = "lower_in_order"
            verdict.detail = "not among the engine's candidates (please report this: explanation and engine disagree)"
        elif position <= room:
            verdict.reason, verdict.eligible = ELIGIBLE_NOW, True
            verdict.detail = f"the engine's next match reserves this worker (place {position} of {len(ranked)})"
        else:
            verdict.reason = "lower_in_order"
            if room <= 0:
                verdict.detail = (f"place {position} in line ({order}); the task's "
                                  f"{queue.max_reserved_workers} offer(s) are out to {ahead}")
            else:
                verdict.detail = f"place {position} in line ({order}); only {room} offer(s) can go out now"


def _not_in_queue(verdict: Verdict, queue: TaskQueue, worker: Worker) -> None:
    verdict.reason = "not_in_queue"
    expression = target_workers_expression(queue.target_workers)
    if expression is None:
        verdict.detail = f"TaskQueue {queue.friendly_name!r} has an empty target_workers: it selects nobody"
        return
    verdict.clauses = expression.explain(parsed_attributes(worker.attributes))
    failed = _failed(verdict.clauses)
    verdict.detail = (f"TaskQueue {queue.friendly_name!r} target_workers {queue.target_workers!r} is false"
                      + (f"; failed: {'; '.join(failed)}" if failed else ""))


def _failed_target(verdict: Verdict, tx: Tx, target: Target, task: Task, worker: Worker) -> None:
    verdict.reason = "failed_target_expression"
    task_env = {"task": parsed_attributes(task.attributes)}
    if target.known_worker_sid and resolve(task_env, target.known_worker_sid) != worker.sid:
        wanted = resolve(task_env, target.known_worker_sid)
        verdict.detail = (f"the target routes to a known worker: {target.known_worker_sid} is {wanted!r}"
                          + ("" if _known_worker_exists(tx, Worker.sid, wanted) else
                             ", and no worker of this workspace has that sid"))
        return
    if target.known_worker_friendly_name:
        wanted = resolve(task_env, target.known_worker_friendly_name)
        if not isinstance(wanted, str) or wanted.casefold() != worker.name_key:
            verdict.detail = (f"the target routes to a known worker: {target.known_worker_friendly_name} "
                              f"is {wanted!r}" + ("" if _known_worker_exists(tx, Worker.name_key, wanted) else
                                                  ", and no worker of this workspace has that name"))
            return
    env = {"task": task_env["task"], "worker": worker_view(tx, worker, with_channels=_reads_channels(target))}
    verdict.clauses = target.expression.explain(env) if target.expression is not None else []
    failed = _failed(verdict.clauses)
    text = target.expression.text if target.expression is not None else ""
    verdict.detail = f"target expression {text!r} is false" + (f"; failed: {'; '.join(failed)}" if failed else "")


def _known_worker_exists(tx: Tx, column, wanted) -> bool:
    """Whether the worker a known-worker target asks for exists (asked once per explanation, not per worker)."""
    if not isinstance(wanted, str):
        return False
    value = wanted.casefold() if column is Worker.name_key else wanted
    known = tx.__dict__.setdefault("explain_known_workers", {})
    if (column.key, value) not in known:
        known[column.key, value] = tx.session.scalar(
            select(Worker.sid).where(Worker.workspace_sid == tx.workspace.sid, column == value).limit(1)) is not None
    return known[column.key, value]


def _failed(clauses: list[Clause]) -> list[str]:
    return [f"{clause.text} ({clause.left!r} vs {clause.right!r})" for clause in clauses if not clause.result]


def _task_summary(task: Task, queue: TaskQueue | None, verdicts: list[Verdict], ahead: int | None = None) -> str:
    if task.assignment_status not in WAITING:
        return f"Task is {task.assignment_status}: it is not waiting for a worker"
    if queue is None:
        return "Task matched no workflow filter and there is no default filter: it waits in no queue"
    where = f"Waiting in TaskQueue {queue.friendly_name!r}"
    if ahead:
        where += f" behind {ahead} task(s) it serves first ({queue.task_order})"
    if task.filter_index is None:  # targets.keep_in_place
        where += (", where it was before the workflow's last update (which did not re-evaluate tasks); the new "
                  "configuration routes it when that step ends")
    if not verdicts:
        return where + "; the workspace has no workers"
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.reason] = counts.get(verdict.reason, 0) + 1
    parts = [f"{count} {reason.replace('_', ' ')}" for reason, count in
             sorted(counts.items(), key=lambda item: _LIST_ORDER[item[0]])]
    return where + "; workers: " + ", ".join(parts)


# -- the workflow ----------------------------------------------------------------------------------

def _explain_filters(tx: Tx, task: Task) -> tuple[list[FilterExplanation], str | None]:
    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    if workflow is None:
        return [], None
    config = configuration_of(workflow)
    attributes = parsed_attributes(task.attributes)
    age = task_age_seconds(task, tx.now)
    current = task.filter_index
    explained: list[FilterExplanation] = []
    # Kept in its queue by a configuration update without ReEvaluateTasks, its step gone (targets.keep_in_place):
    # the new filters route it when that step ends, so none has been evaluated for it yet.
    kept_in_place = current is None and task.task_queue_sid is not None
    left_at: dict[str, int] | None = None
    for index, routing_filter in enumerate(config.filters):
        if kept_in_place or (current is not None and current != DEFAULT_FILTER and index > current):
            explained.append(FilterExplanation(index, routing_filter.name, routing_filter.expression.text,
                                               None, "not_evaluated"))
            continue
        matched = routing_filter.expression(attributes)
        if index == current:
            outcome = "current"
        elif not matched:
            outcome = "no_match"
        else:
            # It matched, yet the task went past it: its steps ran out of time, or skip_if skipped them. When it
            # left tells which (its events); past their retention, its age now is all there is to go by.
            last = step_end_age(routing_filter.targets, len(routing_filter.targets) - 1)
            if left_at is None:
                left_at = _filters_left(tx, task)
            gone = left_at.get(routing_filter.name, age)
            outcome = "timed_out" if last is not None and gone >= last else "skipped"
        explained.append(FilterExplanation(index, routing_filter.name, routing_filter.expression.text, matched,
                                           outcome, routing_filter.expression.explain(attributes)))
    if current == DEFAULT_FILTER:
        return explained, "default_filter"
    if current is not None and 0 <= current < len(config.filters):
        return explained, config.filters[current].name
    return explained, None


def _filters_left(tx: Tx, task: Task) -> dict[str, int]:
    """The task's age (seconds) when it left each filter it was in, from its `workflow.target-matched` events."""
    left: dict[str, int] = {}
    previous = None
    for moment, data in tx.session.execute(
            select(Event.event_date, Event.event_data)
            .where(Event.task_sid == task.sid, Event.event_type == "workflow.target-matched").order_by(Event.id)):
        name = json.loads(data).get("workflow_filter_name")
        if previous is not None and name != previous:
            left[previous] = int((moment - task.date_created).total_seconds())
        previous = name
    return left


def _explain_target(tx: Tx, task: Task, target: Target, queue: TaskQueue, steps: list[Step]) -> TargetExplanation:
    workflow = tx.config.workflows[task.workflow_sid]
    config = configuration_of(workflow)
    if task.filter_index == DEFAULT_FILTER:
        filter_name, then = "default_filter", "stays in the default filter until its TTL"
    else:
        filter_name = config.filters[task.filter_index].name
        if target.timeout is None or not steps:
            then = "stays in this target until its TTL"
        elif steps[0].queue_sid is None:
            then = ("is canceled (workflow.timeout): it leaves filter " + repr(filter_name) + " and no later "
                    "filter that matches it has a step still open at that age")
        else:
            following = tx.config.queues.get(steps[0].queue_sid)
            name = repr(following.friendly_name) if following else steps[0].queue_sid
            then = f"moves to target {steps[0].target_index + 1} (TaskQueue {name})"
            if steps[0].filter_index != task.filter_index:
                then += f" of filter {config.filters[steps[0].filter_index].name!r}"
    moves_on_at = _due_at(tx, "target_timeout", task.sid)
    order_by = ", ".join(f"{p} {'DESC' if d else 'ASC'}" for p, d in target.order_by) or None
    return TargetExplanation(
        filter_index=task.filter_index, filter_name=filter_name, target_index=task.target_index or 0,
        queue_sid=queue.sid, queue_name=queue.friendly_name,
        expression=target.expression.text if target.expression is not None else None,
        order_by=order_by, priority=target.priority, timeout=target.timeout, moves_on_at=moves_on_at,
        seconds_left=max(0.0, (moves_on_at - tx.now).total_seconds()) if moves_on_at else None, then=then,
        skip_if=target.skip_if.text if target.skip_if is not None else None,
    )


def _due_at(tx: Tx, kind: str, subject_sid: str) -> datetime | None:
    return tx.session.scalar(select(Timer.due_at).where(Timer.kind == kind, Timer.subject_sid == subject_sid))


def _seconds_left(tx: Tx, kind: str, subject_sid: str) -> float | None:
    due = _due_at(tx, kind, subject_sid)
    return None if due is None else max(0.0, (due - tx.now).total_seconds())


# -- a worker --------------------------------------------------------------------------------------

def explain_worker_in(tx: Tx, worker: Worker, *, limit: int = 200) -> WorkerExplanation:
    """`explain_worker` inside a transaction the caller holds: the tasks waiting in the worker's own queues
    first, in the order the engine serves them, then (room permitting) the others."""
    waiting = (Task.workspace_sid == tx.workspace.sid, Task.assignment_status.in_(WAITING),
               Task.task_queue_sid.is_not(None))
    member_of = [tx.queue(sid) for sid in tx.session.scalars(
        select(TaskQueueMember.task_queue_sid).where(TaskQueueMember.worker_sid == worker.sid))]
    queue_sids = [queue.sid for queue in member_of]
    theirs: list[Task] = []
    for queue in member_of:  # each queue in its own serving order, merged as matching merges them
        theirs.extend(tx.session.scalars(select(Task).where(*waiting, Task.task_queue_sid == queue.sid)
                                         .order_by(*_serving_order(Task, queue.task_order)).limit(limit)))
    theirs = sorted(theirs, key=_serving_key(tx))[:limit]
    in_theirs = tx.session.scalar(select(func.count()).select_from(Task).where(
        *waiting, Task.task_queue_sid.in_(queue_sids)))
    others = tx.session.scalars(
        select(Task).where(*waiting, Task.task_queue_sid.not_in(queue_sids))
        .order_by(Task.priority.desc(), Task.virtual_start_time, Task.sid).limit(limit - len(theirs))
    ).all() if len(theirs) < limit else []
    in_others = tx.session.scalar(select(func.count()).select_from(Task).where(
        *waiting, Task.task_queue_sid.not_in(queue_sids)))
    tasks = [*theirs, *others]
    verdicts = worker_verdicts(tx, worker, tasks)
    verdicts.sort(key=lambda v: _LIST_ORDER[v.reason])  # stable: serving order within a reason
    held = tx.session.scalars(
        select(Reservation).where(Reservation.worker_sid == worker.sid,
                                  Reservation.reservation_status.in_(("pending", "accepted", "wrapping")))
        .order_by(Reservation.date_created)
    ).all()
    activity = tx.activity(worker.activity_sid)
    names = ", ".join(repr(queue.friendly_name) for queue in member_of) or "none"
    if not worker.available:
        summary = f"Activity {activity.friendly_name!r} is not available: no task is offered to this worker"
    elif not in_theirs and not in_others:
        summary = "No task is waiting in this workspace"
    elif not in_theirs:
        summary = f"No task is waiting in this worker's queues ({names}); {in_others} in queues they are not in"
    else:
        mine = [v for v in verdicts if v.reason != "not_in_queue"]
        summary = f"{in_theirs} waiting task(s) in this worker's queues ({names}): " + ", ".join(
            f"{sum(v.reason == reason for v in mine)} {reason.replace('_', ' ')}"
            for reason in sorted({v.reason for v in mine}, key=_LIST_ORDER.__getitem__))
        if len(theirs) < in_theirs:
            summary += f" (the first {len(theirs)} shown)"
        if in_others:
            summary += f"; {in_others} more in queues they are not in"
    return WorkerExplanation(
        workspace_sid=worker.workspace_sid, worker_sid=worker.sid, worker_name=worker.friendly_name,
        activity_name=activity.friendly_name, available=worker.available, summary=summary,
        reservations=[{"reservation_sid": r.sid, "task_sid": r.task_sid, "reservation_status": r.reservation_status}
                      for r in held],
        tasks=verdicts, explained_at=tx.now,
    )
