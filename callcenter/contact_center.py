"""The contact center's shape, from a TOML file, loaded into the routing engine without destroying anything.

`read_spec(path)` parses and checks the file; `apply(router, spec, ...)` makes the workspace match it:
what exists (found by name) is updated, what is missing is created, nothing is deleted, and no sid
changes, so agents keep their state and waiting callers keep their tasks. `current(app)` gives the
running app the loaded contact center (sids resolved once per process).
"""

from __future__ import annotations

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
from callcenter.routing import Router, queues, workers, workflows, workspaces
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


def parse_spec(raw: dict[str, Any]) -> Spec:
    workspace = _table(raw, "workspace")
    if "timezone" in raw:
        raise SpecError("timezone: the contact center's time zone goes in [workspace] (workspace.timezone)")
    timezone = _timezone(workspace.get("timezone", "UTC"))
    activities = []
    for index, item in enumerate(raw.get("activities", [])):
        where = f"activities[{index}]"
        role = item.get("role")
        if role is not None and role not in ROLES:
            raise SpecError(f"{where}.role: {role!r} is not one of {', '.join(ROLES)}")
        activities.append((_text(item, "name", where), bool(item.get("available", False)), role))
    roles = {role for _, _, role in activities if role}
    defaults = {"available": ("Available", True), "offline": ("Offline", False)}
    for role, (name, available) in defaults.items():
        if role not in roles:
            activities.append((name, available, role))
    for role, (_, available, _) in {r: a for a in activities for r in [a[2]] if r}.items():
        if available != (role == "available"):
            raise SpecError(f"activities: the {role!r} activity must have available = {role == 'available'}")
    queue_specs = []
    for index, item in enumerate(raw.get("queues", [])):
        where = f"queues[{index}]"
        target = item.get("target_workers", "1 == 1")
        _check_expression(target, f"{where}.target_workers")
        queue_specs.append((_text(item, "name", where), target))
    queue_names = {name for name, _ in queue_specs}
    if not queue_names:
        raise SpecError("queues: at least one queue is needed")
    workflow = _table(raw, "workflow")
    filters = []
    for index, item in enumerate(workflow.get("filters", [])):
        where = f"workflow.filters[{index}]"
        _check_expression(_text(item, "expression", where), f"{where}.expression")
        targets = item.get("targets") or []
        if not targets:
            raise SpecError(f"{where}.targets: at least one target is needed")
        for t_index, target in enumerate(targets):
            _check_queue(target, queue_names, f"{where}.targets[{t_index}]")
        filters.append({"name": _text(item, "name", where), "expression": item["expression"], "targets": targets})
    default_filter = workflow.get("default_filter")
    if default_filter is not None:
        _check_queue(default_filter, queue_names, "workflow.default_filter")
        if "timeout" in default_filter:
            raise SpecError("workflow.default_filter.timeout: TaskRouter's default filter has no timeout; "
                            "set voice.max_wait_seconds")
    agents = []
    for index, item in enumerate(raw.get("agents", [])):
        where = f"agents[{index}]"
        contact_uri = _text(item, "contact_uri", where)
        if not contact_uri.startswith(("client:", "sip:")):
            normalized = to_e164(contact_uri)
            if normalized is None:
                raise SpecError(f"{where}.contact_uri: {contact_uri!r} is not a phone number, client: or sip: address")
            contact_uri = normalized
        phone = item.get("phone")
        if phone is not None and to_e164(phone) is None:
            raise SpecError(f"{where}.phone: {phone!r} is not a phone number")
        attributes = item.get("attributes", {})
        if not isinstance(attributes, dict):
            raise SpecError(f"{where}.attributes must be a table")
        agents.append(AgentSpec(_text(item, "name", where), contact_uri, to_e164(phone), attributes))
    voice = _voice(raw.get("voice", {}))
    reservation_timeout = int(workflow.get("task_reservation_timeout", 120))
    # The reservation must outlast the ring and the agent's key press, or answered calls find it gone.
    needed = voice.ring_seconds + (CONFIRM_SECONDS if voice.agent_confirm else 0)
    if reservation_timeout < needed:
        raise SpecError(f"workflow.task_reservation_timeout: {reservation_timeout} s is shorter than the ring "
                        f"({voice.ring_seconds} s) and the agent's answer; use at least {needed}")
    return Spec(
        workspace_name=_text(workspace, "name", "workspace"),
        prioritize_queue_order=workspace.get("prioritize_queue_order", "FIFO"),
        activities=tuple(activities),
        queues=tuple(queue_specs),
        workflow_name=_text(workflow, "name", "workflow"),
        task_reservation_timeout=reservation_timeout,
        filters=tuple(filters),
        default_filter=default_filter,
        voice=voice,
        menu=_menu(raw.get("menu", {})),
        agents=tuple(agents),
        timezone=timezone,
    )


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
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"voice.{unknown[0]}: unknown setting")
    values = dict(raw)
    supervisors = []
    for number in values.get("supervisors", []):
        normalized = to_e164(number)
        if normalized is None:
            raise SpecError(f"voice.supervisors: {number!r} is not a phone number")
        supervisors.append(normalized)
    values["supervisors"] = tuple(supervisors)
    for name in ("ring_seconds", "wrap_up_seconds", "voicemail_max_seconds", "max_wait_seconds"):
        if name in values and (not isinstance(values[name], int) or values[name] < 0):
            raise SpecError(f"voice.{name}: a number of seconds is expected")
    return VoiceSettings(**values)


def _menu(raw: dict[str, Any]) -> Menu:
    options = []
    for index, item in enumerate(raw.get("options", [])):
        where = f"menu.options[{index}]"
        digit = str(item.get("digit", ""))
        if len(digit) != 1 or digit not in "0123456789*#":
            raise SpecError(f"{where}.digit: one key (0-9, * or #) is expected")
        attributes = item.get("attributes", {})
        if not isinstance(attributes, dict):
            raise SpecError(f"{where}.attributes must be a table")
        options.append(MenuOption(digit, tuple(item.get("words", [])), _text(item, "prompt", where), attributes))
    digits = [option.digit for option in options]
    if len(set(digits)) != len(digits):
        raise SpecError("menu.options: two options use the same digit")
    default = raw.get("default_option")
    default = str(default) if default is not None else (digits[0] if digits else None)
    if options and default not in digits:
        raise SpecError(f"menu.default_option: {default!r} is not the digit of an option")
    return Menu(tuple(options), default, raw.get("prompt_on_retry", Menu.prompt_on_retry))


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise SpecError(f"[{name}] is missing")
    return value


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{key} is missing")
    return value


def _check_expression(text: str, where: str) -> None:
    try:
        compile_expression(text)
    except ExpressionError as err:
        raise SpecError(f"{where}: {err}") from None


def _check_queue(target: Any, names: set[str], where: str) -> None:
    if not isinstance(target, dict) or target.get("queue") not in names:
        queue = target.get("queue") if isinstance(target, dict) else target
        raise SpecError(f"{where}.queue: {queue!r} is not one of the [[queues]]")
    if "expression" in target:
        _check_expression(target["expression"], f"{where}.expression")


# -- applying it to the engine ----------------------------------------------------------------------

def apply(router: Router, spec: Spec, *, account_sid: str, callback_base_url: str) -> tuple[ContactCenter, list[str]]:
    """Make the workspace match the spec; returns it resolved, and what was changed (for the operator)."""
    changes: list[str] = []
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
    center = ContactCenter(spec, ws, workflow.sid, activity_sids, role_sids, queue_sids)
    return center, changes


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
