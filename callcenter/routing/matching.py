"""Matching: pairing waiting tasks with available workers, inside the transaction that made it possible.

Two entry points, one rule set. `reserve_for_task` looks for the best workers for one task (a task
was created, moved to a new target, or lost its reservations); `reserve_for_worker` looks for the
best tasks for one worker (they became available, freed capacity, or changed attributes). Because
every earlier change ran matching before it committed, no waiting task and available worker that
match are ever left unpaired; so one side's best pick is the right pick for both.

The indexed part of eligibility (queue membership, available activity, channel availability and
free capacity; for a task waiting in a queue, also no offer of it pending with the worker and no
rejection of it in this routing step) is SQL; looking for workers, the offers are read once per task
and tested in Python. The target's `expression` and `order_by`, which read JSON attributes, are
evaluated in Python on the candidates in order, stopping as soon as enough are found.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, DateTime, and_, bindparam, exists, or_, select, text, union_all

from . import statements
from .expressions import Expression, resolve
from .models import (
    WAITING_PREDICATE,
    Activity,
    Reservation,
    Task,
    TaskQueue,
    TaskQueueMember,
    Worker,
    WorkerChannel,
)
from .queues import parsed_attributes
from .router import Tx
from .workflows import Target, configuration_of

BATCH = 200


def run_matching(tx: Tx) -> None:
    """Match everything woken in this transaction, until nothing new is woken."""
    while True:
        tasks, workers = tx.take_woken()
        if not tasks and not workers:
            return
        if workers and tasks:
            # A freed worker must not go to a woken task while a task its queues serve first waits (a task
            # moved on by a timeout, or re-offered after an attributes update, would jump the line): the tasks
            # those workers would pick join the woken ones, and each goes, in serving order, to its best worker.
            woken = {task.sid for task in tasks}
            for worker in workers:
                task = _first_task_for(tx, worker)
                if task is not None and task.sid not in woken:
                    woken.add(task.sid)
                    tasks.append(task)
        if len(tasks) > 1:
            tasks.sort(key=_serving_key(tx))
        for task in tasks:
            reserve_for_task(tx, task)
        for worker in workers:
            reserve_for_worker(tx, worker)


def _serving_key(tx: Tx):
    """Sort key of tasks in the order their queues serve them: the workspace's PrioritizeQueueOrder kind first;
    FIFO queues by priority, then age; LIFO queues newest first."""
    first = tx.workspace.prioritize_queue_order

    def key(task: Task) -> tuple:
        queue = tx.config.queues.get(task.task_queue_sid) if task.task_queue_sid else None
        kind = queue.task_order if queue is not None else "FIFO"
        started = task.virtual_start_time.timestamp() if task.virtual_start_time is not None else 0.0
        if kind == "FIFO":
            return (kind != first, -task.priority, started, task.sid)
        return (kind != first, 0, -started, task.sid)

    return key


def current_target(tx: Tx, task: Task) -> Target | None:
    if task.workflow_sid is None:
        return None
    workflow = tx.config.workflows.get(task.workflow_sid)
    return configuration_of(workflow).target(task.filter_index, task.target_index) if workflow else None


# -- the environment expressions see ---------------------------------------------------------------

def worker_view(tx: Tx, worker: Worker, *, with_channels: bool) -> dict:
    """A worker's attributes plus TaskRouter's built-ins (`sid`, `activity_name`, `channel.<name>...`)."""
    view = dict(parsed_attributes(worker.attributes))
    view["sid"] = worker.sid
    view["friendly_name"] = worker.friendly_name
    view["activity_sid"] = worker.activity_sid
    view["activity_name"] = tx.activity(worker.activity_sid).friendly_name
    if with_channels:
        from .workers import available_capacity_percentage, channels_of

        view["channel"] = {
            tx.channel(ch.task_channel_sid).unique_name: {
                "assigned_tasks": ch.assigned_tasks,
                "configured_capacity": ch.capacity,
                "available_capacity_percentage": available_capacity_percentage(ch),
            }
            for ch in channels_of(tx, worker)
        }
    return view


def _reads_channels(target: Target | None) -> bool:
    return bool(target and target.expression and any(k.startswith("worker.channel") for k in target.expression.keys))


def target_accepts(tx: Tx, target: Target | None, task: Task, worker: Worker) -> bool:
    """The target's own conditions on this worker: its `expression` and known-worker routing."""
    if target is None:
        return True
    if target.known_worker_sid or target.known_worker_friendly_name:
        task_env = {"task": parsed_attributes(task.attributes)}
        if target.known_worker_sid and resolve(task_env, target.known_worker_sid) != worker.sid:
            return False
        if target.known_worker_friendly_name:
            wanted = resolve(task_env, target.known_worker_friendly_name)
            if not isinstance(wanted, str) or wanted.casefold() != worker.name_key:
                return False
    if target.expression is None:
        return True
    if _reads_worker_attributes_only(target.expression):
        key = (target.expression.text, worker.sid, worker.attributes, worker.friendly_name)
        verdict = _VERDICTS.get(key)
        if verdict is None:
            if len(_VERDICTS) >= _MAX_VERDICTS:
                _VERDICTS.clear()
            verdict = _VERDICTS[key] = target.expression({"worker": worker_view(tx, worker, with_channels=False)})
        return verdict
    env = {"task": parsed_attributes(task.attributes),
           "worker": worker_view(tx, worker, with_channels=_reads_channels(target))}
    return target.expression(env)


