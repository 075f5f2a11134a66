"""Configuration, read in one place: defaults, then the environment (and `.env`), then test overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dotenv import find_dotenv, load_dotenv
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from callcenter.routing.db import DEFAULT_DATABASE_URL


class SettingError(ValueError):
    """A setting's value is not one it takes; the message names the setting."""


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting; anything else stops the start (a mistyped `RUN_SWEEPER=ture` must not mean "off")."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false (also 1/0, yes/no, on/off), not {value!r}")


def _number(name: str, default: str, kind: type = int, *, minimum: float = 0, above: bool = False) -> int | float:
    """A number setting, at least `minimum` (more than it, with `above`); a bad one stops the start, named."""
    value = os.environ.get(name) or default
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or number != number or number < minimum or (above and number == minimum):  # NaN too
        bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
        what = "a whole number" if kind is int else "a number"
        raise SettingError(f"{name} must be {what}, {bound}, not {value!r}")
    return number


def _url(name: str, default: str | None = None) -> str | None:
    """A base URL setting (`https://cc.example.com`), without its trailing slash. One without a scheme or host
    would build every webhook URL wrong: Twilio's signatures would never match and each webhook answer 403."""
    value = (os.environ.get(name) or "").strip() or default
    if value is None:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise SettingError(f"{name} must be an http(s) URL with a host and no query, such as "
                           f"https://cc.example.com, not {value!r}")
    return value.rstrip("/")


def _directory(name: str) -> str | None:
    """A directory this process writes to; a missing one failed every request that used it, long after the start."""
    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    if not os.path.isdir(value) or not os.access(value, os.W_OK):
        raise SettingError(f"{name} must be a directory this process can write to, not {value!r}")
    return value


def _log_level(name: str, default: str) -> str:
    value = (os.environ.get(name) or default).strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {os.environ.get(name)!r}")
    return value


def _database_url() -> str:
    value = (os.environ.get("DATABASE_URL") or "").strip() or DEFAULT_DATABASE_URL
    try:
        make_url(value)
    except ArgumentError:
        raise SettingError(f"DATABASE_URL must be a database URL such as sqlite:///callcenter.db or "
                           f"postgresql+psycopg://user@host:5432/callcenter, not {value!r}") from None
    return value


# .env.example's value until this round: a copy of it still in use must not sign anyone's session.
EXAMPLE_SECRET_KEY = "change-me"


def _secret_key() -> str:
    value = os.environ.get("SECRET_KEY") or ""
    if value.strip() == EXAMPLE_SECRET_KEY:
        raise SettingError("SECRET_KEY is still .env.example's placeholder: set a long random value, e.g. the output "
                           "of `python -c \"import secrets; print(secrets.token_hex(32))\"`, or leave it out "
                           "for a new random key at each start (sign-ins then end at each restart)")
    return value or os.urandom(32).hex()


def _forwarded_allow_ips(name: str) -> tuple | None:
    from callcenter.proxies import DEFAULT_ALLOWED, parse_allowed

    value = os.environ.get(name) or DEFAULT_ALLOWED
    try:
        return parse_allowed(value)
    except ValueError as err:
        raise SettingError(f"{name} must be `*` or IP addresses and networks separated by commas "
                           f"(10.0.0.0/8), not {value!r}: {err}") from None


def reads_dotenv() -> bool:
    """`.env` is read unless FLASK_SKIP_DOTENV says not to, as Flask's own CLI does (the test suite sets it,
    so that a developer's `.env` never changes what the tests see)."""
    return os.environ.get("FLASK_SKIP_DOTENV", "").strip().lower() in ("", "0", "false", "no")


