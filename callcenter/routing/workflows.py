"""Workflows: the routing configuration, validated on save and compiled once per text.

A configuration is `{"task_routing": {"filters": [...], "default_filter": {...}}}`. Filters are
tried top-down and the first whose expression matches the task's attributes wins; its targets
are routing steps tried in order, each with a queue (inherited from the previous target when
omitted), an optional priority, a timeout counted from the task's age, a worker expression,
`order_by`, `skip_if` and known-worker routing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select

from . import validation
from .errors import IllegalState, InvalidParameter
from .events import emit
from .expressions import Expression, ExpressionError, compile_expression, parse_order_by
from .models import Task, TaskQueue, Workflow
from .router import Router, Tx
from .sids import is_sid, new_sid

MAX_CONFIGURATION_BYTES = 1_038_576
TARGET_ROOTS = frozenset({"task", "worker"})
SKIP_IF_ROOTS = frozenset({"workers"})


@dataclass(frozen=True)
class Target:
    queue_sid: str
    priority: int | None = None
    timeout: int | None = None
    expression: Expression | None = None
    order_by: tuple[tuple[str, bool], ...] = ()
    skip_if: Expression | None = None
    known_worker_sid: str | None = None  # a task attribute path such as "task.agent_sid"
    known_worker_friendly_name: str | None = None


@dataclass(frozen=True)
class Filter:
    name: str
    expression: Expression
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class RoutingConfiguration:
    filters: tuple[Filter, ...]
    default_target: Target | None

    def target(self, filter_index: int | None, target_index: int | None) -> Target | None:
        if filter_index is None:
            return None
        if filter_index == -1:
            return self.default_target
        if 0 <= filter_index < len(self.filters):
            targets = self.filters[filter_index].targets
            if target_index is not None and 0 <= target_index < len(targets):
                return targets[target_index]
        return None

    @property
    def queue_sids(self) -> set[str]:
        sids = {target.queue_sid for f in self.filters for target in f.targets}
        if self.default_target:
            sids.add(self.default_target.queue_sid)
        return sids


def parse_configuration(text: Any) -> RoutingConfiguration:
    """Parse and validate a configuration; every error names the filter and target it came from."""
    if not isinstance(text, str):
        raise InvalidParameter("Configuration must be a JSON string")
    if len(text.encode()) > MAX_CONFIGURATION_BYTES:
        raise InvalidParameter(f"Configuration is larger than {MAX_CONFIGURATION_BYTES} bytes")
    return _parse_configuration(text)


@lru_cache(maxsize=1024)
def _parse_configuration(text: str) -> RoutingConfiguration:
    try:
        document = json.loads(text, parse_constant=validation.not_json)
    except ValueError as err:
        raise InvalidParameter(f"Configuration is not valid JSON: {err}") from None
    except RecursionError:  # `[[[[...]]]]` a few thousand deep
        raise InvalidParameter("Configuration nests too deeply") from None
    routing = document.get("task_routing") if isinstance(document, dict) else None
    if not isinstance(routing, dict):
        raise InvalidParameter("Configuration must be an object with a 'task_routing' object")
    unknown = set(routing) - {"filters", "default_filter"}
    if unknown:
        raise InvalidParameter(f"Configuration: unknown key(s) in task_routing: {', '.join(sorted(unknown))}")
    raw_filters = routing.get("filters", [])
    if not isinstance(raw_filters, list):
        raise InvalidParameter("Configuration: task_routing.filters must be a list")
    filters = []
    for index, raw in enumerate(raw_filters):
        where = f"filter {index + 1}"
        if not isinstance(raw, dict):
            raise InvalidParameter(f"Configuration: {where} must be an object")
        name = raw.get("filter_friendly_name", raw.get("friendly_name")) or f"filter {index + 1}"
        where = f"filter '{name}'"
        expression_text = raw.get("expression")
        if not isinstance(expression_text, str) or not expression_text.strip():
            raise InvalidParameter(f"Configuration: {where} needs an 'expression'")
        expression = _compile(expression_text, f"{where} expression")
        raw_targets = raw.get("targets")
        if not isinstance(raw_targets, list) or not raw_targets:
            raise InvalidParameter(f"Configuration: {where} needs a non-empty 'targets' list")
        targets: list[Target] = []
        for position, raw_target in enumerate(raw_targets):
            inherited = targets[-1].queue_sid if targets else None
            targets.append(_parse_target(raw_target, f"{where} target {position + 1}", inherited))
        filters.append(Filter(name=name, expression=expression, targets=tuple(targets)))
    default = routing.get("default_filter")
    default_target = _parse_target(default, "default_filter", None, allow_timeout=False) if default else None
    return RoutingConfiguration(filters=tuple(filters), default_target=default_target)


def _compile(text: str, field: str, roots: frozenset[str] | None = None) -> Expression:
    try:
        return compile_expression(text, field, roots)
    except ExpressionError as err:
        raise InvalidParameter(f"Configuration: {err}") from None


_TARGET_KEYS = {
    "queue", "priority", "timeout", "expression", "order_by", "skip_if",
    "known_worker_sid", "known_worker_friendly_name",
}


def _parse_target(raw: Any, where: str, inherited_queue: str | None, allow_timeout: bool = True) -> Target:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"Configuration: {where} must be an object")
    unknown = set(raw) - _TARGET_KEYS
    if unknown:
        raise InvalidParameter(f"Configuration: {where} has unknown key(s): {', '.join(sorted(unknown))}")
    queue = raw.get("queue", inherited_queue)
    if not is_sid(queue, "WQ"):
        raise InvalidParameter(f"Configuration: {where} needs a 'queue' that is a TaskQueue sid (WQ...)")
    priority = raw.get("priority")
    if priority is not None:
        try:
            priority = validation.integer(priority, f"{where} priority", minimum=0, maximum=validation.MAX_PRIORITY)
        except InvalidParameter as err:
            raise InvalidParameter(f"Configuration: {err}") from None
    timeout = raw.get("timeout")
    if timeout is not None:
        if not allow_timeout:
            raise InvalidParameter(f"Configuration: {where} cannot have a timeout")
        try:
            timeout = validation.integer(timeout, f"{where} timeout", minimum=1, maximum=1_209_600)
        except InvalidParameter as err:
            raise InvalidParameter(f"Configuration: {err}") from None
    expression = raw.get("expression")
    order_by = raw.get("order_by")
    skip_if = raw.get("skip_if")
    for key in ("known_worker_sid", "known_worker_friendly_name"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith("task.") or len(value) < 6):
            raise InvalidParameter(f"Configuration: {where} {key} must name a task attribute, like 'task.agent_sid'")
    if order_by is not None:
        if not isinstance(order_by, str):
            raise InvalidParameter(f"Configuration: {where} order_by must be a string")
        try:
            order_by = parse_order_by(order_by, f"{where} order_by")
        except ExpressionError as err:
            raise InvalidParameter(f"Configuration: {err}") from None
    return Target(
        queue_sid=queue,
        priority=priority,
        timeout=timeout,
        expression=_compile(expression, f"{where} expression", TARGET_ROOTS) if expression else None,
        order_by=order_by or (),
        skip_if=_compile(skip_if, f"{where} skip_if", SKIP_IF_ROOTS) if skip_if else None,
        known_worker_sid=raw.get("known_worker_sid"),
        known_worker_friendly_name=raw.get("known_worker_friendly_name"),
    )


def configuration_of(workflow: Workflow) -> RoutingConfiguration:
    """The compiled configuration of a saved workflow (validated when it was saved; cached by text)."""
    return _parse_configuration(workflow.configuration)


def _check_queues(tx: Tx, configuration: RoutingConfiguration) -> None:
    wanted = configuration.queue_sids
    if not wanted:
        return
    found = set(
        tx.session.scalars(
            select(TaskQueue.sid).where(TaskQueue.workspace_sid == tx.workspace.sid, TaskQueue.sid.in_(wanted))
        )
    )
    missing = sorted(wanted - found)
    if missing:
        places = []
        for f in configuration.filters:
            for number, target in enumerate(f.targets, 1):
                if target.queue_sid in missing:
                    places.append(f"filter '{f.name}' target {number}")
        if configuration.default_target and configuration.default_target.queue_sid in missing:
            places.append("default_filter")
        raise InvalidParameter(
            f"Configuration: TaskQueue {missing[0]} does not exist in this workspace ({', '.join(places)})"
        )


def _reservation_timeout(value: Any) -> int:
    return validation.integer(value, "TaskReservationTimeout", minimum=1, maximum=86_400)


def create_workflow(
    router: Router,
    workspace_sid: str,
    *,
    friendly_name: str,
    configuration: str,
    assignment_callback_url: str | None = None,
    fallback_assignment_callback_url: str | None = None,
    task_reservation_timeout: int | str | None = None,
) -> Workflow:
    """Create a workflow after validating its configuration against the workspace's queues."""
    validation.friendly_name(friendly_name)
    parsed = parse_configuration(configuration)
    with router.transaction(workspace_sid) as tx:
        _check_queues(tx, parsed)
        tx.config_changed()
        workflow = Workflow(
            sid=new_sid("WW"),
            workspace_sid=workspace_sid,
            friendly_name=friendly_name,
            configuration=configuration,
            assignment_callback_url=validation.callback_url(router, assignment_callback_url, "AssignmentCallbackUrl"),
            fallback_assignment_callback_url=validation.callback_url(
                router, fallback_assignment_callback_url, "FallbackAssignmentCallbackUrl"
            ),
            task_reservation_timeout=(
                _reservation_timeout(task_reservation_timeout) if task_reservation_timeout is not None else 120
            ),
            date_created=tx.now,
            date_updated=tx.now,
        )
        tx.session.add(workflow)
        tx.session.flush()
        emit(tx, "workflow.created", resource=workflow, workflow=workflow,
             description=f"Workflow {friendly_name} created")
        return workflow


