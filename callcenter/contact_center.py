"""The contact center's shape, from a TOML file, loaded into the routing engine without destroying anything.

`read_spec(path)` parses and checks the file; `apply(router, spec, ...)` makes the workspace match it:
what exists (found by name) is updated, what is missing is created, nothing is deleted, and no sid
changes, so agents keep their state and waiting callers keep their tasks. `current(app)` gives the
running app the loaded contact center (sids resolved once per process).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from callcenter import config
from callcenter.database import get_router
from callcenter.phones import to_e164
from callcenter.routing import Router, queues, validation, workers, workflows, workspaces
from callcenter.routing.errors import RoutingError
from callcenter.routing.expressions import ExpressionError, compile_expression
from callcenter.routing.models import Activity, TaskQueue, Worker, Workflow, Workspace

# Seconds an agent needs, once they answer, to hear who calls (~5 s of speech) and press 1 (the prompt
# waits 8 s; see twiml.voice.agent_confirm), with room for the callback and Twilio's dialing.
CONFIRM_SECONDS = 18
ROLES = ("available", "offline", "break", "busy", "wrap_up")
# What the voice app must hear about from the engine (see callcenter/voice/events.py).
VOICE_EVENTS = ("task.canceled", "workflow.timeout", "reservation.timeout", "reservation.canceled",
                "reservation.rescinded", "reservation.rejected")


class SpecError(ValueError):
    """The contact-center file is wrong; the message says where."""


class NotLoaded(RuntimeError):
    """The database has no workspace for the contact-center file yet."""


@dataclass(frozen=True)
class MenuOption:
    digit: str
    words: tuple[str, ...]
    prompt: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Menu:
    options: tuple[MenuOption, ...] = ()
    default_option: str | None = None
    prompt_on_retry: str = "Sorry, I didn't get that."

    def choose(self, digits: str | None, speech: str | None) -> MenuOption | None:
        """The option a caller picked by key press or by saying one of its words."""
        if digits:
            return next((option for option in self.options if option.digit == digits.strip()), None)
        if speech:
            said = speech.casefold()
            return next((option for option in self.options
                         if any(word.casefold() in said for word in option.words)), None)
        return None

    @property
    def default(self) -> MenuOption | None:
        return next((option for option in self.options if option.digit == self.default_option), None)


@dataclass(frozen=True)
class VoiceSettings:
    greeting: str = "Thank you for calling."
    language: str = "en-US"
    voice: str = "alice"
    hold_music_url: str = ""
    queue_name: str = "callcenter"
    # Callers the Twilio queue holds at once; Twilio's default is 100, and the next caller is refused (queue-full).
    queue_max_size: int = 1000
    ring_seconds: int = 20
    agent_confirm: bool = True
    wrap_up_seconds: int = 30
    max_wait_seconds: int = 600
    voicemail_prompt: str = "Sorry, all of our agents are busy. Please leave a message after the tone."
    voicemail_max_seconds: int = 120
    transcribe_voicemail: bool = False
    supervisors: tuple[str, ...] = ()
    caller_id: str = ""


@dataclass(frozen=True)
class AgentSpec:
    name: str
    contact_uri: str
    phone: str | None
    attributes: dict[str, Any]

    def worker_attributes(self) -> dict[str, Any]:
        extra = {"phone": self.phone} if self.phone else {}
        return {**self.attributes, "contact_uri": self.contact_uri, **extra}


@dataclass(frozen=True)
class Spec:
    workspace_name: str
    prioritize_queue_order: str
    activities: tuple[tuple[str, bool, str | None], ...]
    queues: tuple[tuple[str, str], ...]
    workflow_name: str
    task_reservation_timeout: int
    filters: tuple[dict[str, Any], ...]
    default_filter: dict[str, Any] | None
    voice: VoiceSettings
    menu: Menu
    agents: tuple[AgentSpec, ...]
    # The contact center's own time zone (IANA name): where the dashboard's "today" starts and ends.
    timezone: str = "UTC"


@dataclass
class ContactCenter:
    """The spec with its sids: what the voice, SMS and web apps work with."""

    spec: Spec
    workspace_sid: str
    workflow_sid: str
    activity_sids: dict[str, str]
    role_sids: dict[str, str]
    queue_sids: dict[str, str] = field(default_factory=dict)

    @property
    def voice(self) -> VoiceSettings:
        return self.spec.voice

    @property
    def menu(self) -> Menu:
        return self.spec.menu

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.spec.timezone)

    def activity_for(self, role: str) -> str:
        return self.role_sids[role]


# -- reading the file -------------------------------------------------------------------------------

def read_spec(path: str | Path) -> Spec:
    """Parse and check a contact-center file; SpecError names the first problem and where it is (the
    setting, and the file's line when it can be found)."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    try:
        raw = tomllib.loads(content)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: {err}") from None
    try:
        return parse_spec(raw)
    except SpecError as err:
        line = line_of(content, str(err).split(":", 1)[0])
        if line is None:
            raise
        raise SpecError(f"{path}, line {line}: {err}") from None


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(content: str, where: str) -> int | None:
    """The line of a TOML file that holds the setting `where` (`workspace.timezone`, `queues[0].target_workers`),
    or the header of its table when the key itself is not there; None when neither is found."""
    wanted: list[str | int] = [int(index) if index else name for name, index in _PART.findall(where)]
    if not wanted or not isinstance(wanted[0], str):
        return None
    table: list[str | int] = []
    seen: dict[str, int] = {}
    best, best_depth = None, 0
    for number, line in enumerate(content.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names: list[str | int] = [part.strip() for part in header.group(2).split(".")]
            if header.group(1) == "[[":
                seen[header.group(2)] = seen.get(header.group(2), -1) + 1
                names.append(seen[header.group(2)])
            table = names
            found = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            found = table + key.group(1).split(".")
        if len(found) > best_depth and wanted[:len(found)] == found:
            best, best_depth = number, len(found)
    return best


_WORKSPACE_KEYS = ("name", "prioritize_queue_order", "timezone")
_ACTIVITY_KEYS = ("name", "available", "role")
_QUEUE_KEYS = ("name", "target_workers")
_WORKFLOW_KEYS = ("name", "task_reservation_timeout", "filters", "default_filter")
_FILTER_KEYS = ("name", "expression", "targets")
_AGENT_KEYS = ("name", "contact_uri", "phone", "attributes")
_MENU_KEYS = ("prompt_on_retry", "default_option", "options")
_OPTION_KEYS = ("digit", "words", "prompt", "attributes")
# Seconds: (smallest, largest). A ring shorter than 5 s is cut by Twilio; a recording is at most 4 hours.
_VOICE_SECONDS = {"ring_seconds": (5, 600), "wrap_up_seconds": (0, 86_400), "max_wait_seconds": (0, 86_400),
                  "voicemail_max_seconds": (1, 14_400)}


def parse_spec(raw: dict[str, Any]) -> Spec:
    """Check the whole file, down to the limits the engine will enforce, so that loading it cannot stop
    half way: every SpecError starts with the setting it is about (`queues[1].target_workers: ...`)."""
    _known(raw, ("workspace", "activities", "queues", "workflow", "voice", "menu", "agents", "timezone"), "")
    workspace = _table(raw, "workspace")
    if "timezone" in raw:
        raise SpecError("timezone: the contact center's time zone goes in [workspace] (workspace.timezone)")
    _known(workspace, _WORKSPACE_KEYS, "workspace")
    timezone = _timezone(workspace.get("timezone", "UTC"))
    order = workspace.get("prioritize_queue_order", "FIFO")
    order = order.upper() if isinstance(order, str) else order
    if order not in ("FIFO", "LIFO"):
        raise SpecError(f"workspace.prioritize_queue_order: {order!r} is not \"FIFO\" or \"LIFO\"")
    activities = []
    for index, item in enumerate(_tables(raw, "activities", "activities")):
        where = f"activities[{index}]"
        _known(item, _ACTIVITY_KEYS, where)
        role = item.get("role")
        if role is not None and role not in ROLES:
            raise SpecError(f"{where}.role: {role!r} is not one of {', '.join(ROLES)}")
        activities.append((_name(item, where), _flag(item, "available", where, False), role))
    _unique([name for name, _, _ in activities], "activities", "activity")
    _unique([role for _, _, role in activities if role], "activities", "role", "two activities have the role")
    roles = {role for _, _, role in activities if role}
    defaults = {"available": ("Available", True), "offline": ("Offline", False)}
    for role, (name, available) in defaults.items():
        if role not in roles:
            if name in {n for n, _, _ in activities}:
                raise SpecError(f"activities: {name!r} is listed without role = \"{role}\", and no other "
                                f"activity has that role; add role = \"{role}\" to it")
            activities.append((name, available, role))
    for _, available, role in activities:
        if role and available != (role == "available"):
            raise SpecError(f"activities: the {role!r} activity must have available = {str(role == 'available').lower()}")
    queue_specs = []
    for index, item in enumerate(_tables(raw, "queues", "queues")):
        where = f"queues[{index}]"
        _known(item, _QUEUE_KEYS, where)
        target = _string(item, "target_workers", where, "1 == 1")
        _check_expression(target, f"{where}.target_workers")
        queue_specs.append((_name(item, where), target))
    queue_names = [name for name, _ in queue_specs]
    _unique(queue_names, "queues", "queue")
    if not queue_names:
        raise SpecError("queues: at least one queue is needed")
    workflow = _table(raw, "workflow")
    _known(workflow, _WORKFLOW_KEYS, "workflow")
    filters = []
    for index, item in enumerate(_tables(workflow, "filters", "workflow.filters")):
        where = f"workflow.filters[{index}]"
        _known(item, _FILTER_KEYS, where)
        name = _name(item, where)
        expression = _string(item, "expression", where)
        _check_expression(expression, f"{where}.expression")
        targets = _tables(item, "targets", f"{where}.targets")
        if not targets:
            raise SpecError(f"{where}.targets: at least one target is needed")
        for t_index, target in enumerate(targets):
            _check_queue(target, set(queue_names), f"{where}.targets[{t_index}]")
        filters.append({"name": name, "expression": expression, "targets": targets})
    _unique([item["name"] for item in filters], "workflow.filters", "filter")
    default_filter = workflow.get("default_filter")
    if default_filter is not None:
        _check_queue(default_filter, set(queue_names), "workflow.default_filter")
        if "timeout" in default_filter:
            raise SpecError("workflow.default_filter.timeout: TaskRouter's default filter has no timeout; "
                            "set voice.max_wait_seconds")
    agents = []
    for index, item in enumerate(_tables(raw, "agents", "agents")):
        where = f"agents[{index}]"
        _known(item, _AGENT_KEYS, where)
        contact_uri = _string(item, "contact_uri", where)
        if not contact_uri.startswith(("client:", "sip:")):
            normalized = to_e164(contact_uri)
            if normalized is None:
                raise SpecError(f"{where}.contact_uri: {contact_uri!r} is not a phone number, client: or sip: address")
            contact_uri = normalized
        phone = _string(item, "phone", where, "") or None
        if phone is not None and to_e164(phone) is None:
            raise SpecError(f"{where}.phone: {phone!r} is not a phone number")
        agent = AgentSpec(_name(item, where), contact_uri, to_e164(phone), _attributes(item, where))
        try:
            validation.attributes(json.dumps(agent.worker_attributes()))
        except RoutingError as err:
            raise SpecError(f"{where}.attributes: with contact_uri and phone, the worker's {err}") from None
        agents.append(agent)
    _unique([agent.name for agent in agents], "agents", "agent")
    voice = _voice(_table(raw, "voice", required=False))
    reservation_timeout = workflow.get("task_reservation_timeout", 120)
    if isinstance(reservation_timeout, bool) or not isinstance(reservation_timeout, int) \
            or not 1 <= reservation_timeout <= 86_400:
        raise SpecError(f"workflow.task_reservation_timeout: {reservation_timeout!r} is not a number of seconds "
                        "from 1 to 86400")
    # The reservation must outlast the ring and the agent's key press, or answered calls find it gone.
    needed = voice.ring_seconds + (CONFIRM_SECONDS if voice.agent_confirm else 0)
    if reservation_timeout < needed:
        raise SpecError(f"workflow.task_reservation_timeout: {reservation_timeout} s is shorter than the ring "
                        f"({voice.ring_seconds} s) and the agent's answer; use at least {needed}")
    spec = Spec(
        workspace_name=_name(workspace, "workspace"),
        prioritize_queue_order=order,
        activities=tuple(activities),
        queues=tuple(queue_specs),
        workflow_name=_name(workflow, "workflow"),
        task_reservation_timeout=reservation_timeout,
        filters=tuple(filters),
        default_filter=default_filter,
        voice=voice,
        menu=_menu(_table(raw, "menu", required=False)),
        agents=tuple(agents),
        timezone=timezone,
    )
    _check_workflow(spec)
    return spec


def _check_workflow(spec: Spec) -> None:
    """The engine's own check of the workflow this file makes (timeouts, priorities, order_by, skip_if...),
    with stand-in queue sids, so that a file the engine would refuse stops before anything is written."""
    stand_ins = {name: "WQ" + hashlib.sha256(name.encode()).hexdigest()[:32] for name, _ in spec.queues}
    try:
        workflows.parse_configuration(json.dumps(_workflow_configuration(spec, stand_ins)))
    except RoutingError as err:
        raise SpecError(f"workflow: {str(err).removeprefix('Configuration: ')}") from None


def _timezone(name: Any) -> str:
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        if not available_timezones():
            raise SpecError(f"workspace.timezone: {name!r}: this machine has no time zone database; install the "
                            "tzdata package (pip install tzdata)") from None
        raise SpecError(f"workspace.timezone: {name!r} is not a time zone: use an IANA name such as "
                        "\"America/New_York\" or \"Europe/Paris\" (or \"UTC\")") from None
    return name


def _voice(raw: dict[str, Any]) -> VoiceSettings:
    known = VoiceSettings.__dataclass_fields__
    _known(raw, tuple(known), "voice")
    values: dict[str, Any] = {}
    for name, spec_field in known.items():
        if name not in raw:
            continue
        where = f"voice.{name}"
        value = raw[name]
        if name == "supervisors":
            if not isinstance(value, list):
                raise SpecError(f"{where}: a list of phone numbers is expected")
            supervisors = []
            for number in value:
                normalized = to_e164(number) if isinstance(number, str) else None
                if normalized is None:
                    raise SpecError(f"{where}: {number!r} is not a phone number")
                supervisors.append(normalized)
            values[name] = tuple(supervisors)
        elif name == "queue_max_size":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5000:
                raise SpecError(f"{where}: {value!r} is not a number of callers from 1 to 5000 (Twilio's largest)")
            values[name] = value
        elif name in _VOICE_SECONDS:
            smallest, largest = _VOICE_SECONDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not smallest <= value <= largest:
                raise SpecError(f"{where}: {value!r} is not a number of seconds from {smallest} to {largest}")
            values[name] = value
        elif spec_field.type == "bool":
            values[name] = _flag(raw, name, "voice", False)
        else:
            values[name] = _string(raw, name, "voice", "")
    return VoiceSettings(**values)


def _menu(raw: dict[str, Any]) -> Menu:
    _known(raw, _MENU_KEYS, "menu")
    options = []
    for index, item in enumerate(_tables(raw, "options", "menu.options")):
        where = f"menu.options[{index}]"
        _known(item, _OPTION_KEYS, where)
        digit = str(item.get("digit", ""))
        if len(digit) != 1 or digit not in "0123456789*#":
            raise SpecError(f"{where}.digit: one key (0-9, * or #) is expected")
        words = item.get("words", [])
        if not isinstance(words, list) or not all(isinstance(word, str) and word.strip() for word in words):
            raise SpecError(f"{where}.words: a list of words is expected")
        options.append(MenuOption(digit, tuple(words), _string(item, "prompt", where), _attributes(item, where)))
    digits = [option.digit for option in options]
    if len(set(digits)) != len(digits):
        raise SpecError("menu.options: two options use the same digit")
    default = raw.get("default_option")
    default = str(default) if default is not None else (digits[0] if digits else None)
    if options and default not in digits:
        raise SpecError(f"menu.default_option: {default!r} is not the digit of an option")
    return Menu(tuple(options), default, _string(raw, "prompt_on_retry", "menu", Menu.prompt_on_retry))


def _table(raw: dict[str, Any], name: str, *, required: bool = True) -> dict[str, Any]:
    value = raw.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"[{name}] is missing" if value is None else f"{name}: a table ([{name}]) is expected")
    return value


def _tables(raw: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """A list of tables (`[[queues]]`, or `targets = [{...}, {...}]`); absent is empty."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SpecError(f"{where}: a list of tables is expected")
    return value


def _known(raw: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """A misspelt setting is refused rather than ignored (`target_worker` would put everyone in the queue)."""
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        setting = f"{where}.{unknown[0]}" if where else unknown[0]
        raise SpecError(f"{setting}: unknown setting (known: {', '.join(keys)})")


def _string(raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None or (default is None and isinstance(value, str) and not value.strip()):
        raise SpecError(f"{where}.{key} is missing")
    if not isinstance(value, str):
        raise SpecError(f"{where}.{key}: {value!r} is not a string (put it in quotes)")
    return value


def _name(raw: dict[str, Any], where: str) -> str:
    name = _string(raw, "name", where)
    if len(name) > validation.MAX_FRIENDLY_NAME:
        raise SpecError(f"{where}.name: {len(name)} characters; TaskRouter's limit is {validation.MAX_FRIENDLY_NAME}")
    return name


def _flag(raw: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{where}.{key}: {value!r} is not true or false")
    return value


def _attributes(raw: dict[str, Any], where: str) -> dict[str, Any]:
    value = raw.get("attributes", {})
    if not isinstance(value, dict):
        raise SpecError(f"{where}.attributes: a table is expected ({{ key = \"value\" }})")
    return value


def _unique(names: list[str], where: str, what: str, message: str | None = None) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise SpecError(f"{where}: {message or f'two {what} entries are named'} {name!r}")
        seen.add(name)


def _check_expression(text: str, where: str) -> None:
    try:
        compile_expression(text)
    except ExpressionError as err:
        raise SpecError(f"{where}: {err}") from None


def _check_queue(target: Any, names: set[str], where: str) -> None:
    if not isinstance(target, dict):
        raise SpecError(f"{where}: a table such as {{ queue = \"Sales\" }} is expected")
    queue = target.get("queue")
    if not isinstance(queue, str) or queue not in names:
        raise SpecError(f"{where}.queue: {queue!r} is not one of the [[queues]]")
    if "expression" in target:
        if not isinstance(target["expression"], str):
            raise SpecError(f"{where}.expression: {target['expression']!r} is not a string (put it in quotes)")
        _check_expression(target["expression"], f"{where}.expression")


# -- applying it to the engine ----------------------------------------------------------------------

def apply(router: Router, spec: Spec, *, account_sid: str, callback_base_url: str) -> tuple[ContactCenter, list[str]]:
    """Make the workspace match the spec; returns it resolved, and what was changed (for the operator).

    The spec was checked against the engine's limits when it was read; what the engine may still refuse
    depends on the database (an activity that exists with the other availability). Each change is its own
    transaction, so the SpecError says what was done before the refusal: loading again, once the file or
    the database is mended, does the rest (loading is idempotent)."""
    changes: list[str] = []
    try:
        return _apply(router, spec, account_sid, callback_base_url, changes), changes
    except (SpecError, RoutingError) as err:
        done = "; ".join(changes) if changes else "nothing was changed"
        raise SpecError(f"{err} (before this: {done})") from None


def _apply(router: Router, spec: Spec, account_sid: str, callback_base_url: str, changes: list[str]) -> ContactCenter:
    base = callback_base_url.rstrip("/")
    event_url, assignment_url = f"{base}/voice/events", f"{base}/voice/assignment"
    workspace = _find_workspace(router, spec.workspace_name, account_sid)
    if workspace is None:
        workspace = workspaces.create_workspace(
            router, account_sid=account_sid, friendly_name=spec.workspace_name, multi_task_enabled=False,
            prioritize_queue_order=spec.prioritize_queue_order, event_callback_url=event_url,
            events_filter=",".join(VOICE_EVENTS))
        changes.append(f"created workspace {spec.workspace_name} ({workspace.sid})")
    ws = workspace.sid

    existing = _by_name(router, Activity, ws)
    activity_sids: dict[str, str] = {}
    role_sids: dict[str, str] = {}
    for name, available, role in spec.activities:
        activity = existing.get(name)
        if activity is None:
            activity = workspaces.create_activity(router, ws, friendly_name=name, available=available)
            changes.append(f"created activity {name}")
        elif activity.available != available:
            raise SpecError(f"activity {name!r} exists with available = {activity.available}; TaskRouter cannot "
                            "change that: rename it in the file")
        activity_sids[name] = activity.sid
        if role:
            role_sids[role] = activity.sid
    for name, activity in existing.items():
        activity_sids.setdefault(name, activity.sid)
    if (workspace.timeout_activity_sid != role_sids["offline"] or workspace.multi_task_enabled
            or workspace.event_callback_url != event_url or workspace.events_filter != ",".join(VOICE_EVENTS)
            or workspace.prioritize_queue_order != spec.prioritize_queue_order):
        workspaces.update_workspace(
            router, ws, timeout_activity_sid=role_sids["offline"], default_activity_sid=role_sids["offline"],
            multi_task_enabled=False, event_callback_url=event_url, events_filter=",".join(VOICE_EVENTS),
            prioritize_queue_order=spec.prioritize_queue_order)
        changes.append("updated workspace settings")

    busy = role_sids.get("busy")
    existing_queues = _by_name(router, TaskQueue, ws)
    queue_sids = {}
    for name, target in spec.queues:
        queue = existing_queues.get(name)
        if queue is None:
            queue = queues.create_task_queue(router, ws, friendly_name=name, target_workers=target,
                                             assignment_activity_sid=busy)
            changes.append(f"created queue {name}")
        elif queue.target_workers != target or queue.assignment_activity_sid != busy:
            queue = queues.update_task_queue(router, ws, queue.sid, target_workers=target,
                                             assignment_activity_sid=busy)
            changes.append(f"updated queue {name}")
        queue_sids[name] = queue.sid

    configuration = json.dumps(_workflow_configuration(spec, queue_sids), sort_keys=True)
    workflow = _by_name(router, Workflow, ws).get(spec.workflow_name)
    if workflow is None:
        workflow = workflows.create_workflow(
            router, ws, friendly_name=spec.workflow_name, configuration=configuration,
            assignment_callback_url=assignment_url, task_reservation_timeout=spec.task_reservation_timeout)
        changes.append(f"created workflow {spec.workflow_name}")
    elif (workflow.configuration != configuration or workflow.assignment_callback_url != assignment_url
          or workflow.task_reservation_timeout != spec.task_reservation_timeout):
        workflow = workflows.update_workflow(
            router, ws, workflow.sid, configuration=configuration, assignment_callback_url=assignment_url,
            task_reservation_timeout=spec.task_reservation_timeout, re_evaluate_tasks=True)
        changes.append(f"updated workflow {spec.workflow_name}")

    existing_workers = _by_name(router, Worker, ws)
    for agent in spec.agents:
        worker = existing_workers.get(agent.name)
        attributes = agent.worker_attributes()
        if worker is None:
            workers.create_worker(router, ws, friendly_name=agent.name, activity_sid=role_sids["offline"],
                                  attributes=json.dumps(attributes))
            changes.append(f"created agent {agent.name}")
        elif json.loads(worker.attributes) != attributes:
            workers.update_worker(router, ws, worker.sid, attributes=json.dumps(attributes))
            changes.append(f"updated agent {agent.name}")
    return ContactCenter(spec, ws, workflow.sid, activity_sids, role_sids, queue_sids)


def _workflow_configuration(spec: Spec, queue_sids: dict[str, str]) -> dict[str, Any]:
    def target(raw: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in raw.items() if k != "queue"}, "queue": queue_sids[raw["queue"]]}

    routing: dict[str, Any] = {"filters": [
        {"filter_friendly_name": item["name"], "expression": item["expression"],
         "targets": [target(t) for t in item["targets"]]}
        for item in spec.filters
    ]}
    if spec.default_filter:
        routing["default_filter"] = target(spec.default_filter)
    return {"task_routing": routing}


def _find_workspace(router: Router, name: str, account_sid: str) -> Workspace | None:
    with router.read() as session:
        return session.scalars(select(Workspace).where(Workspace.friendly_name == name,
                                                       Workspace.account_sid == account_sid)
                               .order_by(Workspace.date_created)).first()


def _by_name(router: Router, model: type, workspace_sid: str) -> dict[str, Any]:
    with router.read() as session:
        rows = session.scalars(select(model).where(model.workspace_sid == workspace_sid)).all()
    return {row.friendly_name: row for row in rows}


def resolve(router: Router, spec: Spec, account_sid: str) -> ContactCenter:
    """The loaded contact center's sids, found by the names in the spec (nothing is written)."""
    workspace = _find_workspace(router, spec.workspace_name, account_sid)
    if workspace is None:
        raise NotLoaded(f"no workspace named {spec.workspace_name!r}: run `flask --app app contact-center load`")
    activities = {name: row.sid for name, row in _by_name(router, Activity, workspace.sid).items()}
    workflow = _by_name(router, Workflow, workspace.sid).get(spec.workflow_name)
    if workflow is None:
        raise NotLoaded(f"no workflow named {spec.workflow_name!r}: run `flask --app app contact-center load`")
    roles = {role: activities[name] for name, _, role in spec.activities if role and name in activities}
    missing = [role for role in ("available", "offline") if role not in roles]
    if missing:
        raise NotLoaded(f"the {missing[0]} activity is missing: run `flask --app app contact-center load`")
    queue_sids = {name: row.sid for name, row in _by_name(router, TaskQueue, workspace.sid).items()}
    return ContactCenter(spec, workspace.sid, workflow.sid, activities, roles, queue_sids)


# -- the running app --------------------------------------------------------------------------------

def account_sid(app: Flask) -> str:
    """The Twilio account that owns the contact center's workspace (its auth token signs every webhook)."""
    configured = app.config.get("TWILIO_ACCOUNT_SID")
    if not configured or not app.config.get("TWILIO_AUTH_TOKEN"):
        raise NotLoaded("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or start in demo mode with the phone simulator)")
    return configured


def current(app: Flask | None = None) -> ContactCenter:
    """The app's contact center, resolved once per process (and again after `forget`)."""
    app = app or current_app
    center = app.extensions.get("contact_center")
    if center is None:
        spec = app.extensions.get("contact_center_spec") or read_spec(app.config["CONTACT_CENTER_FILE"])
        center = resolve(get_router(app), spec, account_sid(app))
        app.extensions["contact_center"] = center
    return center


def load(app: Flask, path: str | None = None) -> tuple[ContactCenter, list[str]]:
    """Read the file and apply it; the app uses the result from now on."""
    spec = read_spec(path or app.config["CONTACT_CENTER_FILE"])
    center, changes = apply(get_router(app), spec, account_sid=account_sid(app),
                            callback_base_url=callback_base_url(app))
    app.extensions["contact_center_spec"] = spec
    app.extensions["contact_center"] = center
    return center, changes


def callback_base_url(app: Flask) -> str:
    """Where the engine sends assignment and event callbacks for the voice app."""
    return config.callback_base_url(app.config)


contact_center_cli = AppGroup("contact-center", help="Load and inspect the contact center's configuration.")


@contact_center_cli.command("load")
@click.argument("path", required=False)
def load_command(path: str | None) -> None:
    """Create or update the workspace, activities, queues, workflow and agents from the file (idempotent)."""
    try:
        center, changes = load(current_app, path)
    except (SpecError, NotLoaded) as err:
        raise click.ClickException(str(err)) from None
    for change in changes:
        click.echo(change)
    click.echo(f"Contact center {center.spec.workspace_name!r} is up to date "
               f"(workspace {center.workspace_sid}, workflow {center.workflow_sid}).")


def init_app(app: Flask) -> None:
    app.cli.add_command(contact_center_cli)


def load_at_start(app: Flask) -> None:
    """`python app.py`: load the file if there is one and Twilio credentials to own it (one process only)."""
    path = Path(app.config["CONTACT_CENTER_FILE"])
    if not path.exists():
        return
    try:
        with app.app_context():
            center, changes = load(app)
    except (SpecError, NotLoaded) as err:
        print(f"Contact center not loaded: {err}", flush=True)
        return
    for change in changes:
        print(change, flush=True)
    print(f"Contact center {center.spec.workspace_name!r} loaded from {path}.", flush=True)