# A target expression that reads only a worker's own attributes, sid and name has one answer per worker
# for as long as those stay the same: workers it refuses are otherwise judged again on every task that
# reaches the target (they stay longest idle, so every match walks past them first). Activity and
# channel built-ins change without the attributes changing, so expressions reading them are not cached.
_VERDICTS: dict[tuple[str, str, str, str], bool] = {}
_MAX_VERDICTS = 100_000
_VOLATILE_BUILT_INS = ("worker.activity_name", "worker.activity_sid", "worker.channel")


@lru_cache(maxsize=1024)
def _reads_worker_attributes_only(expression: Expression) -> bool:
    return all(key.startswith("worker.") and not key.startswith(_VOLATILE_BUILT_INS) for key in expression.keys)


# -- the SQL part of eligibility -------------------------------------------------------------------

def _offer_blocked(task_sid_column, worker_sid_column, step_started_column):
    """A pending offer of this task to this worker, or their rejection of it in the current step."""
    return exists().where(
        Reservation.task_sid == task_sid_column,
        Reservation.worker_sid == worker_sid_column,
        or_(
            Reservation.reservation_status == "pending",
            and_(Reservation.reservation_status == "rejected", Reservation.date_created >= step_started_column),
        ),
    )


def worker_conditions(single_tasking: bool) -> tuple[tuple[str, ColumnElement[bool]], ...]:
    """The column part of a worker's eligibility for a task (after queue membership), each named by the
    reason it gives when false; shared with `explain.py` so that explanations cannot disagree with routing.

    Bound parameters: `task_sid`, and `step_started` (when the task entered its current target).
    """
    conditions = [
        ("activity_unavailable", Worker.available.is_(True)),
        ("channel_unavailable", WorkerChannel.available.is_(True)),
        ("channel_at_capacity", WorkerChannel.reserved_tasks < WorkerChannel.capacity),
        ("offer_blocked", ~_offer_blocked(bindparam("task_sid"), Worker.sid,
                                          bindparam("step_started", type_=DateTime()))),
    ]
    if single_tasking:
        conditions.append(("reservation_pending_elsewhere", Worker.active_reservations == 0))
    return tuple(conditions)


# What a target needs to judge a candidate (and `_order_key` to rank one): plain rows, not ORM objects,
# because most candidates a target's expression refuses are only looked at.
_CANDIDATE_COLUMNS = (Worker.sid, Worker.friendly_name, Worker.name_key, Worker.attributes, Worker.activity_sid,
                      WorkerChannel.idle_since)


