"""Moving a task through its workflow: which filter matched, which target (routing step) it is in.

A target's timeout is measured against the task's age, not against when it entered the target:
a target's step ends when the task is as old as the sum of its filter's timeouts up to and
including it (targets with timeouts 10, 10, 10 move the task at ages 10, 20 and 30; TaskRouter's
"the Queue timeout is now the sum of Q1 and Q2 timeouts"). A target whose time has already passed
is stepped over. `skip_if` is evaluated only when no reservation could be made the moment the
task entered the target. Timing out of the last target of the last matching
filter cancels the task (`workflow.timeout`); skipping out of it sends it to the default filter,
or cancels it (`workflow.skipped`) when there is none.
"""

from __future__ import annotations

from datetime import timedelta

from .events import emit, task_age_seconds
from .models import Task, Workflow
from .queues import parsed_attributes
from .router import Tx
from .workflows import RoutingConfiguration, Target, configuration_of

DEFAULT_FILTER = -1


def enter_workflow(tx: Tx, task: Task, workflow: Workflow) -> None:
    """A new task enters its workflow and is placed in the first target that applies."""
    emit(tx, "workflow.entered", resource=task, task=task, workflow=workflow,
         description=f"Task {task.sid} entered Workflow {workflow.friendly_name}")
    place(tx, task, workflow, configuration_of(workflow), filter_index=0, target_index=0, moved_by=None)


def reroute(tx: Tx, task: Task) -> None:
    """Evaluate the workflow again from the top (attributes changed, or the workflow was updated)."""
    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    if workflow is None:
        return
    place(tx, task, workflow, configuration_of(workflow), filter_index=0, target_index=0, moved_by=None)


def move_to_next_target(tx: Tx, task: Task) -> None:
    """The current target timed out: leave its queue and try the next target, then the next filter.

    A task whose step the workflow's new configuration no longer has (see `keep_in_place`) is routed by the
    new configuration from the top, by its age, when the step it was in ends.
    """
    from .reservations import cancel_pending_reservations

    workflow = tx.config.workflows.get(task.workflow_sid) if task.workflow_sid else None
    unanchored = task.filter_index is None and task.task_queue_sid is not None
    if workflow is None or task.filter_index == DEFAULT_FILTER or (task.filter_index is None and not unanchored):
        return
    cancel_pending_reservations(tx, task)
    queue = tx.config.queues.get(task.task_queue_sid) if task.task_queue_sid else None
    emit(tx, "task-queue.timeout", resource=task, task=task, queue=queue,
         description=f"Task {task.sid} timed out of TaskQueue {queue.friendly_name if queue else ''}")
    if unanchored:
        place(tx, task, workflow, configuration_of(workflow), filter_index=0, target_index=0, moved_by="timeout")
        return
    place(tx, task, workflow, configuration_of(workflow), filter_index=task.filter_index,
          target_index=(task.target_index or 0) + 1, moved_by="timeout")


def keep_in_place(tx: Tx, task: Task, config: RoutingConfiguration, before: RoutingConfiguration) -> None:
    """The workflow's configuration changed without ReEvaluateTasks: the waiting task stays in its queue, with
    its offers. Its step is found again in the new configuration (filters and targets may have been added,
    removed or reordered): where a fresh evaluation would place it now, if that is the queue it is in. If not,
    it keeps its queue, with no target of its own, until the step it was in ends (its timer), and is then
    routed by the new configuration; its indexes must never point at another filter's target."""
    located = locate(config, parsed_attributes(task.attributes), task_age_seconds(task, tx.now))
    target = config.target(*located) if located is not None else None
    # Its target (expression, order_by, known worker) changed, or it has none now: a worker the old one refused
    # may take it at once, and nothing else would look again before the step ends. (An unchanged target
    # needs no look: with thousands waiting, looking again for each held the workspace's lock for seconds.)
    if target is None or before.target(task.filter_index, task.target_index) != target:
        tx.wake_task(task)
    if target is None or target.queue_sid != task.task_queue_sid:
        task.filter_index = task.target_index = None
        return
    task.filter_index, task.target_index = located
    ends_at = None if located[0] == DEFAULT_FILTER else step_end_age(config.filters[located[0]].targets, located[1])
    if ends_at is not None:
        tx.schedule("target_timeout", task.sid, task.date_created + timedelta(seconds=ends_at))
    else:
        tx.cancel_timer("target_timeout", task.sid)


