"""Signing in and out, who is signed in, and the `flask users` commands that create the accounts.

A sign-in is a row of `web_sessions`; the session cookie (Flask's, signed with SECRET_KEY) carries
only its random token. A session ends when its user signs out (that row), signs out everywhere or
changes password (all their rows), a supervisor signs an agent out, or it expires: after
SESSION_LIFETIME_HOURS from sign-in, or SESSION_IDLE_MINUTES without a request. A copied cookie
is worth nothing once its row is gone. Passwords are stored as werkzeug scrypt hashes.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.cli import AppGroup
from sqlalchemy import delete, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from callcenter.database import get_router
from callcenter.routing import Router
from callcenter.routing.models import Worker, Workspace

from . import guard
from .models import ROLES, WebSession, WebUser

bp = Blueprint("auth", __name__)
guard(bp)

HASH_METHOD = "scrypt"
MIN_PASSWORD_LENGTH = 8
# Compared against when the username is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method=HASH_METHOD)
# A session's `last_seen` is written at most once a minute (a page fetches on every live notice).
LAST_SEEN_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionLimits:
    lifetime: timedelta  # from sign-in, whatever happens
    idle: timedelta  # without a request


def session_limits(app: Flask) -> SessionLimits:
    return SessionLimits(timedelta(hours=float(app.config.get("SESSION_LIFETIME_HOURS", 12))),
                         timedelta(minutes=float(app.config.get("SESSION_IDLE_MINUTES", 120))))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_user() -> None:
    """Before each request of the web pages: the signed-in user (and their session's id), or None."""
    g.user = g.web_session_id = None
    token = session.get("session_token")
    if not isinstance(token, str):
        if session.get("user_id") is not None:
            session.clear()  # a cookie from before sessions were kept on the server: sign in again
        return
    router = get_router()
    now = router.clock.now()
    with router.read() as db:
        found = db.execute(select(WebSession, WebUser).join(WebUser, WebUser.id == WebSession.user_id)
                           .where(WebSession.token_hash == _token_hash(token))).first()
    if found is None:  # signed out, here or everywhere, or the password changed
        session.clear()
        return
    web_session, user = found
    if user.username == DEMO_USERNAME and not current_app.config.get("DEMO_MODE"):
        session.clear()  # a sign-in kept from a demo run
        return
    limits = session_limits(current_app)
    if now >= web_session.date_created + limits.lifetime or now >= web_session.last_seen + limits.idle:
        end_sessions(router, session_ids=[web_session.id])
        session.clear()
        flash("Your session has expired: sign in again.")
        return
    if now - web_session.last_seen >= min(LAST_SEEN_PRECISION, limits.idle / 4):
        with router.transaction(None) as tx:
            tx.session.execute(update(WebSession).where(WebSession.id == web_session.id).values(last_seen=now))
    g.user, g.web_session_id = user, web_session.id


def start_session(user: WebUser) -> None:
    """A new session for `user` in a fresh cookie (nothing of the one before survives: session fixation)."""
    router = get_router()
    limits = session_limits(current_app)
    token = secrets.token_urlsafe(32)
    with router.transaction(None) as tx:
        # Sessions nobody signed out of: gone once they can no longer be used.
        tx.session.execute(delete(WebSession).where(or_(WebSession.date_created <= tx.now - limits.lifetime,
                                                        WebSession.last_seen <= tx.now - limits.idle)))
        tx.session.add(WebSession(token_hash=_token_hash(token), user_id=user.id, date_created=tx.now,
                                  last_seen=tx.now))
    session.clear()
    session.permanent = True  # the browser drops the cookie after PERMANENT_SESSION_LIFETIME too
    session["session_token"] = token


def end_sessions(router: Router, *, session_ids: list[int] | None = None, user_id: int | None = None) -> int:
    """End these sessions, or every session of `user_id`; returns how many there were. This process's live
    streams of them stop at once; another process's when they reach LIVE_STREAM_SECONDS."""
    if session_ids is not None:
        query = delete(WebSession).where(WebSession.id.in_(session_ids))
    else:
        query = delete(WebSession).where(WebSession.user_id == user_id)
    with router.transaction(None) as tx:
        ended = list(tx.session.scalars(query.returning(WebSession.id)))
    _sessions_ended(ended)
    return len(ended)


def _sessions_ended(session_ids: list[int]) -> None:
    for listener in current_app.extensions.get("session_end_listeners", []):
        listener(session_ids)


USERNAME_MAX = 64  # the column's length
DEMO_USERNAME = "demo"  # demo mode's supervisor (callcenter/simulator/demo.py), refused outside demo mode


class FailedSignIns:
    """Failed sign-ins per username and per address in a sliding window (per process; several processes each
    allow their share, which still bounds guessing to a handful per minute). Keys whose failures are all older
    than the window are dropped once per window, so names tried once (by anyone) are not kept for ever."""

    def __init__(self, limit: int = 10, window_seconds: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window = limit, window_seconds
        self._monotonic = monotonic
        self._failures: dict[str, list[float]] = {}
        self._next_sweep = monotonic() + window_seconds
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, ...]:
        # No username is longer than USERNAME_MAX: a longer one is counted as its first 65 (still no user's),
        # so each key stays small whatever a form carries. No address (a unix socket with no proxy header)
        # is nobody's: counted under one key, ten failures by anyone would lock everyone out.
        user = f"u:{username[:USERNAME_MAX + 1]}"
        return (user, f"a:{address}") if address else (user,)

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def allowed(self, username: str, address: str) -> bool:
        now = self._monotonic()
        with self._lock:
            return all(len(self._recent(key, now)) < self.limit for key in self._keys(username, address))

    def failed(self, username: str, address: str) -> None:
        now = self._monotonic()
        with self._lock:
            for key in self._keys(username, address):
                self._failures.setdefault(key, []).append(now)
            if now >= self._next_sweep:
                self._next_sweep = now + self.window
                for key in [key for key, times in self._failures.items() if now - times[-1] >= self.window]:
                    del self._failures[key]

    def __len__(self) -> int:
        return len(self._failures)


def _failed_sign_ins() -> FailedSignIns:
    return current_app.extensions.setdefault("failed_sign_ins", FailedSignIns())


def login_required(role: str | None = None) -> Callable:
    """Views for signed-in users (of `role`, if given): others go to the sign-in page, or get 403."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if g.get("user") is None:
                if request.method == "GET" and not wants_json():
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                abort(401)
            if role is not None and g.user.role != role:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def wants_json() -> bool:
    """Fetch calls from the pages ask for JSON; plain form posts get a redirect back."""
    # `*/*` (curl, a plain link) prefers the page: HTML is listed first.
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "text/event-stream"])
    return best in ("application/json", "text/event-stream")


def is_local_path(target: str) -> bool:
    """A path of this site: no scheme or host, and no control characters or spaces (browsers and werkzeug drop
    some of them, so `/\t/evil.example` would become `//evil.example`)."""
    parts = urlsplit(target)
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(c) < 0x21 or ord(c) == 0x7F for c in target) and not parts.scheme and not parts.netloc)


def home_for(user: WebUser) -> str:
    return url_for("web.dashboard") if user.is_supervisor else url_for("web.agent")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        attempts = _failed_sign_ins()
        if not attempts.allowed(username, request.remote_addr or ""):
            # Each try costs a full scrypt: guessing, or a flood of sign-ins starving the webhooks, stops here.
            return render_template("login.html", error="Too many failed sign-ins: wait a few minutes."), 429
        with get_router().read() as db:
            user = db.scalar(select(WebUser).where(WebUser.username == username))
        if user is not None and username == DEMO_USERNAME and not current_app.config.get("DEMO_MODE"):
            user = None  # its password was printed by a demo start: it opens nothing outside demo mode
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
            error = "Wrong username or password."
        elif not check_password_hash(user.password_hash, password):
            error = "Wrong username or password."
        if error:
            attempts.failed(username, request.remote_addr or "")
        else:
            start_session(user)
            target = request.args.get("next", "")
            # Only a path of this site: never an absolute or scheme-relative URL (open redirect).
            if not is_local_path(target):
                target = home_for(user)
            return redirect(target)
    status = 401 if error else 200
    return render_template("login.html", error=error), status


@bp.post("/logout")
def logout():
    """Sign out this browser: its session ends on the server, so a copy of the cookie no longer works."""
    if g.get("web_session_id") is not None:
        end_sessions(get_router(), session_ids=[g.web_session_id])
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.post("/logout/everywhere")
@login_required()
def logout_everywhere():
    """Sign out every browser of this user (a lost phone, a shared computer)."""
    ended = end_sessions(get_router(), user_id=g.user.id)
    session.clear()
    flash(f"You are signed out everywhere ({plural(ended, 'session')} ended).")
    return redirect(url_for("auth.login"))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


@bp.get("/")
def index():
    if g.get("user") is None:
        return redirect(url_for("auth.login"))
    return redirect(home_for(g.user))


# -- accounts ----------------------------------------------------------------------------------------

class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


def create_user(username: str, password: str, role: str, worker_sid: str | None) -> WebUser:
    """Create a sign-in; an agent's `worker_sid` must name a worker (see `find_worker`)."""
    username = username.strip()
    if not username or len(username) > USERNAME_MAX:
        raise UserError(f"A username of 1 to {USERNAME_MAX} characters is needed")
    if role not in ROLES:
        raise UserError(f"Role must be one of {', '.join(ROLES)}")
    if role == "agent" and not worker_sid:
        raise UserError("An agent needs --worker: the name or sid of their worker")
    if role == "supervisor":
        worker_sid = None
    _check_password(password)
    router = get_router()
    with router.transaction(None) as tx:
        if tx.session.scalar(select(WebUser.id).where(WebUser.username == username)) is not None:
            raise UserError(f"A user named {username!r} already exists")
        if worker_sid and tx.session.scalar(select(WebUser.id).where(WebUser.worker_sid == worker_sid)) is not None:
            raise UserError(f"Worker {worker_sid} already has a user")
        user = WebUser(username=username, password_hash=generate_password_hash(password, method=HASH_METHOD),
                       role=role, worker_sid=worker_sid, date_created=tx.now, date_updated=tx.now)
        tx.session.add(user)
        tx.session.flush()
        return user


def set_password(username: str, password: str) -> None:
    """Change a user's password; every session of theirs ends in the same transaction."""
    _check_password(password)
    with get_router().transaction(None) as tx:
        user = tx.session.scalar(select(WebUser).where(WebUser.username == username))
        if user is None:
            raise UserError(f"No user named {username!r}")
        user.password_hash = generate_password_hash(password, method=HASH_METHOD)
        user.date_updated = tx.now
        ended = list(tx.session.scalars(delete(WebSession).where(WebSession.user_id == user.id)
                                        .returning(WebSession.id)))
    _sessions_ended(ended)


def sign_out_everywhere(username: str) -> int:
    """End every session of `username`; returns how many there were."""
    router = get_router()
    with router.read() as db:
        user_id = db.scalar(select(WebUser.id).where(WebUser.username == username))
    if user_id is None:
        raise UserError(f"No user named {username!r}")
    return end_sessions(router, user_id=user_id)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"A password of at least {MIN_PASSWORD_LENGTH} characters is needed")


