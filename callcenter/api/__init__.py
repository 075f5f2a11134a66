"""TaskRouter's REST API (`/v1/...`) in Twilio's wire format, so the official twilio SDK works unchanged.

Requests authenticate with HTTP Basic: an account sid and its auth token, or an API key and its
secret. Every resource is looked up within the authenticated account; another account's sids
answer 404. Engine errors become `{"code", "message", "more_info", "status"}` here, in one place.
"""

from __future__ import annotations

import logging

import click
from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.cli import AppGroup
from sqlalchemy import inspect
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from callcenter.database import get_router, startup_lock
from callcenter.routing import accounts
from callcenter.routing.errors import InvalidParameter, NotFound, RoutingError
from callcenter.routing.models import Account
from callcenter.simulator.demo import DEMO_ACCOUNT_SID

from .wire import error_body

bp = Blueprint("api", __name__, url_prefix="/v1")
log = logging.getLogger("callcenter.api")


@bp.before_request
def authenticate():
    auth = request.authorization
    account_sid = None
    if auth is not None and auth.type == "basic" and auth.username and auth.password \
            and "\x00" not in auth.username + auth.password:  # PostgreSQL text cannot hold NUL: no such account
        account_sid = accounts.authenticate(get_router(), auth.username, auth.password,
                                            current_app.extensions.setdefault("credentials", accounts.CredentialCache()))
    if account_sid == DEMO_ACCOUNT_SID and not current_app.config.get("DEMO_MODE"):
        account_sid = None  # its token was printed by a demo start: it opens nothing outside demo mode
    if account_sid is None:
        response = jsonify(error_body(20003, "Authentication Error - invalid username", 401))
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="TaskRouter"'
        return response
    g.account_sid = account_sid
    return None


@bp.before_request
def refuse_nul_characters():
    """A NUL character can be in no name, sid or value (PostgreSQL text cannot even hold one): refuse it up front."""
    if "\x00" in request.path:
        raise NotFound(f"The requested resource {request.path.replace(chr(0), '')} was not found")
    for source in (request.args, request.form):
        for name, value in source.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise InvalidParameter(f"Parameter {name.replace(chr(0), '')!r} must not contain NUL characters")


@bp.errorhandler(RoutingError)
def routing_error(err: RoutingError):
    response = jsonify(error_body(err.code, err.message, err.status))
    response.status_code = err.status
    return response


def register(app: Flask) -> None:
    """Register the API and make every error under /v1 answer in Twilio's shape, never in HTML."""
    from . import events, explanations, openapi, statistics, task_queues, tasks, workers, workflows, workspaces  # noqa: F401  (each adds routes)

    app.register_blueprint(bp)
    app.cli.add_command(api_key_cli)
    _bootstrap_account(app)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if not request.path.startswith("/v1"):
            return err
        code = {404: 20404, 405: 20004, 429: 20429}.get(err.code or 500, err.code or 500)
        message = {404: f"The requested resource {request.path} was not found",
                   405: f"Method {request.method} not allowed on {request.path}"}.get(err.code, err.description)
        response = jsonify(error_body(code, message, err.code or 500))
        response.status_code = err.code or 500
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            response.headers["Allow"] = ", ".join(err.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception):
        if isinstance(err, HTTPException):
            return http_error(err)
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = jsonify(error_body(20500, "Internal Server Error", 500))
        response.status_code = 500
        return response


def _bootstrap_account(app: Flask) -> None:
    """The default account: the configured Twilio credentials, or a local account made on first start."""
    router = get_router(app)
    sid, token = app.config.get("TWILIO_ACCOUNT_SID"), app.config.get("TWILIO_AUTH_TOKEN")
    if not (sid and token) and app.config.get("TESTING"):
        return
    # gunicorn's workers all start here at once: one at a time, or each would insert the same account
    # (PostgreSQL: IntegrityError, "Worker failed to boot") or make its own local account.
    with startup_lock(app.config["DATABASE_URL"]):
        if not inspect(router.writer).has_table(Account.__tablename__):
            # `flask init-db` builds the app before it builds the schema: it must not fail here.
            log.warning("the database has no schema yet: run `flask --app app init-db`")
            return
        if sid and token:
            accounts.ensure_account(router, sid, token)
        # Demo mode's account does not count: its token changes at every demo start.
        elif not app.config.get("TESTING") and not accounts.has_accounts(router, besides=(DEMO_ACCOUNT_SID,)):
            credentials = accounts.create_account(router)
            # Shown once: only the database keeps them from now on.
            print(f"Created a local account for the TaskRouter API:\n  TWILIO_ACCOUNT_SID={credentials.sid}\n"
                  f"  TWILIO_AUTH_TOKEN={credentials.secret}\nPut them in .env to keep using them.", flush=True)


api_key_cli = AppGroup("api-key", help="Manage API keys (SK...) for the TaskRouter API.")


@api_key_cli.command("create")
@click.option("--account", "account_sid", required=True, help="The account (AC...) the key belongs to.")
@click.option("--name", "friendly_name", default="API key", show_default=True)
def create_api_key_command(account_sid: str, friendly_name: str) -> None:
    """Create an API key; its secret is printed once and only its hash is kept."""
    try:
        credentials = accounts.create_api_key(get_router(), account_sid, friendly_name)
    except RoutingError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"API key sid: {credentials.sid}\nSecret:      {credentials.secret}\n(the secret is not shown again)")


@api_key_cli.command("list")
@click.option("--account", "account_sid", default=None, help="Only this account's keys (AC...).")
def list_api_keys_command(account_sid: str | None) -> None:
    """List API keys: sid, account, name, when made (their secrets are not kept)."""
    keys = accounts.list_api_keys(get_router(), account_sid)
    if not keys:
        click.echo("No API keys" + (f" for account {account_sid}." if account_sid else "."))
    for key in keys:
        click.echo(f"{key.sid}  {key.account_sid}  {key.date_created:%Y-%m-%d %H:%M} UTC  {key.friendly_name}")


@api_key_cli.command("revoke")
@click.argument("key_sid")
def revoke_api_key_command(key_sid: str) -> None:
    """Delete an API key: requests signed with it are refused (within 30 s in every process)."""
    try:
        key = accounts.revoke_api_key(get_router(), key_sid)
    except RoutingError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Revoked {key.sid} ({key.friendly_name}) of account {key.account_sid}.")
