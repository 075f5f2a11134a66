"""Fixtures shared by every test: a router on a fresh database with a clock the test moves."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from callcenter.routing import FakeClock, Router

POSTGRES_URL = os.environ.get("CALLCENTER_TEST_POSTGRES_URL")


def _postgres_database() -> str:
    """A new, empty PostgreSQL database for one test; dropped afterwards by the fixture."""
    name = "cc_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def _drop_postgres_database(url: str) -> None:
    name = url.rpartition("/")[2]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each engine test runs on SQLite and, where CALLCENTER_TEST_POSTGRES_URL is set, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'callcenter.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set CALLCENTER_TEST_POSTGRES_URL (e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    url = _postgres_database()
    yield url
    _drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'callcenter.db'}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def router(database_url, clock):
    router = Router(database_url, clock=clock)
    router.create_schema()
    yield router
    router.dispose()
