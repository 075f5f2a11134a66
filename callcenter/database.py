"""The app's database: one Router per app, schema upgrades through Alembic, and the CLI commands for both.

`flask --app app init-db` creates or upgrades the schema (Alembic `upgrade head`); it is safe to run
on every deploy. `flask --app app routing check` verifies the engine's invariants on a live database.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from callcenter.routing import Router
from callcenter.routing.outbox import Sweeper

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("callcenter")


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    """Create the schema, or bring it up to date, through the Alembic migrations."""
    command.upgrade(alembic_config(database_url), "head")


def get_router(app: Flask | None = None) -> Router:
    return (app or current_app).extensions["router"]


def init_app(app: Flask) -> None:
    """Give the app its Router, upgrade the schema if asked, start the sweeper if asked, add CLI commands."""
    url = app.config["DATABASE_URL"]
    if app.config.get("AUTO_MIGRATE"):
        upgrade_database(url)
    router = Router(url, auth_token_for=_auth_token_lookup(app))
    app.extensions["router"] = router
    if app.config.get("RUN_SWEEPER"):
        sweeper = Sweeper(router, interval=app.config.get("SWEEP_INTERVAL", 0.5)).start()
        app.extensions["sweeper"] = sweeper
        atexit.register(sweeper.stop)
    app.cli.add_command(init_db_command)
    app.cli.add_command(routing_cli)


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


@routing_cli.command("check")
@click.option("--workspace", "workspace_sid", default=None, help="Only this workspace (WS...).")
def check_command(workspace_sid: str | None) -> None:
    """Verify the engine's invariants on the live database and list every violation."""
    from callcenter.routing.invariants import check_invariants

    problems = check_invariants(get_router(), workspace_sid)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{len(problems)} violation(s)")
    if problems:
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