@lru_cache(maxsize=16)
def _candidate_workers_query(single_tasking: bool, by_sid: bool, by_name: bool, after: bool = False):
    """The candidate query, built once per shape with bound parameters (building it per call cost more
    than running it).

    Longest idle first, straight off `ix_worker_channels_idle` (which also holds every column the
    filter reads), with queue membership probed next: the join order is fixed (CROSS JOIN keeps
    SQLite from reordering it) because workers of other queues who have been idle longest are walked
    past on every match, and each must cost one index probe, not a row fetch and a subquery.
    `worker_conditions` without `offer_blocked`, which `candidate_workers` tests in Python.
    `after`: the rows that follow (`after_idle`, `after_sid`) in that order, for the next batch: the index
    is entered there instead of walked again from its start, as an OFFSET would.
    """
    conditions = [
        "worker_channels.task_channel_sid = :channel_sid",
        "worker_channels.worker_available = :true",
        "worker_channels.available = :true",
        "worker_channels.reserved_tasks < worker_channels.capacity",
        "task_queue_members.task_queue_sid = :queue_sid",
        "task_queue_members.worker_sid = worker_channels.worker_sid",
        "workers.sid = worker_channels.worker_sid",
        "workers.available = :true",
    ]
    if single_tasking:
        conditions.append("workers.active_reservations = 0")
    if by_sid:
        conditions.append("workers.sid = :known_sid")
    if by_name:
        conditions.append("workers.name_key = :known_name")
    if after:
        conditions.append("(worker_channels.idle_since, worker_channels.worker_sid) > (:after_idle, :after_sid)")
    columns = ", ".join(f"{column.table.name}.{column.name}" for column in _CANDIDATE_COLUMNS)
    sql = (f"SELECT {columns} "
           "FROM worker_channels CROSS JOIN task_queue_members CROSS JOIN workers "
           f"WHERE {' AND '.join(conditions)} "
           "ORDER BY worker_channels.idle_since, worker_channels.worker_sid LIMIT :size")
    return text(sql).bindparams(bindparam("true", True))


class Candidate(NamedTuple):
    """A row of the candidate query (`_CANDIDATE_COLUMNS`). `idle_since` is as the driver returns it (text on
    SQLite): it only orders candidates of one query."""

    sid: str
    friendly_name: str
    name_key: str
    attributes: str
    activity_sid: str
    idle_since: Any


_OFFERS_BLOCKING = select(Reservation.worker_sid).where(
    Reservation.task_sid == bindparam("task_sid"),
    or_(Reservation.reservation_status == "pending",
        and_(Reservation.reservation_status == "rejected",
             Reservation.date_created >= bindparam("step_started", type_=DateTime()))),
)


def _blocked_workers(tx: Tx, task: Task) -> set[str]:
    """Workers with a pending offer of `task`, or who rejected it in its current routing step."""
    if tx.never_offered(task.sid):
        return set()
    return set(tx.session.scalars(_OFFERS_BLOCKING, {"task_sid": task.sid,
                                                     "step_started": task.task_queue_entered_date}))


def candidate_workers(tx: Tx, task: Task, queue_sid: str, *, first_batch: int = BATCH,
                      target: Target | None = None) -> Iterator[Any]:
    """Workers who could take `task` now by everything but the target's expression, longest idle first:
    rows of `_CANDIDATE_COLUMNS` (`sid`, `friendly_name`, `name_key`, `attributes`, `activity_sid`,
    `idle_since`).

    Rows come in growing batches starting at `first_batch`: most tasks need one worker, and
    loading a few hundred rows to use one is what dominated routing time.
    """
    params = {"queue_sid": queue_sid, "channel_sid": task.task_channel_sid}
    by_sid = bool(target is not None and target.known_worker_sid)
    by_name = bool(target is not None and target.known_worker_friendly_name)
    if by_sid or by_name:
        # Known-worker routing names one worker: let the index find them.
        task_env = {"task": parsed_attributes(task.attributes)}
        if by_sid:
            params["known_sid"] = str(resolve(task_env, target.known_worker_sid))
        if by_name:
            params["known_name"] = str(resolve(task_env, target.known_worker_friendly_name)).casefold()
    blocked = _blocked_workers(tx, task)
    shape = (not tx.workspace.multi_task_enabled, by_sid, by_name)
    query, size = _candidate_workers_query(*shape), max(1, first_batch + len(blocked))
    while True:
        tx.session.flush()  # the query reads capacity and availability that this transaction may have changed
        rows = statements.run(statements.connection(tx.session), query, {**params, "size": size})
        for row in rows:
            if row[0] not in blocked:
                yield Candidate._make(row)
        if len(rows) < size:
            return
        # The next batch starts after the last row (idle_since as the driver returned it) and is twice as
        # big: a target's expression that refuses the longest idle usually refuses tens of them, not hundreds,
        # and each row read costs a Python evaluation too (doubling instead of quadrupling took 3% off the
        # CPU work of a bench/engine.py lifecycle).
        last = rows[-1]
        params["after_idle"], params["after_sid"] = last[5], last[0]
        query, size = _candidate_workers_query(*shape, after=True), min(size * 2, BATCH)


