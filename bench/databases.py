"""A throwaway database for one benchmark run: a SQLite file in a scratch folder, or a new PostgreSQL
database dropped afterwards. Shared by `api.py` and `scale.py` (run as scripts, so this folder is on
their import path)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


@contextmanager
def fresh_database(backend: str, scratch: Path, postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of an empty database named `<prefix>-...` (SQLite) or `cc_<prefix>_...` (PostgreSQL)."""
    if backend == "sqlite":
        path = scratch / f"{prefix}-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"cc_{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_url.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
