"""The app factory, its CLI commands, and the schema migrations."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import click
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from flask.cli import cli as flask_cli
from sqlalchemy import create_engine, inspect, select, text

from app import create_app
from callcenter.database import alembic_config, one_off_command, upgrade_database
from callcenter.routing import Router, workers, workspaces
from callcenter.routing.models import Base, WorkerChannel
from callcenter.routing.outbox import Sweeper


@pytest.fixture
def app(sqlite_url):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True})
    yield app
    app.extensions["router"].dispose()


def test_health_reports_the_database_it_reached(app):
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "sqlite"}


def test_health_answers_503_while_the_schema_is_missing_or_behind_this_code(empty_database_url):
    """Reachable, but every request would fail: a load balancer must keep traffic away until `init-db`."""
    app = create_app({"TESTING": True, "DATABASE_URL": empty_database_url, "RUN_SWEEPER": False,
                      "AUTO_MIGRATE": False})
    try:
        missing = app.test_client().get("/health")
        assert missing.status_code == 503 and "no schema" in missing.get_json()["error"]
        command.upgrade(alembic_config(empty_database_url), "0007")
        behind = app.test_client().get("/health")
        assert behind.status_code == 503 and "the schema is at 0007" in behind.get_json()["error"]
        upgrade_database(empty_database_url)
        assert app.test_client().get("/health").status_code == 200
    finally:
        app.extensions["router"].dispose()


def test_health_answers_503_when_the_database_is_unreachable_and_keeps_the_drivers_message_in_the_log(
        tmp_path, caplog):
    """The driver's message (here the file's path; on PostgreSQL the host, user and database) is for the
    operator's log, not for whoever can reach /health."""
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/missing-dir/db.sqlite",
                      "RUN_SWEEPER": False,
                      "AUTO_MIGRATE": False})
    with caplog.at_level("ERROR", logger="callcenter.health"):
        response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "sqlite",
                                   "error": "the database is unreachable (OperationalError; see the log)"}
    assert "unable to open database file" in caplog.text


def test_event_retention_days_reach_the_engine(sqlite_url, monkeypatch):
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "7")
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True})
    try:
        assert app.extensions["router"].event_retention == timedelta(days=7)
    finally:
        app.extensions["router"].dispose()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("EVENT_RETENTION_DAYS", "a month", r"EVENT_RETENTION_DAYS must be a whole number of days"),
    ("CALL_RETENTION_DAYS", "90d", r"CALL_RETENTION_DAYS must be a whole number of days \(0 keeps call records"),
    ("CALLBACK_BLOCKED_NETWORKS", "private,10.0.0.0/33", r"CALLBACK_BLOCKED_NETWORKS: '10\.0\.0\.0/33' is not a network"),
])
def test_a_bad_setting_stops_the_app_before_it_touches_the_database(tmp_path, setting, value, message):
    url = f"sqlite:///{tmp_path}/never.db"
    with pytest.raises(ValueError, match=message):
        create_app({"TESTING": True, "DATABASE_URL": url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True, setting: value})
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(("setting", "value"), [
    ("RUN_SWEEPER", "ture"), ("AUTO_MIGRATE", "nope"), ("API_ATTRIBUTES_IN_LISTS", "2"),
    ("PORT", "abc"), ("DATABASE_POOL_SIZE", "0"), ("DATABASE_MAX_OVERFLOW", "-3"), ("DATABASE_POOL_TIMEOUT", "-1"),
    ("DATABASE_POOL_RECYCLE", "1h"), ("SWEEP_INTERVAL", "0"), ("SERVICE_LEVEL_SECONDS", "-20"),
    ("SESSION_LIFETIME_HOURS", "-1"), ("SESSION_IDLE_MINUTES", "nan"), ("LIVE_STREAMS_PER_USER", "0"),
    ("LIVE_STREAM_SECONDS", "-5"), ("LIVE_QUEUE_NOTICE_SECONDS", "x"),
    # a base URL without a scheme built every webhook URL wrong: each webhook then answered 403
    ("PUBLIC_BASE_URL", "cc.example.com"), ("CALLBACK_BASE_URL", "127.0.0.1:8000"),
    ("TWILIO_API_BASE_URL", "https://api.twilio.com/?x=1"), ("PUBLIC_BASE_URL", "ftp://cc.example.com"),
    ("LOG_LEVEL", "verbose"), ("FORWARDED_ALLOW_IPS", "10.0.0.0/8,proxy.internal"),
])
def test_a_mistyped_setting_in_the_environment_stops_the_start_and_is_named(monkeypatch, setting, value):
    """Read as false, a mistyped RUN_SWEEPER=ture silently stopped every timer and callback."""
    from callcenter.config import load_config

    monkeypatch.setenv(setting, value)
    with pytest.raises(ValueError, match=rf"^{setting} must be .*not '{re.escape(value)}'"):
        load_config()


