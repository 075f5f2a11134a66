"""Demo mode: `python app.py` without Twilio credentials runs the contact center against the phone simulator.

The simulator is mounted in the same server under `/simulator` (its REST base URL becomes
TWILIO_API_BASE_URL, its credentials the app's Twilio credentials) and runs in real time; the demo
contact center (demo/contact-center.toml) is loaded, its agents' phones are simulated (they ring
a few seconds, the agent presses 1 and talks for a minute) and every agent starts Available. The
page at `/demo` places test calls and shows each one being routed, answered and completed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from callcenter.config import SettingError
from callcenter.routing.db import DEFAULT_DATABASE_URL

DEMO_ACCOUNT_SID = "AC" + "de" * 16
DEMO_NUMBER = "+15550100000"
DEMO_CONTACT_CENTER = str(Path(__file__).resolve().parents[2] / "demo" / "contact-center.toml")
MOUNT = "/simulator"
ANSWER_AFTER_SECONDS = 3.0
TALK_SECONDS = 60.0


def wanted(config: dict) -> bool:
    """Demo mode when no Twilio credentials are configured (DEMO=false turns it off).

    On its own, only where it cannot surprise anyone: the default SQLite file and a loopback address. A
    production database with a typo in its credentials, or a public interface, needs DEMO=true: demo mode
    creates a supervisor sign-in and lets anyone who reaches /demo place calls.
    """
    choice = os.environ.get("DEMO", "").strip().lower()
    if choice not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
        raise SettingError(f"DEMO must be true or false (also 1/0, yes/no, on/off), not {os.environ['DEMO']!r}")
    if choice in ("0", "false", "no", "off"):
        return False
    if config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN"):
        return False
    if choice in ("1", "true", "yes", "on"):
        return True
    local = os.environ.get("HOST", "127.0.0.1") in ("127.0.0.1", "localhost", "::1")
    if config.get("DATABASE_URL") != DEFAULT_DATABASE_URL or not local:
        print("No Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or DEMO=true for demo mode "
              "on this database/address.", flush=True)
        return False
    return True


def settings(host: str, port: int) -> dict:
    """The app's configuration in demo mode: the simulator is its Twilio, on the same port."""
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    return {
        "DEMO_MODE": True,
        "TWILIO_ACCOUNT_SID": DEMO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "TWILIO_API_BASE_URL": base + MOUNT,
        "TWILIO_PHONE_NUMBER": DEMO_NUMBER,
        "PUBLIC_BASE_URL": base,
        "CONTACT_CENTER_FILE": os.environ.get("CONTACT_CENTER_FILE") or DEMO_CONTACT_CENTER,
    }


def start(app: Flask) -> None:
    """Mount the simulator, give every agent a simulated phone, make them Available, and start the clock."""
    from callcenter.contact_center import NotLoaded, SpecError, current
    from callcenter.database import get_router
    from callcenter.routing import workers
    from callcenter.routing.models import Worker
    from callcenter.simulator import page
    from callcenter.simulator.clock import WallClock
    from callcenter.simulator.server import create_simulator, simulator_of
    from callcenter.simulator.transport import HttpTransport

    base = app.config["PUBLIC_BASE_URL"]
    twilio = create_simulator(base, app.config["TWILIO_ACCOUNT_SID"], app.config["TWILIO_AUTH_TOKEN"],
                              clock=WallClock(), transport=HttpTransport(), number=DEMO_NUMBER,
                              api_base_url=base + MOUNT)
    sim = simulator_of(twilio)
    sim.add_number(DEMO_NUMBER, voice_url=base + "/voice/incoming", sms_url=base + "/sms/incoming",
                   status_callback=base + "/voice/status")
    app.extensions["simulator"] = sim
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {MOUNT: twilio})
    page.register(app)
    try:
        with app.app_context():
            center = current(app)
    except (NotLoaded, SpecError) as err:
        print(f"Demo mode: no contact center ({err}); test calls will hear an apology.", flush=True)
        center = None
    if center is not None:
        confirm = "1" if center.voice.agent_confirm else None
        for agent in center.spec.agents:
            sim.add_phone(agent.contact_uri, answer_after=ANSWER_AFTER_SECONDS, handle_time=TALK_SECONDS,
                          then_digits=confirm)
        router = get_router(app)
        _end_calls_of_a_previous_run(router, center)
        with router.read() as session:
            rows = session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)).all()
        available = center.activity_for("available")
        for row in rows:
            if row.activity_sid != available:
                workers.update_worker(router, center.workspace_sid, row.sid, activity_sid=available)
    sim.start()
    password = _supervisor(app)
    print(f"\nDemo mode (no TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN): the phone simulator stands in for Twilio.\n"
          f"  Place a test call:  {base}/demo\n"
          f"  Dashboard:          {base}/dashboard  (sign in as demo / {password})\n"
          f"  Simulated Twilio:   {base}{MOUNT}/2010-04-01/Accounts/{DEMO_ACCOUNT_SID}/Calls.json\n"
          f"  TaskRouter API:     {base}/v1  (account {DEMO_ACCOUNT_SID}, token {app.config['TWILIO_AUTH_TOKEN']})\n",
          flush=True)


def _end_calls_of_a_previous_run(router, center) -> None:
    """The simulator's calls live in memory: tasks of a previous run's calls can never end by themselves."""
    from callcenter.routing.models import Task
    from callcenter.routing.tasks import cancel_task_in, complete_task_in

    with router.read() as session:
        leftovers = session.scalars(select(Task.sid).where(
            Task.workspace_sid == center.workspace_sid,
            Task.assignment_status.in_(("pending", "reserved", "assigned", "wrapping")))).all()
    for sid in leftovers:
        with router.transaction(center.workspace_sid) as tx:
            task = tx.session.get(Task, sid)
            if task is None:
                continue
            if task.assignment_status in ("pending", "reserved"):
                cancel_task_in(tx, task, "demo restarted: the simulated call is gone")
            elif task.assignment_status in ("assigned", "wrapping"):
                complete_task_in(tx, task, "demo restarted: the simulated call is gone")


def _supervisor(app: Flask) -> str:
    """A `demo` supervisor for the dashboard, with a new password each start (returned to print)."""
    password = secrets.token_urlsafe(9)
    try:
        from callcenter.web import auth
        from callcenter.web.models import WebUser
    except ImportError:  # the web pages are not part of this build
        return "(no dashboard)"
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.database import get_router

    try:
        with app.app_context():
            with get_router(app).read() as session:
                exists = session.scalar(select(WebUser.id).where(WebUser.username == "demo")) is not None
            if exists:
                auth.set_password("demo", password)
            else:
                auth.create_user("demo", password, "supervisor", None)
    except SQLAlchemyError as err:  # e.g. a schema without the web pages' tables yet
        return f"(no dashboard sign-in: {type(err).__name__})"
    return password
