"""Set-wise statements at driver speed: large executemany writes, and long id lists.

`in_ids` is how every repository asks for the rows of many ids at once. SQLAlchemy's
`column.in_(ids)` binds one parameter per id and compiles the statement again for each
length (an "expanding" parameter), which was a tenth of an ingest batch's time; and
SQLite caps bound parameters, so callers chunked the ids. `in_ids` binds the whole list as
one value instead: a PostgreSQL array (`= ANY(:ids)`), or on SQLite a JSON array read by
the built-in `json_each`. The statement compiles once and is cached like any other.

executemany at driver speed, for the ingest path's large INSERTs and UPDATEs:

`conn.execute(stmt, rows)` makes SQLAlchemy build and process a parameter dict per row in
Python (`construct_params`, then each bind processor), which took a third of ingest's
time at 5,000 events a batch. `executemany` compiles the statement once, runs each
column's own bind processor over a whole column at a time (map, not a loop per value),
and hands the driver one list: the values stored are exactly those SQLAlchemy would store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    Update,
    and_,
    any_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy import column as named_column
from sqlalchemy.dialects import postgresql, sqlite


def executemany(conn: Connection, stmt: Insert | Update, rows: list[dict[str, Any]]) -> int:
    """Run `stmt` once per row; returns the rows the database reports as changed.

    Every row carries the same keys: for an INSERT, column names (columns not given take
    their Python-side default); for an UPDATE, the names of its `bindparam`s (columns not
    set take their `onupdate`). Defaults are evaluated once per call. Both drivers sum
    rowcount over executemany, and a row skipped by ON CONFLICT DO NOTHING counts 0.
    """
    if not rows:
        return 0
    dialect = conn.dialect
    given = list(rows[0])
    fixed: dict[str, Any] = {}
    table: Any = stmt.table
    for column in table.c:
        # Python-side INSERT defaults and UPDATE onupdate values of columns not given,
        # evaluated once per call (one timestamp per batch).
        default: Any = column.default if isinstance(stmt, Insert) else column.onupdate
        if column.name in rows[0] or default is None:
            continue
        if default.is_callable:
            fixed[column.name] = default.arg(None)
        elif default.is_scalar:
            fixed[column.name] = default.arg
    if isinstance(stmt, Insert):
        compiled = stmt.compile(dialect=dialect, column_keys=[*given, *fixed])
    else:
        compiled = stmt.compile(dialect=dialect)
    binds = compiled.binds
    if compiled.positional and compiled.positiontup is not None:
        order = list(compiled.positiontup)
    else:
        order = list(binds)
    columns: list[list[Any]] = []
    done: dict[str, list[Any]] = {}  # a parameter used twice (CASE ... THEN it) is made once
    n = len(rows)
    for name in order:
        if name in done:
            columns.append(done[name])
            continue
        bind = binds[name]
        proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in rows[0]:
            values = [row[name] for row in rows]
            column = list(map(proc, values)) if proc else values
        else:
            value = fixed.get(name, bind.effective_value)
            column = [proc(value) if proc else value] * n
        columns.append(column)
        done[name] = column
    params: list[Any] = list(zip(*columns, strict=True))
    if not compiled.positional:
        params = [dict(zip(order, values, strict=True)) for values in params]
    result = conn.exec_driver_sql(compiled.string, params)
    return int(result.rowcount)


def insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]], key: str) -> int:
    """INSERT rows, skipping those whose unique `key` already exists; returns rows added."""
    if not rows:
        return 0
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return executemany(
        conn, module.insert(table).on_conflict_do_nothing(index_elements=[key]), rows
    )


def in_ids(conn: Connection, column: Any, ids: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN ids`, with the ids bound as one value (see the module docstring).

    Ids are integers, strings or UUIDs (SQLAlchemy's `Uuid` stores 32 hex digits on SQLite).
    """
    values = list(ids)
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    text = orjson.dumps([v.hex if isinstance(v, uuid.UUID) else v for v in values]).decode()
    each: Select[Any] = select(named_column("value")).select_from(func.json_each(literal(text)))
    return column.in_(each.scalar_subquery())  # type: ignore[no-any-return]


def copy_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> int:
    """PostgreSQL only: `COPY table (keys of the rows) FROM STDIN`; returns rows written.

    Values go through each column's bind processor (UTC datetimes, JSON text), then
    psycopg's COPY writer; columns the rows do not name take their server default.
    """
    names = list(rows[0])
    dialect = conn.dialect
    procs = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    columns = [
        list(map(proc, [row[name] for row in rows])) if proc else [row[name] for row in rows]
        for name, proc in zip(names, procs, strict=True)
    ]
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    target = dialect.identifier_preparer.format_table(table)
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cur, cur.copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
        for values in zip(*columns, strict=True):
            copy.write_row(values)
    return len(rows)


def later(column: Any, value: Any) -> Any:
    """SET value for `column`: `value` when it is later (or the column is empty), else the
    column as it is: a last-seen time only ever moves forward."""
    return case(
        (and_(value.is_not(None), or_(column.is_(None), column < value)), value), else_=column
    )