def test_settings_in_the_environment_are_read(monkeypatch):
    from callcenter.config import load_config

    for name, value in {"RUN_SWEEPER": "off", "AUTO_MIGRATE": "YES", "SWEEP_INTERVAL": "0.25", "PORT": "8000",
                        "DATABASE_MAX_OVERFLOW": "0", "LIVE_QUEUE_NOTICE_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    assert (config["RUN_SWEEPER"], config["AUTO_MIGRATE"], config["SWEEP_INTERVAL"], config["PORT"]) == (
        False, True, 0.25, 8000)
    assert (config["DATABASE_MAX_OVERFLOW"], config["LIVE_QUEUE_NOTICE_SECONDS"]) == (0, 0.0)


def test_a_developers_dotenv_is_read_by_the_app_and_not_by_the_tests(monkeypatch, tmp_path):
    """With Twilio settings or a typo in `.env` (README's ngrok steps), tests failed or stopped at collection."""
    from callcenter.config import load_config

    (tmp_path / ".env").write_text("RUN_SWEEPER=ture\nSERVICE_LEVEL_SECONDS=45\n")
    monkeypatch.chdir(tmp_path)
    for name in ("SERVICE_LEVEL_SECONDS", "RUN_SWEEPER"):  # recorded, so the values read from .env go at the end
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    assert load_config()["SERVICE_LEVEL_SECONDS"] == 20  # the suite's FLASK_SKIP_DOTENV (tests/conftest.py)
    monkeypatch.setenv("FLASK_SKIP_DOTENV", "0")
    with pytest.raises(ValueError, match="RUN_SWEEPER must be true or false"):
        load_config()


def test_the_example_secret_key_and_a_database_url_that_is_not_one_are_refused(monkeypatch, tmp_path):
    from callcenter.config import load_config

    monkeypatch.setenv("SECRET_KEY", "change-me")
    with pytest.raises(ValueError, match=r"SECRET_KEY is still \.env\.example.s placeholder"):
        load_config()
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("DATABASE_URL", "callcenter.db")
    with pytest.raises(ValueError, match=r"DATABASE_URL must be a database URL .*not .callcenter\.db."):
        load_config()
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR must be a directory this process can write to"):
        load_config()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert load_config()["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)


def test_base_urls_are_read_without_their_trailing_slash(monkeypatch):
    from callcenter.config import load_config

    monkeypatch.setenv("PUBLIC_BASE_URL", " https://abc.ngrok.app/ ")
    monkeypatch.setenv("CALLBACK_BASE_URL", "")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    config = load_config()
    assert (config["PUBLIC_BASE_URL"], config["CALLBACK_BASE_URL"], config["TWILIO_API_BASE_URL"]) == (
        "https://abc.ngrok.app", None, "https://api.twilio.com")
    assert config["LOG_LEVEL"] == "WARNING"


@pytest.mark.parametrize("args", [["check"], ["init-db"], ["routing", "check"]])
def test_a_one_off_command_does_not_start_the_sweeper(monkeypatch, sqlite_url, args):
    """`flask --app app check` (or init-db, contact-center load...) used to start the sweeper as the app
    it served does: timers fired and callbacks went out behind the command's back, cut off at its exit."""
    started = []
    monkeypatch.setattr(Sweeper, "start", lambda self: started.append(self) or self)
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")  # flask's CLI sets it to "true"; put back after
    for name, value in {"DATABASE_URL": sqlite_url, "RUN_SWEEPER": "true", "AUTO_MIGRATE": "true"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(flask_cli, ["--app", "app", *args])
    assert result.exit_code == 0, result.output
    assert started == []


def test_flask_run_sweeps_and_a_served_app_sweeps(monkeypatch, sqlite_url):
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    with click.Context(click.Command("run"), info_name="run"):
        assert not one_off_command()
    with click.Context(click.Group("flask"), info_name="flask"):  # loading the app to find a command
        assert one_off_command()
    monkeypatch.delenv("FLASK_RUN_FROM_CLI")
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "RUN_SWEEPER": True, "AUTO_MIGRATE": True})
    try:
        assert app.extensions["sweeper"] is not None
    finally:
        app.extensions["sweeper"].stop()
        app.extensions["router"].dispose()


