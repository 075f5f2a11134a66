"""Writing a transaction's new and changed rows straight to the driver, without the ORM's unit of work.

The engine changes a handful of rows per operation (a task, its reservation, the worker and one of
their channels), and the ORM's unit of work spent about five times as long deciding and sending each
UPDATE as the database spent running it (a fifth of a task's whole lifecycle, bench/engine.py). This
`before_flush` hook writes every new and every changed object itself, then marks it persistent and
clean, so that the ORM's flush is left with deleted objects only (and usually has nothing to do):

- an UPDATE is `UPDATE <table> SET <changed columns> WHERE sid = ?`, built once per shape; an INSERT
  names every column, with the column's scalar default where the object has no value and NULL where
  the column has no default at all;
- values go through the column types' own bind processors (SQLite's DATETIME text, for instance);
- rows are written in the ORM's order (tables in dependency order; in each, updates by primary key,
  then inserts in the order the objects were added), so that referenced rows exist first and
  concurrent writers on PostgreSQL lock rows in the same order as before;
- a row that is not there (rowcount 0) raises `StaleDataError`, as the ORM does; driver errors are
  wrapped like SQLAlchemy's own (an `IntegrityError` stays an `IntegrityError`);
- `after_update` / `after_insert` listeners run for each object, and the session's
  `pending_to_persistent` listeners for each new one, as in the ORM's flush;
- engine listeners on `before_cursor_execute` / `after_cursor_execute` (statement counters, the
  concurrency test's probes) see each statement.

Objects this cannot write are left to the ORM: any mapped class with a `before_update` or
`before_insert` listener or a `version_id_col`, a changed primary key, an attribute that is not a
plain column, a value that is a SQL expression, and a new object without its primary key or without
a value for a column whose default is computed (a callable, or on the server).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql import ClauseElement

from . import statements


def install(sessions: Any) -> None:
    """Write new and changed objects of sessions made by `sessions` (a sessionmaker) through `write_changes`."""
    event.listen(sessions, "before_flush", _before_flush)


def _before_flush(session: Session, _flush_context: Any, objects: Any) -> None:
    if objects is None:
        write_changes(session)


def write_changes(session: Session) -> int:
    """Send an UPDATE for each changed persistent object and an INSERT for each new object of `session`,
    and mark them persistent and clean; returns how many objects were written."""
    dirty, new = session.identity_map._modified, session._new
    if not dirty and not new:
        return 0
    deleted = session._deleted
    plans = []
    for state in dirty:
        if state.key is None or (deleted and state in deleted):
            continue
        plan = _plan(state)
        if plan is not None:
            plans.append(plan)
    if new:
        # A new object taking the key of one deleted in the same flush is the ORM's "row switch" (an
        # UPDATE of the old row): left to it.
        switched = {state.key for state in deleted} if deleted else ()
        for state in new:
            if deleted and (state in deleted or state.mapper._identity_key_from_state(state) in switched):
                continue
            plan = _new_row_plan(state)
            if plan is not None:
                plans.append(plan)
    if not plans:
        return 0
    plans.sort(key=_write_order)
    connection = statements.connection(session)
    dialect = connection.dialect
    cursor = connection.connection.dbapi_connection.cursor()
    updated, inserted = [], set()
    try:
        for mapper, state, kind, columns, values in plans:
            if columns:
                sql, converted = _statement(mapper.local_table, kind, columns, dialect.paramstyle, dialect)
                statements.execute(connection, cursor, sql, statements.convert(values, converted))
                if kind == _UPDATE and cursor.rowcount != 1:
                    raise StaleDataError(f"UPDATE of {mapper.local_table.name} {state.key[1]} matched "
                                         f"{cursor.rowcount} rows, not 1")
            if kind == _UPDATE:
                updated.append(state)
                if mapper.dispatch.after_update:
                    mapper.dispatch.after_update(mapper, connection, state)
            else:
                inserted.add(state)
                if mapper.dispatch.after_insert:
                    mapper.dispatch.after_insert(mapper, connection, state)
    finally:
        cursor.close()
    if updated:
        InstanceState._commit_all_states(((state, state.dict) for state in updated), session.identity_map)
        session._register_altered(updated)  # a rollback expires what they hold, as after the ORM's flush
    if inserted:
        session._register_persistent(inserted)  # keys, identity map, commit, pending_to_persistent
    return len(updated) + len(inserted)


_UPDATE, _INSERT = 0, 1


def _plan(state: InstanceState) -> tuple[Mapper, InstanceState, int, tuple[str, ...], list[Any]] | None:
    """(mapper, state, _UPDATE, changed column names, their new values followed by the key), or None when
    the ORM must write this object."""
    mapper = state.mapper
    shape = _shape(mapper)
    if shape is None or mapper.dispatch.before_update:
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
        return mapper, state, _UPDATE, (), []
    order = sorted(range(len(names)), key=names.__getitem__)
    names = tuple(names[i] for i in order)
    values = [values[i] for i in order]
    values.append(state.key[1][0])
    return mapper, state, _UPDATE, names, values


def _new_row_plan(state: InstanceState) -> tuple[Mapper, InstanceState, int, tuple[str, ...], list[Any]] | None:
    """(mapper, state, _INSERT, every column name, the row's values), or None when the ORM must write it.
    Defaults the row takes are set on the object too, as the ORM does."""
    mapper = state.mapper
    shape = _shape(mapper)
    if shape is None or mapper.dispatch.before_insert:
        return None
    key_column = shape[1]
    current = state.dict
    names, values, defaulted = [], [], {}
    for key, (column, default) in _insert_columns(mapper).items():
        value = current.get(key, NO_VALUE)
        if value is NO_VALUE or value is None:  # the ORM leaves the column out: its default applies
            if default is _NO_DEFAULT:
                return None  # computed by a callable or by the server: the ORM knows how
            value = defaulted[key] = default
        elif isinstance(value, ClauseElement):
            return None
        if column == key_column and value is None:
            return None  # generated by the database
        names.append(column)
        values.append(value)
    if defaulted:
        current.update(defaulted)
    return mapper, state, _INSERT, tuple(names), values


_NO_DEFAULT = object()


@lru_cache(maxsize=64)
def _insert_columns(mapper: Mapper) -> dict[str, tuple[str, Any]]:
    """Attribute name -> (column name, the value a new row takes without one: the column's scalar default,
    None for a column without defaults, or _NO_DEFAULT when it is computed)."""
    table = mapper.local_table
    found = {}
    for key, name in _shape(mapper)[0].items():
        column = table.c[name]
        if column.server_default is not None or (column.default is not None and not column.default.is_scalar):
            default = _NO_DEFAULT
        elif column.default is not None:
            default = column.default.arg
        else:
            default = None
        found[key] = (name, default)
    return found


@lru_cache(maxsize=64)
def _shape(mapper: Mapper) -> tuple[dict[str, str], str] | None:
    """Attribute name -> column name for a mapper this module can write, and its key column."""
    if mapper.version_id_col is not None or mapper.inherits is not None:
        return None
    if len(mapper.local_table.primary_key.columns) != 1:
        return None
    columns, keys, key_index = statements.entity(mapper.class_)  # the columns loading reads, in its terms
    return {key: column.name for key, column in zip(keys, columns, strict=True)}, columns[key_index].name


@lru_cache(maxsize=512)
def _statement(table: Any, kind: int, columns: tuple[str, ...], paramstyle: str, dialect: Any) -> tuple[str, tuple]:
    """The UPDATE of these changed columns (values: theirs, then the key), or the INSERT of these columns;
    and `statements.converting` of the values' bind processors."""
    if kind == _INSERT:
        return statements.insert_statement(table, dialect, columns)
    mark = "?" if paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    key_column = next(iter(table.primary_key.columns))
    processors = (*(table.c[name].type._cached_bind_processor(dialect) for name in columns),
                  key_column.type._cached_bind_processor(dialect))
    assignments = ", ".join(f"{preparer.quote(name)} = {mark}" for name in columns)
    sql = (f"UPDATE {preparer.format_table(table)} SET {assignments} "
           f"WHERE {preparer.quote(key_column.name)} = {mark}")
    return sql, statements.converting(processors)


def _write_order(plan: tuple) -> tuple:
    mapper, state, kind = plan[0], plan[1], plan[2]
    return _table_rank(mapper.local_table), kind, state.key[1] if kind == _UPDATE else state.insert_order


@lru_cache(maxsize=64)
def _table_rank(table: Any) -> int:
    """The table's place in its metadata's dependency order (referenced tables first), as the ORM flushes."""
    for rank, sorted_table in enumerate(table.metadata.sorted_tables):
        if sorted_table is table:
            return rank
    return 0
