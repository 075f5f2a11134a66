"""The demo page (`/demo`, demo mode only): place a test call and watch it routed, answered and completed.

`POST /demo/calls` (form or JSON `digit`) has a simulated caller dial the contact center's number and
press that menu key; `GET /demo/state.json` gives the latest test calls with what happened to each
(the caller's call and the agent's phone, from the simulator's per-call logs) and the agents'
activities from the engine. The page polls it every second.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from sqlalchemy import select

from callcenter.contact_center import NotLoaded, SpecError
from callcenter.simulator.parties import Caller

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")
_numbers = itertools.count(1)
SHOWN_CALLS = 8


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _sim():
    return current_app.extensions["simulator"]


def _menu() -> list[dict[str, str]]:
    from callcenter.contact_center import current

    try:
        options = current().menu.options
    except (NotLoaded, SpecError):  # no contact center: a test call still hears the apology
        return [{"digit": "", "label": "Call"}]
    return [{"digit": option.digit, "label": option.prompt} for option in options]


@bp.get("")
def page():
    return render_template("demo.html", menu=_menu())


@bp.post("/calls")
def place_call():
    # A page on another site must not place calls through the browser of someone running the demo.
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/") != request.host_url.rstrip("/"):
        return jsonify(code=20403, message="Test calls can only be placed from this site", more_info="",
                       status=403), 403
    values = request.get_json(silent=True) or request.form
    digit = str(values.get("digit", "")).strip()
    if digit and (len(digit) != 1 or digit not in "0123456789*#"):
        return jsonify(code=20001, message="digit must be one key: 0-9, * or #", more_info="", status=400), 400
    patience = values.get("patience")
    try:
        patience = float(patience) if patience not in (None, "") else None
    except ValueError:
        patience = -1.0
    if patience is not None and not (math.isfinite(patience) and 0 <= patience <= 3600):
        return jsonify(code=20001, message="patience must be a number of seconds from 0 to 3600", more_info="",
                       status=400), 400
    caller = Caller(f"+1415555{next(_numbers) % 10000:04d}", digits=digit or None, patience=patience, voicemail=True)
    call = _sim().place_call(caller)
    return jsonify(call_sid=call.sid, status=call.status), 201


@bp.get("/state.json")
def state():
    sim = _sim()
    with sim._lock:
        calls = sorted((c for c in sim.calls.values() if c.direction == "inbound"), key=lambda c: c.date_created,
                       reverse=True)[:SHOWN_CALLS]
        legs = [c for c in sim.calls.values() if c.direction != "inbound"]
    who = {phone: name for name, phone in _agents_by_contact().items()}
    caller_of_leg = _caller_of_agent_legs([leg.sid for leg in legs])
    shown = []
    for call in calls:
        related = [leg for leg in legs if caller_of_leg.get(leg.sid) == call.sid]
        entries = [(entry, "caller") for entry in list(call.log)]
        for leg in related:
            entries += [(entry, who.get(leg.to, leg.to)) for entry in list(leg.log)]
        entries.sort(key=lambda pair: pair[0]["at"])
        lines = [{"at": entry["at"][11:], "who": party, "text": text} for entry, party in entries
                 if (text := describe(entry))]
        shown.append({"call_sid": call.sid, "from": call.from_, "status": call.status, "outcome": call.outcome,
                      "started": call.date_created.strftime("%H:%M:%S"), "log": lines})
    return jsonify(calls=shown, agents=_agents(), now=sim.now().strftime("%H:%M:%S"))


def _caller_of_agent_legs(leg_sids: list[str]) -> dict[str, str]:
    """Which caller each agent's phone call was for, as the voice app recorded it (several calls may overlap)."""
    from callcenter.database import get_router
    from callcenter.voice.models import AgentLeg, Call

    if not leg_sids:
        return {}
    with get_router().read() as session:
        rows = session.execute(select(AgentLeg.call_sid, Call.call_sid).join(Call, Call.task_sid == AgentLeg.task_sid)
                               .where(AgentLeg.call_sid.in_(leg_sids))).all()
    return dict(rows)


def _agents_by_contact() -> dict[str, str]:
    from callcenter.contact_center import current

    try:
        return {agent.name: agent.contact_uri for agent in current().spec.agents}
    except (NotLoaded, SpecError):
        return {}


def _agents() -> list[dict[str, Any]]:
    from callcenter.contact_center import current
    from callcenter.database import get_router
    from callcenter.routing.models import Activity, Worker

    try:
        center = current()
    except (NotLoaded, SpecError):
        return []
    with get_router().read() as session:
        rows = session.execute(select(Worker.friendly_name, Activity.friendly_name)
                               .join(Activity, Activity.sid == Worker.activity_sid)
                               .where(Worker.workspace_sid == center.workspace_sid)
                               .order_by(Worker.friendly_name)).all()
    phones = _sim().phones
    contacts = _agents_by_contact()
    out = []
    for name, activity in rows:
        phone = phones.get(contacts.get(name, ""))
        out.append({"name": name, "activity": activity, "on_phone": bool(phone and phone.active_calls)})
    return out


def describe(entry: dict[str, Any]) -> str | None:
    """One readable line for a log entry (None: not worth showing)."""
    kind = entry["kind"]
    if kind == "status":
        return f"call {entry['status']}"
    if kind == "webhook":
        path = entry["url"].split("//", 1)[-1].split("/", 1)[-1].split("?")[0]
        return f"{entry['purpose']}: {entry['method']} /{path} -> {entry['status']}"
    if kind == "twiml":
        if entry.get("nested_in"):
            return None
        text = entry.get("text") or ", ".join(n.get("text") or n["noun"] for n in entry.get("nested", []))
        return f"<{entry['verb']}> {text or ''}".strip()
    if kind == "gather-input":
        return "pressed " + (entry.get("Digits") or entry.get("SpeechResult") or "nothing")
    if kind == "enqueued":
        return f"waiting in queue {entry['queue']} (position {entry['position']})"
    if kind == "dequeued":
        return "taken out of the queue for the agent"
    if kind == "left-queue":
        return f"left the queue: {entry['result']} after {entry['queue_time']} s"
    if kind == "connected":
        return "connected: talking"
    if kind in ("conference-join", "conference-leave"):
        return f"{kind.split('-')[1]}s conference {entry['conference']}"
    if kind == "hangup":
        return f"hangs up ({entry['reason']})"
    if kind == "recording":
        return f"leaves a voicemail: {entry['text']}"
    if kind == "error":
        return f"error {entry['code']}: {entry['message']}"
    return None