def _order_key(order_by: tuple[tuple[str, bool], ...], candidate: Any) -> tuple:
    env = {"worker": parsed_attributes(candidate.attributes)}
    key = []
    for path, descending in order_by:
        value = resolve(env, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            key.append((1, 0))  # workers without the attribute come after those with it
        else:
            key.append((0, -value if descending else value))
    return (*key, candidate.idle_since, candidate.sid)


def eligible_workers(tx: Tx, task: Task, queue: TaskQueue, target: Target | None,
                     limit: int) -> list[tuple[Worker, WorkerChannel]]:
    """The best `limit` workers for `task` in `queue`, in the order they should be offered it."""
    return [_worker_and_channel(tx, candidate.sid, task.task_channel_sid)
            for candidate in eligible_candidates(tx, task, queue, target, limit)]


def eligible_candidates(tx: Tx, task: Task, queue: TaskQueue, target: Target | None, limit: int) -> list[Any]:
    """`eligible_workers` as candidate rows (`.sid` and the ordering columns), without loading each worker."""
    if target is not None and target.order_by:
        first_batch = BATCH  # every candidate is ranked
    elif target is not None and target.expression is not None:
        first_batch = max(limit, 8)
    else:
        first_batch = limit
    chosen = []
    for candidate in candidate_workers(tx, task, queue.sid, first_batch=first_batch, target=target):
        if not target_accepts(tx, target, task, candidate):
            continue
        chosen.append(candidate)
        if len(chosen) >= limit and not (target and target.order_by):
            break
    if target and target.order_by:
        chosen.sort(key=lambda candidate: _order_key(target.order_by, candidate))
    return chosen[:limit]


_WORKER_AND_CHANNEL = (
    statements.select_rows_of(Worker, WorkerChannel)
    .join(WorkerChannel, WorkerChannel.worker_sid == Worker.sid)
    .where(Worker.sid == bindparam("worker_sid"), WorkerChannel.task_channel_sid == bindparam("channel_sid"))
)


def _worker_and_channel(tx: Tx, worker_sid: str, channel_sid: str) -> tuple[Worker, WorkerChannel]:
    """The chosen worker and their channel as session objects (one statement unless already loaded)."""
    channel = tx.remembered_channel(worker_sid, channel_sid)
    if channel is not None:
        return tx.session.get(Worker, worker_sid), channel
    # Loaded by key: pending changes cannot alter what this finds, so they need not be flushed first.
    ((worker, channel),) = statements.load_rows(tx.session, _WORKER_AND_CHANNEL, {"worker_sid": worker_sid,
                                                                                  "channel_sid": channel_sid},
                                                (Worker, WorkerChannel), flush=False)
    tx.hold(worker)
    tx.remember_channel(channel)
    return worker, channel


# -- the two directions ----------------------------------------------------------------------------

def reserve_for_task(tx: Tx, task: Task) -> int:
    """Reserve the best available workers for `task` (up to its queue's MaxReservedWorkers)."""
    from .reservations import create_reservation

    if task.assignment_status not in ("pending", "reserved") or task.task_queue_sid is None:
        return 0
    queue = tx.queue(task.task_queue_sid)
    room = queue.max_reserved_workers - task.pending_reservations
    if room <= 0:
        return 0
    target = current_target(tx, task)
    made = 0
    for worker, channel in eligible_workers(tx, task, queue, target, room):
        create_reservation(tx, task, worker, channel, queue)
        made += 1
    return made


def _channels_with_room(tx: Tx, worker: Worker) -> list[str]:
    from .workers import channels_of

    if not worker.available:
        return []
    if not tx.workspace.multi_task_enabled and worker.active_reservations > 0:
        return []
    return [channel.task_channel_sid for channel in channels_of(tx, worker)
            if channel.available and channel.reserved_tasks < channel.capacity]


_MEMBER_QUEUES = select(TaskQueueMember.task_queue_sid).where(TaskQueueMember.worker_sid == bindparam("worker_sid"))


HEADS_PER_STATEMENT = 50


def _serving_order(entity, order: str) -> tuple:
    """FIFO: `ix_tasks_waiting_order` read forwards; LIFO: `ix_tasks_waiting_lifo` read backwards (ties on the
    virtual start time, which only tasks created in the same microsecond have, go to the greater sid)."""
    if order == "FIFO":
        return (entity.priority.desc(), entity.virtual_start_time, entity.sid)
    return (entity.virtual_start_time.desc(), entity.sid.desc())


@lru_cache(maxsize=2 * HEADS_PER_STATEMENT)
def _queue_heads_query(order: str, heads: int):
    """The waiting tasks one worker could take from `heads` (queue, channel) pairs, merged in serving order;
    built once per shape with bound parameters (`queue_<n>`, `channel_<n>`, `max_<n>`, `worker_sid`,
    `depth`, `size`, `offset`).

    Each pair is read on its own, straight off `ix_tasks_waiting_order` (the literal predicate is repeated
    for the partial index to apply), and only `depth` tasks of each are merged: sorting, or filtering by
    channel, every waiting task of the worker's queues cost time in proportion to the backlog.
    """
    parts = []
    for number in range(heads):
        # Only the ordering columns travel through the merge; the rows are joined once at the end.
        head = (
            select(Task.sid, Task.priority, Task.virtual_start_time)
            .where(
                Task.task_queue_sid == bindparam(f"queue_{number}"),
                Task.task_channel_sid == bindparam(f"channel_{number}"),
                text(f"tasks.{WAITING_PREDICATE}"),
                Task.pending_reservations < bindparam(f"max_{number}"),
                ~_offer_blocked(Task.sid, bindparam("worker_sid"), Task.task_queue_entered_date),
            )
            .order_by(*_serving_order(Task, order))
            .limit(bindparam("depth"))
        )
        parts.append(select(head.subquery()))
    merged = (union_all(*parts) if heads > 1 else parts[0]).subquery()
    return (select(Task).join(merged, merged.c.sid == Task.sid).order_by(*_serving_order(merged.c, order))
            .limit(bindparam("size")).offset(bindparam("offset")))


def _fifo_key(task: Task) -> tuple:
    return (-task.priority, task.virtual_start_time, task.sid)


def _lifo_key(task: Task) -> tuple:
    return (task.virtual_start_time, task.sid)  # merged with reverse=True: newest first


def _queue_heads(tx: Tx, order: str, heads: list[tuple[TaskQueue, str]], worker_sid: str) -> Iterator[Task]:
    query = _queue_heads_query(order, len(heads))
    params: dict = {"worker_sid": worker_sid}
    for number, (queue, channel_sid) in enumerate(heads):
        params[f"queue_{number}"] = queue.sid
        params[f"channel_{number}"] = channel_sid
        params[f"max_{number}"] = queue.max_reserved_workers
    # Most workers take the first task offered: a small first page keeps every queue's probe short.
    offset, size = 0, 4
    while True:
        rows = tx.session.scalars(query, {**params, "size": size, "offset": offset, "depth": offset + size}).all()
        yield from rows
        if len(rows) < size:
            return
        offset += size
        size = min(size * 4, BATCH)


def member_queues(tx: Tx, worker: Worker) -> list[TaskQueue]:
    configured = tx.config.queues
    tx.session.flush()  # memberships this transaction changed
    rows = statements.run(statements.connection(tx.session), _MEMBER_QUEUES, {"worker_sid": worker.sid})
    return [configured[sid] for (sid,) in rows if sid in configured]


def candidate_tasks(tx: Tx, worker: Worker, channel_sids: list[str],
                    member_of: list[TaskQueue] | None = None) -> Iterator[Task]:
    """Waiting tasks in the worker's queues, in the order the queues serve them.

    FIFO queues serve by priority then age; LIFO queues newest first, ignoring priority; the
    workspace's PrioritizeQueueOrder says which kind goes first when a worker is in both. Each
    queue is read in its own order, per channel, and the queues of a kind are merged.
    """
    kinds = ("FIFO", "LIFO") if tx.workspace.prioritize_queue_order == "FIFO" else ("LIFO", "FIFO")
    if member_of is None:
        member_of = member_queues(tx, worker)
    for kind in kinds:
        pairs = [(queue, channel_sid) for queue in member_of if queue.task_order == kind for channel_sid in channel_sids]
        heads = [_queue_heads(tx, kind, pairs[start:start + HEADS_PER_STATEMENT], worker.sid)
                 for start in range(0, len(pairs), HEADS_PER_STATEMENT)]
        if len(heads) == 1:
            yield from heads[0]
        elif heads:
            yield from (heapq.merge(*heads, key=_fifo_key) if kind == "FIFO"
                        else heapq.merge(*heads, key=_lifo_key, reverse=True))


@lru_cache(maxsize=256)
def _any_waiting_query(dialect: str, queues: int, channels: int):
    """One probe of `ix_tasks_waiting_order` per (queue, channel) pair, for `queues` queues and `channels`
    channels (`:queue_<n>`, `:channel_<n>`). SQLite is told the index: left to itself it picks
    ix_tasks_queue_waiting and reads every waiting task of the queues to test its channel (50,000 a queue
    at TaskRouter's limits). The status test is spelled as the partial index's predicate."""
    indexed_by = " INDEXED BY ix_tasks_waiting_order" if dialect == "sqlite" else ""
    queue_list = ", ".join(f":queue_{number}" for number in range(queues))
    channel_list = ", ".join(f":channel_{number}" for number in range(channels))
    return text(f"SELECT 1 FROM tasks{indexed_by} WHERE tasks.task_queue_sid IN ({queue_list}) "
                f"AND tasks.task_channel_sid IN ({channel_list}) AND tasks.{WAITING_PREDICATE} LIMIT 1")


def _any_waiting(tx: Tx, member_of: list[TaskQueue], channel_sids: list[str]) -> bool:
    """Whether any task waits in these queues on these channels: one probe of `ix_tasks_waiting_order` per
    pair. Most often nothing waits (a worker freed while agents outnumber callers; their other channels
    after a first reservation), and this says so for a fraction of what reading every queue's head in
    serving order costs."""
    tx.session.flush()
    connection = statements.connection(tx.session)
    dialect = "sqlite" if connection.dialect.name == "sqlite" else "postgresql"
    query = _any_waiting_query(dialect, len(member_of), len(channel_sids))
    params = {f"queue_{number}": queue.sid for number, queue in enumerate(member_of)}
    params.update({f"channel_{number}": sid for number, sid in enumerate(channel_sids)})
    return bool(statements.run(connection, query, params))


def reserve_for_worker(tx: Tx, worker: Worker) -> int:
    """Offer `worker` the best waiting tasks they can take, until their capacity is used."""
    from .reservations import create_reservation
    from .workers import worker_channel

    made, member_of = 0, None
    while True:
        channel_sids = _channels_with_room(tx, worker)
        if not channel_sids:
            return made
        if member_of is None:
            member_of = member_queues(tx, worker)  # nothing in this loop changes them
            if not member_of:
                return made
        task = _first_acceptable(tx, worker, channel_sids, member_of)
        if task is None:
            return made
        channel = worker_channel(tx, worker, task.task_channel_sid)
        create_reservation(tx, task, worker, channel, tx.queue(task.task_queue_sid))
        made += 1


def _first_acceptable(tx: Tx, worker: Worker, channel_sids: list[str], member_of: list[TaskQueue]) -> Task | None:
    """The first waiting task, in serving order, whose current target takes `worker`."""
    if not _any_waiting(tx, member_of, channel_sids):
        return None
    for task in candidate_tasks(tx, worker, channel_sids, member_of):
        if target_accepts(tx, current_target(tx, task), task, worker):
            return task
    return None


def _first_task_for(tx: Tx, worker: Worker) -> Task | None:
    """The task `worker` would be offered now, if any (nothing is reserved)."""
    channel_sids = _channels_with_room(tx, worker)
    member_of = member_queues(tx, worker) if channel_sids else []
    return _first_acceptable(tx, worker, channel_sids, member_of) if member_of else None


def queue_worker_counts(tx: Tx, queue_sid: str) -> dict:
    """`workers.available`, `workers.unavailable` and `workers.<activity sid>` for a queue (skip_if)."""
    from sqlalchemy import func

    rows = tx.session.execute(
        select(Worker.activity_sid, Activity.available, func.count())
        .join(TaskQueueMember, and_(TaskQueueMember.worker_sid == Worker.sid,
                                    TaskQueueMember.task_queue_sid == queue_sid))
        .join(Activity, Activity.sid == Worker.activity_sid)
        .group_by(Worker.activity_sid, Activity.available)
    ).all()
    # Every activity of the workspace counts, zero included: `workers.<WA sid> < 1` must hold when nobody is in it.
    counts: dict = {"available": 0, "unavailable": 0, **dict.fromkeys(tx.config.activities, 0)}
    for activity_sid, available, count in rows:
        counts[activity_sid] = count
        counts["available" if available else "unavailable"] += count
    return {"workers": counts}
