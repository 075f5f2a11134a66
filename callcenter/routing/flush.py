"""Writing a transaction's changed rows: one UPDATE per changed row, sent straight to the driver.

The engine changes a handful of rows per operation (a task, its reservation, the worker and one of
their channels), and the ORM's unit of work spent about five times as long deciding and sending each
UPDATE as the database spent running it (a fifth of a task's whole lifecycle, bench/engine.py). This
`before_flush` hook writes every changed persistent object itself, then marks it clean, so that the
ORM's flush is left with only new and deleted objects:

- the statement is `UPDATE <table> SET <changed columns> WHERE sid = ?`, built once per shape;
- values go through the column types' own bind processors (SQLite's DATETIME text, for instance);
- rows are written in the ORM's order (tables in dependency order, then by primary key), so that
  concurrent writers on PostgreSQL lock rows in the same order as before;
- a row that is not there (rowcount 0) raises `StaleDataError`, as the ORM does; driver errors are
  wrapped like SQLAlchemy's own (an `IntegrityError` stays an `IntegrityError`);
- `after_update` listeners run for each object, as in the ORM's flush;
- engine listeners on `before_cursor_execute` / `after_cursor_execute` (statement counters, the
  concurrency test's probes) see each statement.

Objects this cannot write are left to the ORM: any mapped class with a `before_update` listener or
`version_id_col`, a changed primary key, or an attribute that is not a plain column.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ColumnProperty, Mapper, Session
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql import ClauseElement

from .statements import execute


def install(sessions: Any) -> None:
    """Write dirty objects of sessions made by `sessions` (a sessionmaker) through `write_updates`."""
    event.listen(sessions, "before_flush", _before_flush)


def _before_flush(session: Session, _flush_context: Any, objects: Any) -> None:
    if objects is None:
        write_updates(session)


def write_updates(session: Session) -> int:
    """Send an UPDATE for each changed persistent object in `session` and mark it clean; returns how many."""
    dirty = session.identity_map._modified
    if not dirty:
        return 0
    deleted = session._deleted
    plans = []
    for state in dirty:
        if state.key is None or (deleted and state in deleted):
            continue
        plan = _plan(state)
        if plan is not None:
            plans.append(plan)
    if not plans:
        return 0
    plans.sort(key=_write_order)
    connection = session.connection()
    dialect = connection.dialect
    cursor = connection.connection.dbapi_connection.cursor()
    written = []
    try:
        for mapper, state, columns, values in plans:
            if columns:
                sql, processors = _statement(mapper.local_table, columns, dialect.paramstyle, dialect)
                params = tuple(value if process is None else process(value)
                               for process, value in zip(processors, values, strict=True))
                execute(connection, cursor, sql, params)
                if cursor.rowcount != 1:
                    raise StaleDataError(f"UPDATE of {mapper.local_table.name} {state.key[1]} matched "
                                         f"{cursor.rowcount} rows, not 1")
            written.append(state)
            if mapper.dispatch.after_update:
                mapper.dispatch.after_update(mapper, connection, state)
    finally:
        cursor.close()
    InstanceState._commit_all_states(((state, state.dict) for state in written), session.identity_map)
    return len(written)


def _plan(state: InstanceState) -> tuple[Mapper, InstanceState, tuple[str, ...], list[Any]] | None:
    """(mapper, state, changed column names, their new values followed by the key), or None when the ORM
    must write this object."""
    mapper = state.mapper
    shape = _shape(mapper)
    if shape is None:
        return None
    columns_of, key_column = shape
    names, values = [], []
    committed = state.committed_state
    current = state.dict
    for key, previous in committed.items():
        column = columns_of.get(key)
        if column is None or column == key_column:
            return None  # not a plain column, or the primary key itself changes
        value = current.get(key, NO_VALUE)
        if value is NO_VALUE:
            return None  # expired or deleted attribute: the ORM knows what that means
        if isinstance(value, ClauseElement):
            return None  # a SQL expression (`count = Model.count + 1`): the ORM renders it
        if previous is NO_VALUE or previous != value:
            names.append(column)
            values.append(value)
    if not names:
        return mapper, state, (), []
    order = sorted(range(len(names)), key=names.__getitem__)
    names = tuple(names[i] for i in order)
    values = [values[i] for i in order]
    values.append(state.key[1][0])
    return mapper, state, names, values


@lru_cache(maxsize=64)
def _shape(mapper: Mapper) -> tuple[dict[str, str], str] | None:
    """Attribute name -> column name for a mapper this module can write, and its key column."""
    if mapper.version_id_col is not None or mapper.dispatch.before_update or mapper.inherits is not None:
        return None
    table = mapper.local_table
    if len(table.primary_key.columns) != 1:
        return None
    columns = {}
    for prop in mapper.iterate_properties:
        if not isinstance(prop, ColumnProperty) or len(prop.columns) != 1:
            continue
        column = prop.columns[0]
        if getattr(column, "table", None) is not table:
            continue
        columns[prop.key] = column.name
    key_column = next(iter(table.primary_key.columns)).name
    return columns, key_column


@lru_cache(maxsize=512)
def _statement(table: Any, columns: tuple[str, ...], paramstyle: str, dialect: Any) -> tuple[str, tuple]:
    """The UPDATE for this set of changed columns, and each value's bind processor (the key last)."""
    mark = "?" if paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    key_column = next(iter(table.primary_key.columns))
    assignments = ", ".join(f"{preparer.quote(name)} = {mark}" for name in columns)
    sql = (f"UPDATE {preparer.format_table(table)} SET {assignments} "
           f"WHERE {preparer.quote(key_column.name)} = {mark}")
    processors = tuple(table.c[name].type._cached_bind_processor(dialect) for name in columns)
    return sql, (*processors, key_column.type._cached_bind_processor(dialect))


def _write_order(plan: tuple) -> tuple:
    mapper, state = plan[0], plan[1]
    return _table_rank(mapper.local_table), state.key[1]


@lru_cache(maxsize=64)
def _table_rank(table: Any) -> int:
    """The table's place in its metadata's dependency order (referenced tables first), as the ORM flushes."""
    for rank, sorted_table in enumerate(table.metadata.sorted_tables):
        if sorted_table is table:
            return rank
    return 0