def test_init_db_command_is_safe_to_run_twice(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output


def test_routing_check_command_reports_zero_violations_on_a_consistent_database(app):
    router = app.extensions["router"]
    workspaces.create_workspace(router, account_sid="AC" + "1" * 32, friendly_name="Checked")
    result = app.test_cli_runner().invoke(args=["routing", "check"])
    assert result.exit_code == 0, result.output
    assert "0 violation(s)" in result.output


def test_routing_check_command_fails_and_lists_a_violation(app):
    from sqlalchemy import update

    from callcenter.routing.models import WorkerChannel

    router = app.extensions["router"]
    ws = workspaces.create_workspace(router, account_sid="AC" + "1" * 32, friendly_name="Broken").sid
    from callcenter.routing import workers

    worker = workers.create_worker(router, ws, friendly_name="alice")
    with router.writer.begin() as conn:
        conn.execute(update(WorkerChannel).where(WorkerChannel.worker_sid == worker.sid).values(reserved_tasks=1))
    result = app.test_cli_runner().invoke(args=["routing", "check"])
    assert result.exit_code == 1
    assert "counter says 1 reserved, reservations say 0" in result.output


def test_migrations_build_exactly_the_schema_the_models_describe(empty_database_url):
    database_url = empty_database_url
    upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                           Base.metadata)
        assert differences == []
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migrations_make_partial_exactly_the_indexes_the_models_make_partial(empty_database_url):
    """Alembic's comparison above does not look at an index's WHERE: a partial index built whole by a
    migration (or the reverse) would pass it."""
    database_url = empty_database_url
    upgrade_database(database_url)
    engine = create_engine(database_url)
    dialect = engine.dialect.name
    try:
        with engine.connect() as conn:
            if dialect == "sqlite":
                built = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all())
            else:
                built = dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all())
    finally:
        engine.dispose()
    partial = 0
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options[dialect]["where"]
            definition = " ".join((built[index.name] or "").split())
            if where is None:
                assert " WHERE " not in definition, index.name
                continue
            partial += 1
            assert " WHERE " in definition, f"{index.name} is built whole: {definition}"
            if dialect == "sqlite":
                assert definition.endswith(f"WHERE {where.text}"), definition
    assert partial >= 6  # the waiting tasks' two, the events' four


def test_router_works_on_a_migrated_database(empty_database_url):
    database_url = empty_database_url
    upgrade_database(database_url)
    router = Router(database_url)
    try:
        ws = workspaces.create_workspace(router, account_sid="AC" + "2" * 32, friendly_name="Migrated")
        assert ws.default_activity_sid is not None
    finally:
        router.dispose()


def test_widening_worker_name_keys_keeps_every_worker_and_what_refers_to_them(empty_database_url):
    """0012 rebuilds `workers` on SQLite (copy, drop, rename): a worker's channels, which go with their worker,
    stay; and a 64-character name folding to 128 is then stored."""
    command.upgrade(alembic_config(empty_database_url), "0011")
    router = Router(empty_database_url)
    try:
        ws = workspaces.create_workspace(router, account_sid="AC" + "2" * 32, friendly_name="Before 0012").sid
        alice = workers.create_worker(router, ws, friendly_name="Alice").sid
        channels = _channels_of(router, alice)
    finally:
        router.dispose()
    upgrade_database(empty_database_url)
    router = Router(empty_database_url)
    try:
        assert channels and _channels_of(router, alice) == channels
        assert workers.create_worker(router, ws, friendly_name="ß" * 64).name_key == "ss" * 64
    finally:
        router.dispose()


def _channels_of(router: Router, worker_sid: str) -> list[str]:
    with router.read() as session:
        return sorted(session.scalars(select(WorkerChannel.sid).where(WorkerChannel.worker_sid == worker_sid)))


