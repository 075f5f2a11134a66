"""The engine's hot statements, sent straight to the database driver on the transaction's connection.

SQLAlchemy's Core spends about a tenth of a millisecond preparing each execution (execution context,
parameter processing, result metadata), several times what SQLite takes to run the engine's small
statements; a task's lifecycle sends about thirty of them. The statements here are compiled once per
dialect, and each execution only converts its parameters with the column types' bind processors and
calls the driver's cursor. Results are plain tuples.

What stays the same as a Core execution:
- engine listeners on `before_cursor_execute` / `after_cursor_execute` see every statement (statement
  counters, the concurrency test's probes);
- driver errors are wrapped as SQLAlchemy wraps them (`IntegrityError`, `OperationalError`, ...);
- the statement runs on the session's connection, in its transaction.

Only statements without expanding (`IN :list`) parameters or SQL-side defaults are compiled this way;
`insert_rows` writes a table's rows when every column it leaves out has no Python-side default, and
falls back to Core otherwise.
"""

from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, exc, inspect, select
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.util import identity_key

_COMPILED: dict[tuple[int, str], tuple[Any, str, tuple, bool, dict]] = {}
_INSERTS: dict[tuple[Any, str, tuple[str, ...]], tuple[str, tuple] | None] = {}


def connection(session: Any) -> Any:
    """`session.connection()`, remembered for the session's current transaction: asking the session costs
    more than most of the statements sent on it, and the engine asks several times per operation."""
    transaction = session._transaction
    remembered = session.info.get(_CONNECTION)
    if transaction is not None and remembered is not None and remembered[0] is transaction:
        return remembered[1]
    found = session.connection()
    session.info[_CONNECTION] = (session._transaction, found)
    return found


_CONNECTION = "callcenter.routing.statements.connection"


def run(connection: Any, statement: Any, params: dict[str, Any] | None = None) -> list[tuple]:
    """Execute a prebuilt Core or text statement with `params`; returns its rows (empty for DML)."""
    sql, plan, positional, defaults = _compiled(statement, connection.dialect)
    values = _values(params or {}, plan, positional, defaults)
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        execute(connection, cursor, sql, values)
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        cursor.close()


