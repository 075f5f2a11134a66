"""The app's database: one Router per app, schema upgrades through Alembic, and the CLI commands for both.

`flask --app app init-db` creates or upgrades the schema (Alembic `upgrade head`); it is safe to run
on every deploy. `flask --app app check` (alias `routing check`) verifies the engine's invariants on a live database.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from callcenter.config import callback_base_url
from callcenter.routing import Router
from callcenter.routing.callback_network import CallbackPolicy
from callcenter.routing.db import workspace_lock_key
from callcenter.routing.outbox import Sweeper
from callcenter.routing.retention import retention_from_days

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("callcenter")


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    """Create the schema, or bring it up to date, through the Alembic migrations."""
    with startup_lock(database_url):
        command.upgrade(alembic_config(database_url), "head")


@contextmanager
def startup_lock(database_url: str) -> Iterator[None]:
    """Serialize the start-up work (schema upgrade, default account) of the processes sharing a database.

    gunicorn boots its workers at once and each one runs `create_app`: unserialized, two of them create
    the same tables ("table accounts already exists") and gunicorn stops with "Worker failed to boot".
    SQLite: an exclusive flock on a file beside the database; PostgreSQL: a session advisory lock.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "")
        if url.database in (None, "", ":memory:") or not database.parent.is_dir():
            yield  # nothing to share, or nothing to open: let SQLite report it
            return
        with open(database.with_name(database.name + ".startup-lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.get_backend_name() != "postgresql":
        yield
        return
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    key = {"key": workspace_lock_key("callcenter:startup")}
    try:
        with engine.connect() as connection:
            # Polled, not waited for: a process blocked in pg_advisory_lock holds a snapshot, and the holder's
            # CREATE INDEX CONCURRENTLY (migrations 0009-0011) waits for every snapshot to end: each would wait
            # for the other for ever. Between tries this connection holds no transaction (autocommit).
            pause = 0.05
            while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            try:
                yield  # a session lock: it outlives each statement's transaction, until the unlock
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


def schema_problem(connection, database_url: str) -> str | None:
    """Why this code cannot serve this database's schema (not created, or migrations pending), or None.

    A schema newer than this code (migrated for the next release while this one still runs) is fine:
    migrations only add.
    """
    try:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no such table: never initialized
        return "the database has no schema: run `flask --app app init-db`"
    head, known = _revisions(database_url)
    if version == head or (version is not None and version not in known):  # at the head, or newer than this code
        return None
    return f"the schema is at {version or 'no revision'}, this code needs {head}: run `flask --app app init-db`"


@functools.lru_cache(maxsize=4)
def _revisions(database_url: str) -> tuple[str, frozenset[str]]:
    """This code's head revision and every revision it knows (read from the migration files once)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url))
    return script.get_current_head(), frozenset(revision.revision for revision in script.walk_revisions())


def get_router(app: Flask | None = None) -> Router:
    return (app or current_app).extensions["router"]


def init_app(app: Flask) -> None:
    """Give the app its Router, upgrade the schema if asked, start the sweeper if asked, add CLI commands."""
    url = app.config["DATABASE_URL"]
    # A bad retention or network list stops the start here, before the database is touched.
    retention = retention_from_days(app.config.get("EVENT_RETENTION_DAYS", 30))
    app.extensions["call_retention"] = retention_from_days(app.config.get("CALL_RETENTION_DAYS", 0),
                                                           "CALL_RETENTION_DAYS", "call records")
    callback_policy = CallbackPolicy.from_settings(
        app.config.get("CALLBACK_BLOCKED_NETWORKS", "metadata"),
        trusted_urls=(callback_base_url(app.config), app.config.get("PUBLIC_BASE_URL")))
    if app.config.get("AUTO_MIGRATE"):
        upgrade_database(url)
    pool = {"pool_size": app.config.get("DATABASE_POOL_SIZE", 10),
            "max_overflow": app.config.get("DATABASE_MAX_OVERFLOW", 20),
            "pool_timeout": app.config.get("DATABASE_POOL_TIMEOUT", 30.0),
            "pool_recycle": app.config.get("DATABASE_POOL_RECYCLE", 1800)}
    router = Router(url, auth_token_for=_auth_token_lookup(app), pool=pool)
    router.event_retention = retention
    router.callback_policy = callback_policy
    app.extensions["router"] = router
    if app.config.get("RUN_SWEEPER") and not one_off_command():
        sweeper = Sweeper(router, interval=app.config.get("SWEEP_INTERVAL", 0.5)).start()
        app.extensions["sweeper"] = sweeper
        atexit.register(sweeper.stop)
    app.cli.add_command(init_db_command)
    app.cli.add_command(check_command)
    app.cli.add_command(routing_cli)


def one_off_command() -> bool:
    """Whether this process is a `flask --app app <command>` that does a job and exits (init-db,
    contact-center load, check...): it must not fire timers or send callbacks behind the job's back, nor
    be stopped in the middle of them; `routing sweep` runs its own sweeper. `flask run` serves, and sweeps."""
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return False
    context = click.get_current_context(silent=True)
    return context is not None and context.info_name != "run"


def _auth_token_lookup(app: Flask):
    account_sid, token = app.config.get("TWILIO_ACCOUNT_SID"), app.config.get("TWILIO_AUTH_TOKEN")

    def auth_token_for(requested: str) -> str | None:
        # Callbacks are signed with the auth token of the account that owns the workspace.
        return token if token and (not account_sid or requested == account_sid) else None

    return auth_token_for


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create or upgrade the database schema (safe to run on every deploy)."""
    upgrade_database(current_app.config["DATABASE_URL"])
    click.echo("Database schema is up to date.")


routing_cli = AppGroup("routing", help="Operate the routing engine.")


_WORKSPACE_OPTION = click.option("--workspace", "workspace_sid", default=None, help="Only this workspace (WS...).")


@click.command("check")
@_WORKSPACE_OPTION
@with_appcontext
def check_command(workspace_sid: str | None) -> None:
    """Verify the engine's invariants on the live database and list every violation (exit 1 if any)."""
    run_check(workspace_sid)


@routing_cli.command("check")
@_WORKSPACE_OPTION
def routing_check_command(workspace_sid: str | None) -> None:
    """Verify the engine's invariants on the live database and list every violation (same as `flask check`)."""
    run_check(workspace_sid)


def run_check(workspace_sid: str | None) -> None:
    """One line per violation, `WS...: what is wrong, with the sids involved`, then the total.

    Reads only (no lock is taken), so it is safe on a live database; a violation seen while a
    transaction commits elsewhere is re-checked once before it is reported.
    """
    from sqlalchemy import select

    from callcenter.routing.invariants import check_invariants
    from callcenter.routing.models import Workspace

    router = get_router()
    with router.read() as session:
        query = select(Workspace.sid).order_by(Workspace.sid)
        if workspace_sid:
            query = query.where(Workspace.sid == workspace_sid)
        sids = list(session.scalars(query))
    if workspace_sid and not sids:
        click.echo(f"Workspace {workspace_sid} not found", err=True)
        raise SystemExit(2)
    total = 0
    for sid in sids:
        problems = check_invariants(router, sid)
        if problems:
            # The checker reads in several statements: a commit landing between them can look like a
            # violation for an instant. A real one is still there on a second look.
            again = set(check_invariants(router, sid))
            problems = [problem for problem in problems if problem in again]
        for problem in problems:
            click.echo(f"{sid}: {problem}")
        total += len(problems)
    click.echo(f"{total} violation(s) in {len(sids)} workspace(s)")
    if total:
        raise SystemExit(1)


@routing_cli.command("sweep")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between sweeps.")
def sweep_command(interval: float) -> None:
    """Fire timers and deliver callbacks in the foreground (for a dedicated worker process)."""
    router = get_router()
    sweeper = Sweeper(router, interval=interval).start()
    click.echo("Sweeping timers and the outbox; Ctrl-C to stop.")
    try:
        sweeper._thread.join()
    except KeyboardInterrupt:
        sweeper.stop()