_UNSET: Any = object()


def update_workflow(
    router: Router,
    workspace_sid: str,
    workflow_sid: str,
    *,
    friendly_name: str | None = None,
    configuration: str | None = None,
    assignment_callback_url: str | None = _UNSET,
    fallback_assignment_callback_url: str | None = _UNSET,
    task_reservation_timeout: int | str | None = None,
    re_evaluate_tasks: bool = False,
) -> Workflow:
    """Update a workflow; with `re_evaluate_tasks`, its waiting tasks re-enter routing at once."""
    if friendly_name is not None:
        validation.friendly_name(friendly_name)
    parsed = parse_configuration(configuration) if configuration is not None else None
    nothing = (friendly_name is None and configuration is None and task_reservation_timeout is None
               and assignment_callback_url is _UNSET and fallback_assignment_callback_url is _UNSET
               and not re_evaluate_tasks)
    with router.transaction(workspace_sid) as tx:
        workflow = tx.get(Workflow, workflow_sid, "Workflow")
        if nothing:  # an empty POST: no update, and no reload of the configuration elsewhere
            return workflow
        tx.config_changed()
        before = configuration_of(workflow)
        if parsed is not None:
            _check_queues(tx, parsed)
            workflow.configuration = configuration
        if friendly_name is not None:
            workflow.friendly_name = friendly_name
        if assignment_callback_url is not _UNSET:
            workflow.assignment_callback_url = validation.callback_url(
                router, assignment_callback_url, "AssignmentCallbackUrl"
            )
        if fallback_assignment_callback_url is not _UNSET:
            workflow.fallback_assignment_callback_url = validation.callback_url(
                router, fallback_assignment_callback_url, "FallbackAssignmentCallbackUrl"
            )
        if task_reservation_timeout is not None:
            workflow.task_reservation_timeout = _reservation_timeout(task_reservation_timeout)
        workflow.date_updated = tx.now
        emit(tx, "workflow.updated", resource=workflow, workflow=workflow,
             description=f"Workflow {workflow.friendly_name} updated")
        if re_evaluate_tasks or parsed is not None:
            from .targets import keep_in_place
            from .tasks import reroute_task

            waiting = tx.session.scalars(
                select(Task).where(Task.workflow_sid == workflow.sid,
                                   Task.assignment_status.in_(("pending", "reserved")))
            ).all()
            for task in waiting:
                if re_evaluate_tasks:
                    reroute_task(tx, task)
                else:
                    keep_in_place(tx, task, parsed, before)
        return workflow


def delete_workflow(router: Router, workspace_sid: str, workflow_sid: str) -> None:
    """Delete a workflow that no waiting or assigned task still uses."""
    with router.transaction(workspace_sid) as tx:
        tx.config_changed()
        workflow = tx.get(Workflow, workflow_sid, "Workflow")
        in_use = tx.session.scalar(
            select(func.count()).select_from(Task).where(
                Task.workflow_sid == workflow.sid,
                Task.assignment_status.in_(("pending", "reserved", "assigned", "wrapping")),
            )
        )
        if in_use:
            raise IllegalState(f"Workflow {workflow_sid} still routes {in_use} active task(s); cancel or "
                               "complete them first")
        emit(tx, "workflow.deleted", resource=workflow, workflow=workflow,
             description=f"Workflow {workflow.friendly_name} deleted")
        tx.session.delete(workflow)
