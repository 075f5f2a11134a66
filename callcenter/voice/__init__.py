"""The voice contact center: Twilio's webhooks for calls, turned into engine operations and TwiML.

A caller goes: `/voice/incoming` (menu) -> `/voice/menu` (task created, `<Enqueue>`) -> `/voice/wait`
(hold) -> dequeued to `/voice/caller/connect` (conference named after the task) when an agent has
answered `/voice/agent/answer` and pressed 1 at `/voice/agent/confirm`. Agents are rung from the
engine's assignment callback `/voice/assignment`; the engine's event callback `/voice/events` sends
callers whose task was canceled to voicemail and stops agent phones that no longer need to ring.
TaskRouter's voice instructions for REST API users (dequeue, call, redirect, conference) are carried
out by instructions.py, instruction_calls.py and instruction_legs.py, under `/voice/instructions/`.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from callcenter.database import get_router

bp = Blueprint("voice", __name__, url_prefix="/voice")

from . import agents, callers, events, instruction_calls, instruction_legs  # noqa: E402,F401  (routes register on bp)
from .flow import register_timers  # noqa: E402
from .instructions import register as register_instructions  # noqa: E402
from .retention import purge_call_records  # noqa: E402


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_timers()
    register_instructions(app)  # TaskRouter's dequeue/call/redirect/conference for REST API users
    call_retention = app.extensions.get("call_retention")  # CALL_RETENTION_DAYS, checked by database.init_app
    get_router(app).purgers.append(
        ("call records", lambda router: purge_call_records(router, call_retention)))
    from .numbers import twilio_cli

    app.cli.add_command(twilio_cli)