def load_config() -> dict[str, Any]:
    """The app's settings from the environment; `.env` in the working directory is read first."""
    if reads_dotenv():  # found from the working directory up, as Flask's CLI finds it (not from this file's)
        load_dotenv(find_dotenv(usecwd=True), override=False)
    return {
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": _secret_key(),
        "TWILIO_ACCOUNT_SID": os.environ.get("TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": os.environ.get("TWILIO_AUTH_TOKEN"),
        "PUBLIC_BASE_URL": _url("PUBLIC_BASE_URL"),
        # Peers whose X-Forwarded-* headers are believed (callcenter/proxies.py): this machine by default.
        "FORWARDED_ALLOW_IPS": _forwarded_allow_ips("FORWARDED_ALLOW_IPS"),
        # Twilio's REST API, or the local phone simulator / a test double standing in for it.
        "TWILIO_API_BASE_URL": _url("TWILIO_API_BASE_URL", "https://api.twilio.com"),
        # The contact center's Twilio number: texts to agents and supervisors come from it.
        "TWILIO_PHONE_NUMBER": os.environ.get("TWILIO_PHONE_NUMBER"),
        # Where the engine posts assignment and event callbacks for the voice app; default PUBLIC_BASE_URL.
        # In production, the app's internal address (e.g. http://127.0.0.1:8000) spares a trip through the tunnel.
        "CALLBACK_BASE_URL": _url("CALLBACK_BASE_URL"),
        # Networks the engine never sends callbacks to, whoever set the URL (callcenter/routing/callback_network.py):
        # CIDRs and `metadata` (link-local: cloud metadata services), `private` (every non-public address), `none`.
        # The app's own callback base URL is always allowed.
        "CALLBACK_BLOCKED_NETWORKS": os.environ.get("CALLBACK_BLOCKED_NETWORKS", "metadata"),
        # The contact center's shape: workspace, activities, queues, workflow, agents, menu, voice settings.
        "CONTACT_CENTER_FILE": os.environ.get("CONTACT_CENTER_FILE") or "contact-center.toml",
        "PORT": _number("PORT", "5000", minimum=1),
        # Upgrading the schema at start suits a single development process; in production run
        # `flask --app app init-db` once per deploy and set AUTO_MIGRATE=false.
        "AUTO_MIGRATE": _flag("AUTO_MIGRATE", True),
        # Connections per process (see callcenter/routing/db.py and README "Production").
        "DATABASE_POOL_SIZE": _number("DATABASE_POOL_SIZE", "10", minimum=1),
        "DATABASE_MAX_OVERFLOW": _number("DATABASE_MAX_OVERFLOW", "20"),
        "DATABASE_POOL_TIMEOUT": _number("DATABASE_POOL_TIMEOUT", "30", float, above=True),
        "DATABASE_POOL_RECYCLE": _number("DATABASE_POOL_RECYCLE", "1800", minimum=-1),
        "RUN_SWEEPER": _flag("RUN_SWEEPER", True),
        # `json` (one object per line, with the task/reservation/call sids) for log collectors; `text` to read.
        "LOG_FORMAT": (os.environ.get("LOG_FORMAT") or "text").strip().lower(),
        "LOG_LEVEL": _log_level("LOG_LEVEL", "INFO"),
        "SWEEP_INTERVAL": _number("SWEEP_INTERVAL", "0.5", float, above=True),
        # Events and callbacks given up on are kept this many days, as TaskRouter keeps events (0: for ever).
        "EVENT_RETENTION_DAYS": os.environ.get("EVENT_RETENTION_DAYS", "30"),
        # Call records (callers' numbers, voicemail transcriptions) are kept this many days; 0: for ever
        # (callcenter/voice/retention.py).
        "CALL_RETENTION_DAYS": os.environ.get("CALL_RETENTION_DAYS", "0"),
        # The dashboard's service level: calls answered within this many seconds of entering a queue.
        "SERVICE_LEVEL_SECONDS": _number("SERVICE_LEVEL_SECONDS", "20", minimum=1),
        # A web sign-in ends this long after it started, or after this long without a request (callcenter/web/auth.py).
        "SESSION_LIFETIME_HOURS": _number("SESSION_LIFETIME_HOURS", "12", float, above=True),
        "SESSION_IDLE_MINUTES": _number("SESSION_IDLE_MINUTES", "120", float, above=True),
        # Live updates: open streams per user and process (each holds a thread), and how long one lasts.
        "LIVE_STREAMS_PER_USER": _number("LIVE_STREAMS_PER_USER", "4", minimum=1),
        "LIVE_STREAM_SECONDS": _number("LIVE_STREAM_SECONDS", "300", float, above=True),
        # An agent's page hears of callers entering or leaving their queues at most this often.
        "LIVE_QUEUE_NOTICE_SECONDS": _number("LIVE_QUEUE_NOTICE_SECONDS", "5", float),
        # Twilio documents `attributes` as null in Task and Worker list pages; some clients want them.
        "API_ATTRIBUTES_IN_LISTS": _flag("API_ATTRIBUTES_IN_LISTS", False),
        # Several processes (gunicorn -w N) add up /metrics' counters in this directory (callcenter/metrics.py).
        "PROMETHEUS_MULTIPROC_DIR": _directory("PROMETHEUS_MULTIPROC_DIR"),
        # Set by `python app.py` when no Twilio credentials are configured: the phone simulator plays Twilio
        # (callcenter/simulator/demo.py; DEMO=false turns it off).
        "DEMO_MODE": False,
    }


def callback_base_url(config: Mapping[str, Any]) -> str:
    """Where the engine sends assignment and event callbacks for the voice app."""
    return (config.get("CALLBACK_BASE_URL") or config.get("PUBLIC_BASE_URL")
            or f"http://127.0.0.1:{config.get('PORT', 5000)}")