def test_processes_upgrading_at_once_through_the_concurrent_index_builds_all_finish(empty_database_url):
    """gunicorn boots its workers at once, and each upgrades the schema. A process waiting for the start-up lock
    must hold no snapshot: the holder's CREATE INDEX CONCURRENTLY waits for every snapshot to end, and each
    would wait for the other for ever (it did, at 0008 -> 0009)."""
    import threading

    command.upgrade(alembic_config(empty_database_url), "0008")
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            upgrade_database(empty_database_url)
        except BaseException as err:  # reported below
            errors.append(err)

    runs = [threading.Thread(target=upgrade, daemon=True) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert not any(run.is_alive() for run in runs), "an upgrade is still waiting: the start-up lock deadlocked"
    assert errors == []
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgraded_after_a_dead_build(database_url: str, revision: str, *leftovers: str) -> dict[str, str]:
    """Upgrade to `revision`, run `leftovers` (what an upgrade that died midway left), upgrade to the head;
    returns each index's definition. PostgreSQL only: there indexes are built CONCURRENTLY, outside the
    migration's transaction, so a dead upgrade can leave them half done."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite builds indexes inside the migration's transaction")
    command.upgrade(alembic_config(database_url), revision)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in leftovers:
                conn.execute(text(statement))
        upgrade_database(database_url)
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all())
    finally:
        engine.dispose()


def test_the_lifo_index_is_rebuilt_when_an_earlier_upgrade_left_a_broken_one(empty_database_url):
    """0009: an upgrade that died while building the index leaves one by that name behind (invalid),
    which the next upgrade replaces."""
    built = upgraded_after_a_dead_build(empty_database_url, "0008", "CREATE INDEX ix_tasks_waiting_lifo ON tasks (sid)")
    assert "(task_queue_sid, task_channel_sid, virtual_start_time, sid) WHERE" in built["ix_tasks_waiting_lifo"]


def test_the_partial_event_indexes_are_built_again_when_an_earlier_upgrade_died_midway(empty_database_url):
    """0011 builds each partial index under a temporary name, then swaps it in: an upgrade that died there
    leaves the temporary one (here a wrong one) and maybe no old one; the next upgrade mends both."""
    built = upgraded_after_a_dead_build(empty_database_url, "0010", "DROP INDEX ix_events_worker",
                                        "CREATE INDEX ix_events_worker_partial ON events (sid)")
    assert "ix_events_worker_partial" not in built
    assert "(worker_sid, event_date) WHERE (worker_sid IS NOT NULL)" in built["ix_events_worker"]


def test_init_db_builds_an_empty_database_when_credentials_are_configured(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    app = create_app({"DATABASE_URL": url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
                      "TWILIO_ACCOUNT_SID": "AC" + "3" * 32, "TWILIO_AUTH_TOKEN": "token"})
    try:
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        engine = create_engine(url)
        assert {"accounts", "workspaces", "tasks", "alembic_version"} <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        app.extensions["router"].dispose()


def test_a_start_without_credentials_makes_an_api_account_even_after_demo_mode(sqlite_url, capsys):
    """Demo mode's account (its token new at each demo start) made every later start skip the local account
    README promises: the API then had no credentials that worked."""
    from callcenter.routing import accounts
    from callcenter.simulator.demo import DEMO_ACCOUNT_SID

    settings = {"DATABASE_URL": sqlite_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True,
                "TWILIO_ACCOUNT_SID": None, "TWILIO_AUTH_TOKEN": None}
    router = Router(sqlite_url)
    accounts.ensure_account(router, DEMO_ACCOUNT_SID, "demo-token")
    router.dispose()
    capsys.readouterr()
    for made in (True, False):  # the second start finds the account the first one made
        app = create_app(settings)
        app.extensions["router"].dispose()
        assert ("Created a local account for the TaskRouter API" in capsys.readouterr().out) is made


def test_an_api_key_for_an_unknown_account_is_refused_in_one_line(app):
    result = app.test_cli_runner().invoke(args=["api-key", "create", "--account", "AC" + "9" * 32])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output


def test_api_keys_are_listed_and_revoked_from_the_command_line(app):
    from callcenter.routing import accounts

    router = app.extensions["router"]
    account = accounts.create_account(router, sid="AC" + "5" * 32, auth_token="token")
    runner = app.test_cli_runner()
    made = runner.invoke(args=["api-key", "create", "--account", account.sid, "--name", "CRM sync"])
    key_sid, secret = re.findall(r"API key sid: (SK\w+)\nSecret:\s+(\S+)", made.output)[0]
    client = app.test_client()
    basic = {"Authorization": "Basic " + base64.b64encode(f"{key_sid}:{secret}".encode()).decode()}
    assert client.get("/v1/Workspaces", headers=basic).status_code == 200

    listed = runner.invoke(args=["api-key", "list", "--account", account.sid])
    assert listed.exit_code == 0 and key_sid in listed.output and "CRM sync" in listed.output
    assert secret not in listed.output
    revoked = runner.invoke(args=["api-key", "revoke", key_sid])
    assert revoked.exit_code == 0 and f"Revoked {key_sid} (CRM sync)" in revoked.output

    app.extensions["credentials"].clear()  # what other processes do within 30 s
    assert client.get("/v1/Workspaces", headers=basic).status_code == 401
    assert "No API keys for account" in runner.invoke(args=["api-key", "list", "--account", account.sid]).output
    again = runner.invoke(args=["api-key", "revoke", key_sid])
    assert again.exit_code == 1 and f"API key {key_sid} not found" in again.output
    long_name = runner.invoke(args=["api-key", "create", "--account", account.sid, "--name", "n" * 65])
    assert long_name.exit_code == 1 and "FriendlyName must be at most 64" in long_name.output
