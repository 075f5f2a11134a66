"""Fixtures shared by every test: a database with the schema in place, a router on it, and a clock the test moves.

Each engine and API test runs on SQLite and, when CALLCENTER_TEST_POSTGRES_URL is set, on PostgreSQL.
Building a schema per test would dominate the suite's time, so the schema is built once per session
(stamped with the Alembic head, as `init-db` would leave it): SQLite tests get a copy of a template
file, PostgreSQL tests share one database per test process, emptied before each test.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from werkzeug.routing.rules import Rule

from callcenter.database import alembic_config
from callcenter.routing import FakeClock, Router
from callcenter.schema import metadata as schema_metadata

# A developer's `.env` (README: `cp .env.example .env`) must not change what the tests see: the app's settings
# and Flask's CLI both leave it unread with this.
os.environ["FLASK_SKIP_DOTENV"] = "1"


def _compile_each_url_builder_once() -> None:
    """The suite builds a Flask app per test (about a thousand), and werkzeug compiles a Python function per
    URL rule for each one (ast, then compile): a fifth of a second per app, a third of the suite's time.
    The function depends only on the rule's parts, so one compiled per distinct rule serves every app."""
    compile_builder = Rule._compile_builder
    compiled: dict = {}

    def cached(rule: Rule, append_unknown: bool = True):
        key = (rule.rule, tuple(rule._trace), repr(sorted((rule.defaults or {}).items())), append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(rule, append_unknown)
        return compiled[key]

    Rule._compile_builder = cached


_compile_each_url_builder_once()

POSTGRES_URL = os.environ.get("CALLCENTER_TEST_POSTGRES_URL")
POSTGRES_SKIP_REASON = ("PostgreSQL not configured: set CALLCENTER_TEST_POSTGRES_URL "
                        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")


def _postgres_database() -> str:
    """A new, empty PostgreSQL database; the caller drops it with `_drop_postgres_database`."""
    name = "cc_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # Tests need no durability: without waiting for fsync at each commit they run several times faster.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def _drop_postgres_database(url: str) -> None:
    name = url.rpartition("/")[2]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _build_schema(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    schema_metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(url), "head")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("template") / "callcenter.db"
    _build_schema(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def postgres_session_url():
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    url = _postgres_database()
    _build_schema(url)
    engine = create_engine(url)
    # DELETE beats TRUNCATE on tables this small (TRUNCATE replaces every table's files); all of them in
    # one round trip (psycopg sends a parameterless string of several statements as one query).
    statements = ["; ".join(f'DELETE FROM "{table.name}"' for table in reversed(schema_metadata.sorted_tables))]
    yield url, engine, statements
    engine.dispose()
    _drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A database with the current schema and no rows, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "callcenter.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url, engine, statements = request.getfixturevalue("postgres_session_url")
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database without any table, for tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    url = _postgres_database()
    yield url
    _drop_postgres_database(url)


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "app.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def router(database_url, clock):
    router = Router(database_url, clock=clock)
    yield router
    router.dispose()