def run_many(connection: Any, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Execute a prebuilt DML statement once per parameter set (one `executemany`)."""
    sql, plan, positional, defaults = _compiled(statement, connection.dialect)
    execute(connection, None, sql, [_values(row, plan, positional, defaults) for row in rows], many=True)


def insert_rows(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts) into `table`: one `executemany` per set of keys, in the rows' order."""
    start = 0
    while start < len(rows):
        keys = tuple(rows[start])
        end = start + 1
        while end < len(rows) and tuple(rows[end]) == keys:
            end += 1
        _insert_same_keys(connection, table, keys, rows[start:end])
        start = end


def _insert_same_keys(connection: Any, table: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    dialect = connection.dialect
    plan_key = (table, dialect.name, keys)
    if plan_key not in _INSERTS:
        _INSERTS[plan_key] = _insert_plan(table, dialect, keys)
    plan = _INSERTS[plan_key]
    if plan is None:
        connection.execute(table.insert(), rows)
        return
    sql, converted = plan
    values_of = itemgetter(*keys) if len(keys) > 1 else (lambda row, key=keys[0]: (row[key],))
    params = [convert(list(values_of(row)), converted) for row in rows] if converted else [values_of(row) for row in rows]
    execute(connection, None, sql, params, many=True)


def converting(processors: tuple) -> tuple[tuple[int, Any], ...]:
    """(index, processor) of the processors that are not None: the values `convert` has to change."""
    return tuple((index, process) for index, process in enumerate(processors) if process is not None)


def convert(values: list[Any], converted: tuple[tuple[int, Any], ...]) -> tuple:
    """`values` (changed in place) through `converting`'s processors, as a tuple for the driver."""
    for index, process in converted:
        values[index] = process(values[index])
    return tuple(values)


def execute(connection: Any, cursor: Any, sql: str, params: Any, *, many: bool = False) -> Any:
    """Run `sql` on the connection's driver cursor (a new one when `cursor` is None), with the engine's
    cursor listeners and SQLAlchemy's error wrapping."""
    own = cursor is None
    if own:
        cursor = connection.connection.dbapi_connection.cursor()
    dispatch = connection.dispatch if connection._has_events or connection.engine._has_events else None
    try:
        if dispatch is not None and dispatch.before_cursor_execute:
            for listener in dispatch.before_cursor_execute:
                sql, params = listener(connection, cursor, sql, params, None, many) or (sql, params)
        dbapi = connection.dialect.loaded_dbapi
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except dbapi.Error as error:
            raise exc.DBAPIError.instance(sql, params, error, dbapi.Error, dialect=connection.dialect,
                                          ismulti=many) from error
        if dispatch is not None and dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(connection, cursor, sql, params, None, many)
        return cursor
    finally:
        if own:
            cursor.close()


def _compiled(statement: Any, dialect: Any) -> tuple[str, tuple, bool, dict]:
    key = (id(statement), dialect.name)
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding or literal-execute parameters cannot be precompiled")
        positional = dialect.paramstyle in ("qmark", "format", "numeric")
        processors = {name: bind.type._cached_bind_processor(dialect) for name, bind in
                      ((name, compiled.binds[name]) for name in compiled.bind_names.values())}
        # (name, bind processor or None) in the order the driver takes them (positional paramstyles) or
        # in any order (named ones).
        plan = tuple((name, processors[name]) for name in (compiled.positiontup if positional else processors))
        defaults = {compiled.bind_names[bind]: bind.value for bind in compiled.bind_names
                    if bind.value is not None or not bind.required}
        found = _COMPILED[key] = (statement, compiled.string, plan, positional, defaults)
    return found[1:]


def _values(params: dict[str, Any], plan: tuple, positional: bool, defaults: dict) -> Any:
    values = []
    for name, process in plan:
        given = params[name] if name in params else defaults[name]
        values.append(given if process is None else process(given))
    if positional:
        return tuple(values)
    return {name: value for (name, _process), value in zip(plan, values, strict=True)}


def _insert_plan(table: Any, dialect: Any, keys: tuple[str, ...]) -> tuple[str, tuple] | None:
    for column in table.columns:
        if column.key not in keys and column.default is not None:
            return None  # a Python-side default the rows leave to SQLAlchemy
    return insert_statement(table, dialect, keys)


def insert_statement(table: Any, dialect: Any, keys: tuple[str, ...]) -> tuple[str, tuple]:
    """`INSERT INTO table (keys) VALUES (...)` in the dialect's paramstyle, and `converting` of the values'
    bind processors."""
    columns = [table.c[key] for key in keys]
    preparer = dialect.identifier_preparer
    marks = ", ".join(("?" if dialect.paramstyle == "qmark" else "%s") for _ in columns)
    sql = (f"INSERT INTO {preparer.format_table(table)} "
           f"({', '.join(preparer.quote(column.name) for column in columns)}) VALUES ({marks})")
    return sql, converting(tuple(column.type._cached_bind_processor(dialect) for column in columns))


def load(session: Any, model: type, sid: str) -> Any:
    """The `model` row with primary key `sid` as a persistent object of `session`, or None.

    Already in the session, it is returned as is, without SQL. Changes to loaded objects cannot alter which
    row a primary key finds, so they are not flushed first; objects added since the last flush are (one of
    them may be the one asked for).
    """
    found = session.identity_map.get(identity_key(model, sid))
    if found is not None:
        return found
    rows = load_rows(session, _by_key(model), {"sid": sid}, (model,), flush=bool(session._new))
    return rows[0][0] if rows else None


def columns_of(model: type) -> list[Any]:
    """The table columns mapped as `model`'s attributes, in the order `load_rows` reads them."""
    return list(entity(model)[0])


def select_rows_of(*models: type) -> Any:
    """`SELECT` of `columns_of(model)` for each of `models` in turn, from the first: add its joins and
    conditions, and read its rows with `load_rows(..., models)`."""
    return select(*(column for model in models for column in columns_of(model))).select_from(models[0])


def load_rows(session: Any, statement: Any, params: dict[str, Any], models: tuple[type, ...], *,
              flush: bool = True) -> list[tuple[Any, ...]]:
    """Run `statement`, a SELECT of `columns_of(model)` for each of `models` in turn, and return each row as
    a tuple of persistent objects of `session` (None where an outer join found nothing).

    What a query through the session does, without its machinery: pending changes are flushed first
    (`flush=False` when they cannot matter), objects already in the session are returned as they are
    (their unflushed values win, as with the ORM), and new ones are attached as if a query had loaded
    them: values converted by the column types' result processors, nothing to write at flush.
    """
    if flush:
        session.flush()
    bound = connection(session)
    rows = run(bound, statement, params)
    dialect = bound.dialect
    plans = [(*entity(model), _converted(model, dialect), model) for model in models]
    loaded = []
    for row in rows:
        objects, start = [], 0
        for columns, keys, key_index, converted, model in plans:
            end = start + len(columns)
            objects.append(_attach(session, model, keys, key_index, converted, row[start:end]))
            start = end
        loaded.append(tuple(objects))
    return loaded


def _attach(session: Any, model: type, keys: tuple[str, ...], key_index: int, converted: tuple,
            values: tuple) -> Any:
    sid = values[key_index]
    if sid is None:
        return None
    mapper = model.__mapper__
    key = (mapper._identity_class, (sid,), None)
    found = session.identity_map.get(key)
    if found is not None:
        return found
    manager = mapper.class_manager
    instance = manager.new_instance()
    loaded = dict(zip(keys, values, strict=True))
    for index, name, process in converted:
        loaded[name] = process(values[index])
    instance.__dict__.update(loaded)
    # What the ORM's own loader does with a row it has not seen: the object is persistent in this
    # session, its values are loaded and unchanged; listeners hear of the load as they do of a merge's
    # (without a query context).
    state = instance_state(instance)
    state.key = key
    state.identity_token = None
    state.session_id = session.hash_key
    session.identity_map._add_unpresent(state, key)
    if manager.dispatch.load:
        manager.dispatch.load(state, None)
    if session.dispatch.loaded_as_persistent:
        session.dispatch.loaded_as_persistent(session, state)
    return instance


@lru_cache(maxsize=64)
def entity(model: type) -> tuple[tuple[Any, ...], tuple[str, ...], int]:
    """(columns, attribute keys, index of the primary key) of a single-table mapped class: the attributes
    that are one column of its own table."""
    mapper = inspect(model)
    table = mapper.local_table
    props = [prop for prop in mapper.column_attrs if len(prop.columns) == 1 and prop.columns[0].table is table]
    columns = tuple(prop.columns[0] for prop in props)
    key_column = next(iter(table.primary_key.columns))
    return columns, tuple(prop.key for prop in props), columns.index(key_column)


@lru_cache(maxsize=64)
def _converted(model: type, dialect: Any) -> tuple[tuple[int, str, Any], ...]:
    """(index, attribute key, result processor) of `model`'s columns whose values the driver returns in
    another form (datetimes as text on SQLite, ...)."""
    columns, keys, _key_index = entity(model)
    processors = (column.type._cached_result_processor(dialect, None) for column in columns)
    return tuple((index, keys[index], process) for index, process in converting(tuple(processors)))


@lru_cache(maxsize=64)
def _by_key(model: type) -> Any:
    key_column = next(iter(model.__table__.primary_key.columns))
    return select_rows_of(model).where(key_column == bindparam("sid"))