def locate(config: RoutingConfiguration, attributes: dict, age: int) -> tuple[int, int] | None:
    """Where a fresh evaluation would place a task of this age now, `skip_if` aside: (filter, target)."""
    for index, routing_filter in enumerate(config.filters):
        if not routing_filter.expression(attributes):
            continue
        for position in range(len(routing_filter.targets)):
            ends_at = step_end_age(routing_filter.targets, position)
            if ends_at is None or age < ends_at:
                return index, position
    return (DEFAULT_FILTER, 0) if config.default_target is not None else None


def place(tx: Tx, task: Task, workflow: Workflow, config: RoutingConfiguration, *, filter_index: int,
          target_index: int, moved_by: str | None) -> None:
    """Find the first target at or after (filter_index, target_index) that applies, and enter it."""
    from .matching import queue_worker_counts, reserve_for_task
    from .tasks import cancel_task_in

    attributes = parsed_attributes(task.attributes)
    age = task_age_seconds(task, tx.now)
    index = filter_index
    first = target_index
    while index < len(config.filters):
        routing_filter = config.filters[index]
        # Continuing inside a filter keeps its earlier match; a fresh filter must match again.
        if first == 0 and not routing_filter.expression(attributes):
            index += 1
            continue
        for position in range(first, len(routing_filter.targets)):
            target = routing_filter.targets[position]
            ends_at = step_end_age(routing_filter.targets, position)
            if ends_at is not None and age >= ends_at:
                moved_by = "timeout"
                continue
            enter_target(tx, task, workflow, index, position, target, routing_filter.name, ends_at)
            if target.skip_if is None:
                return
            if reserve_for_task(tx, task) or not target.skip_if(queue_worker_counts(tx, target.queue_sid)):
                return
            _leave_queue(tx, task)
            moved_by = "skip"
        index += 1
        first = 0

    if moved_by == "timeout":
        emit(tx, "workflow.timeout", resource=task, task=task, workflow=workflow,
             description=f"Task {task.sid} timed out of Workflow {workflow.friendly_name}")
        cancel_task_in(tx, task, "Workflow Timeout")
    elif config.default_target is not None:
        enter_target(tx, task, workflow, DEFAULT_FILTER, 0, config.default_target, "default_filter", None)
    elif moved_by == "skip":
        emit(tx, "workflow.skipped", resource=task, task=task, workflow=workflow,
             description=f"Task {task.sid} skipped out of Workflow {workflow.friendly_name}")
        cancel_task_in(tx, task, "Workflow Skipped")
    else:
        # No filter matched and there is no default filter: the task waits, in no queue, until its
        # TTL or an update that makes a filter match.
        _leave_queue(tx, task)
        task.filter_index = task.target_index = None
        tx.cancel_timer("target_timeout", task.sid)


def step_end_age(targets: tuple[Target, ...], position: int) -> int | None:
    """The task age at which the step at `position` ends: its filter's timeouts summed up to it."""
    if targets[position].timeout is None:
        return None
    return sum(target.timeout or 0 for target in targets[: position + 1])


def enter_target(tx: Tx, task: Task, workflow: Workflow, filter_index: int, target_index: int, target: Target,
                 filter_name: str, ends_at: int | None) -> None:
    previous_queue = task.task_queue_sid
    task.filter_index, task.target_index = filter_index, target_index
    task.task_queue_sid = target.queue_sid
    task.task_queue_entered_date = tx.now
    if target.priority is not None:
        task.priority = target.priority
    task.version += 1
    task.date_updated = tx.now
    queue = tx.queue(target.queue_sid)
    emit(tx, "workflow.target-matched", resource=task, task=task, workflow=workflow,
         description=f"Task {task.sid} matched a target of filter {filter_name}",
         data={"workflow_filter_name": filter_name, "workflow_filter_target_index": str(target_index)})
    if previous_queue and previous_queue != target.queue_sid:
        emit(tx, "task-queue.moved", resource=task, task=task, queue=queue,
             description=f"Task {task.sid} moved to TaskQueue {queue.friendly_name}",
             data={"task_queue_moved_from": previous_queue})
    emit(tx, "task-queue.entered", resource=task, task=task, queue=queue,
         description=f"Task {task.sid} entered TaskQueue {queue.friendly_name}")
    if ends_at is not None:
        tx.schedule("target_timeout", task.sid, task.date_created + timedelta(seconds=ends_at))
    else:
        tx.cancel_timer("target_timeout", task.sid)
    tx.wake_task(task)


def _leave_queue(tx: Tx, task: Task) -> None:
    task.task_queue_sid = None
    task.task_queue_entered_date = None