def find_worker(name_or_sid: str, workspace_sid: str | None) -> Worker:
    """The worker named (case-insensitively) or with this sid, in the contact center's workspace."""
    with get_router().read() as db:
        query = select(Worker).where((Worker.sid == name_or_sid) | (Worker.name_key == name_or_sid.casefold()))
        if workspace_sid:
            query = query.where(Worker.workspace_sid == workspace_sid)
        found = db.scalars(query.order_by(Worker.sid)).all()
        places = {sid: name for sid, name in db.execute(select(Workspace.sid, Workspace.friendly_name).where(
            Workspace.sid.in_({worker.workspace_sid for worker in found})))}
    if not found:
        raise UserError(f"No worker named {name_or_sid!r}" + (" in the contact center's workspace" if workspace_sid
                                                              else "") + ": run `flask contact-center load` first?")
    if len(found) > 1:
        which = "; ".join(f"{worker.sid} in workspace {places.get(worker.workspace_sid)!r}" for worker in found)
        raise UserError(f"Several workers are named {name_or_sid!r} ({which}): give the sid")
    return found[0]


users_cli = AppGroup("users", help="Sign-ins for the agent console and the supervisor dashboard.")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option("--worker", "worker", default=None, help="The agent's worker: its name (e.g. Alice) or sid (WK...).")
@click.password_option(help="Prompted for when not given.")
def create_command(username: str, role: str, worker: str | None, password: str) -> None:
    """Create a user who signs in at /login."""
    try:
        if username.strip() == DEMO_USERNAME:
            raise UserError(f"The name {DEMO_USERNAME!r} is demo mode's (it signs in only in demo mode): pick another")
        worker_sid = None
        if role == "agent":
            if not worker:
                raise UserError("An agent needs --worker: the name or sid of their worker")
            worker_sid = find_worker(worker, _workspace_sid()).sid
        user = create_user(username, password, role, worker_sid)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Created {user.role} {user.username}" + (f" (worker {user.worker_sid})" if user.worker_sid else ""))


@users_cli.command("set-password")
@click.argument("username")
@click.password_option(help="Prompted for when not given.")
def set_password_command(username: str, password: str) -> None:
    """Change a user's password (their other sessions are signed out)."""
    try:
        set_password(username, password)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Password of {username} changed.")


@users_cli.command("sign-out")
@click.argument("username")
def sign_out_command(username: str) -> None:
    """End every session of a user, on every browser."""
    try:
        ended = sign_out_everywhere(username)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Signed {username} out everywhere ({plural(ended, 'session')} ended).")


def _workspace_sid() -> str | None:
    from callcenter.contact_center import NotLoaded, SpecError, current

    try:
        return current(current_app).workspace_sid
    except (NotLoaded, SpecError):
        return None  # no contact center: any workspace's worker will do
