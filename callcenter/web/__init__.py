"""The agent console (`/agent`) and the supervisor dashboard (`/dashboard`), with live updates over SSE.

Pages are rendered on the server and kept current by a little vanilla JavaScript: each page opens
`/live` (Server-Sent Events) and re-fetches its JSON snapshot when a notice arrives. Every form and
every state-changing fetch carries a CSRF token (Flask-WTF); an agent acts only on their own worker.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, g, jsonify, redirect, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.exceptions import HTTPException

from callcenter.contact_center import NotLoaded, SpecError
from callcenter.routing.errors import RoutingError

log = logging.getLogger("callcenter.web")

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/web/static")
csrf = CSRFProtect()


def error_body(status: int, message: str, code: int | None = None) -> dict:
    """The Twilio-style error every fetch of the pages gets back."""
    code = code or {400: 20001, 401: 20003, 403: 20403, 404: 20404, 409: 20409, 410: 20409, 429: 20429}.get(status, 20500)
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


def _protect() -> None:
    from .auth import load_user

    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            csrf.protect()
        except CSRFError:
            # A session that ended (signed out elsewhere, expired) takes its token with it: say "sign in", the
            # cause, rather than "CSRF check failed". A signed-in user with a bad token is refused as before.
            load_user()
            if g.get("user") is None and request.endpoint != "auth.login":
                abort(401)
            raise
    load_user()


def _error(status: int, message: str, code: int | None = None):
    """JSON for the pages' fetches; for a browser's own navigation or plain form post, a page: the sign-in page
    (then back to where the user was) when signed out, else the message with a way back to the form."""
    from .auth import is_local_path, wants_json

    if wants_json():
        return jsonify(error_body(status, message, code)), status
    referrer = urlsplit(request.referrer or "")
    back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    back = back if request.method != "GET" and referrer.netloc == request.host and is_local_path(back) else None
    if status == 401:
        return redirect(url_for("auth.login", next=back or request.full_path.rstrip("?")))
    from flask import render_template

    return render_template("error.html", status=status, message=message, back=back), status


def guard(blueprint: Blueprint) -> None:
    """CSRF on every state change, the signed-in user, and errors as pages or Twilio-style JSON."""
    blueprint.before_request(_protect)

    @blueprint.after_request
    def no_framing(response):
        # Another site must not frame these pages and have a supervisor click their buttons.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    @blueprint.errorhandler(CSRFError)
    def csrf_refused(err: CSRFError):
        return _error(400, f"CSRF check failed: {err.description} Reload the page and try again.")

    @blueprint.errorhandler(NotLoaded)
    @blueprint.errorhandler(SpecError)
    def no_contact_center(err: Exception):
        return _error(503, f"The contact center is not loaded: {err}")

    @blueprint.errorhandler(RoutingError)
    def routing_refused(err: RoutingError):
        return _error(err.status, err.message, err.code)

    for status, message in ((401, "Sign in first."), (403, "You may not do that."),
                            (404, "Not found."), (405, "Method not allowed.")):
        blueprint.register_error_handler(status, lambda err, s=status, m=message: _error(s, m))

    @blueprint.errorhandler(Exception)
    def unexpected(err: Exception):
        # Without this, the REST API's catch-all answered a browser with Twilio's JSON and no way back.
        if isinstance(err, HTTPException):  # 400, 413, 429...: what werkzeug says, as a page
            return _error(err.code or 500, err.description or err.name)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "Something went wrong on our side. Reload the page and try again; if it happens again, "
                           "tell whoever runs this contact center (the log says what it was).")


guard(bp)


@bp.app_context_processor
def template_globals() -> dict:
    return {"csrf_token": generate_csrf, "current_user": g.get("user")}


@bp.app_template_filter("duration")
def duration(seconds: int | float | None) -> str:
    """`75` -> `1:15`, `3725` -> `1:02:05`; nothing -> an en dash."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@bp.app_template_filter("percent")
def percent(value: int | None) -> str:
    return "–" if value is None else f"{value}%"


@bp.app_template_filter("json_text")
def json_text(value: object) -> str:
    """A value as JSON for reading in page text (`"R&D O'Brien"`, `null`, `["en"]`); the page escapes it. Jinja's
    `tojson` is for scripts: it writes `\u0026` and `\u0027` in place of & and '."""
    import json

    return json.dumps(value, ensure_ascii=False)


@bp.app_template_filter("web_url")
def web_url(value: str | None) -> str | None:
    """Only http(s) links reach an href (a recording URL is data from outside)."""
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


def register(app: Flask) -> None:
    from . import agent, auth, dashboard, explanations, live  # noqa: F401  (routes register on the blueprints)

    # CSRF is checked by `guard` for these pages only (WTF_CSRF_CHECK_DEFAULT off): the webhooks and
    # the REST API authenticate otherwise and must not need a token.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's life: consoles stay open all day
    # Flask's own defaults fill these keys (SameSite None, Secure off), so `setdefault` would keep those:
    # a value the app was given is kept, and otherwise Lax, HttpOnly, and, over https (the public URL says
    # so), Secure: the session cookie never travels in clear.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config.get("SESSION_COOKIE_SECURE")) or str(
        app.config.get("PUBLIC_BASE_URL") or "").startswith("https://")
    app.config.setdefault("SERVICE_LEVEL_SECONDS", 20)
    # The browser forgets the cookie when the session's lifetime is over (the server refuses it anyway).
    app.config["PERMANENT_SESSION_LIFETIME"] = auth.session_limits(app).lifetime
    csrf.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(bp)
    live.init_app(app)
    # Call-only changes (voicemail, missed) reach the dashboards like the engine's events do.
    app.extensions.setdefault("call_change_listeners", []).append(live.hub_of(app).publish_call_change)
    app.cli.add_command(auth.users_cli)
