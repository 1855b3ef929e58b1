"""Aggregate mode: `aggregate="true"` attributes -> SQL aggregates and GROUP BY keys.

reference/dataverse.md §1: every attribute has an `alias` and either `aggregate`
(count = rows, countcolumn [distinct] = non-null values, sum, avg, min, max: nulls
ignored) or `groupby`. `dategrouping` groups a datetime by a calendar part, as
Dataverse's DATEPART does: `year` (2026), `quarter` (1-4), `month` (1-12), `week`
(1-53, weeks start on Sunday, week 1 holds 1 January) and `day` (day of the month),
all in the caller's time zone unless `usertimezone="false"`.

PostgreSQL converts with `timezone(zone, col)`. SQLite has no time-zone database, so
the part is computed by `mailsignal_datepart`, the Python function `sqlite_datepart`
(zoneinfo); the compiled query says it needs it (`needs_sqlite_functions`) and
`store.fetch` installs it on the connection before running the query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Integer, cast, extract, func, literal
from sqlalchemy.sql.elements import ColumnElement

from . import ast, codes
from .catalog import AttributeInfo
from .scope import Context

AGGREGATES = ("count", "countcolumn", "sum", "avg", "min", "max")
DATEGROUPINGS = ("day", "week", "month", "quarter", "year")
SQLITE_FUNCTION = "mailsignal_datepart"


def part_of(local: datetime, part: str) -> int:
    """The DATEPART-style `part` of a local datetime (week: Sunday-based, 1 Jan in week 1)."""
    if part == "year":
        return local.year
    if part == "quarter":
        return (local.month - 1) // 3 + 1
    if part == "month":
        return local.month
    if part == "day":
        return local.day
    doy, dow = local.timetuple().tm_yday, (local.weekday() + 1) % 7
    return (doy + 5 - dow) // 7 + 1


def sqlite_datepart(part: str, zone: str, value: str | None) -> int | None:
    """`mailsignal_datepart(part, zone, value)` on SQLite: `value` is a stored UTC instant."""
    if value is None:
        return None
    instant = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return part_of(instant.astimezone(ZoneInfo(zone)), part)


def _inline(value: object) -> Any:
    # Rendered into the SQL by SQLAlchemy (quoted by the type), not bound, so that the
    # same expression in SELECT and GROUP BY is textually identical for PostgreSQL.
    return literal(value, literal_execute=True)


def date_part(expr: ColumnElement[Any], part: str, zone: str, ctx: Context) -> ColumnElement[Any]:
    if ctx.dialect != "postgresql":
        ctx.uses_sqlite_functions = True
        part_sql: ColumnElement[Any] = func.mailsignal_datepart(
            _inline(part), _inline(zone), expr, type_=Integer
        )
        return part_sql
    local = func.timezone(_inline(zone), expr)
    if part != "week":
        return cast(extract(part, local), Integer)
    doy, dow = cast(extract("doy", local), Integer), cast(extract("dow", local), Integer)
    week: ColumnElement[Any] = cast(func.floor((doy + _inline(5) - dow) / _inline(7.0)), Integer)
    shifted: ColumnElement[Any] = week + _inline(1)
    return shifted


def group_key(
    attr: ast.Attribute, col: ColumnElement[Any], info: AttributeInfo, ctx: Context
) -> ColumnElement[Any]:
    """The GROUP BY expression of a `groupby="true"` attribute."""
    if attr.dategrouping is None:
        if info.kind == "json":
            ctx.fail(
                "A JSON attribute cannot be grouped.", codes.INVALID_ARGUMENT, attr.pos, "attribute"
            )
        return col
    if attr.dategrouping not in DATEGROUPINGS:
        ctx.fail(
            f"dategrouping '{attr.dategrouping}' is not supported: use {', '.join(DATEGROUPINGS)}.",
            codes.INVALID_ARGUMENT,
            attr.pos,
            "attribute",
        )
    if info.kind != "datetime":
        ctx.fail(
            f"dategrouping needs a date and time attribute, not '{info.entity}.{info.name}'.",
            codes.INVALID_ARGUMENT,
            attr.pos,
            "attribute",
        )
    zone = ctx.caller.time_zone if attr.usertimezone else "UTC"
    return date_part(col, attr.dategrouping, zone, ctx)


def aggregate(
    attr: ast.Attribute, col: ColumnElement[Any], info: AttributeInfo, ctx: Context
) -> ColumnElement[Any]:
    """The SQL aggregate of an `aggregate="..."` attribute."""
    name = attr.aggregate
    if name not in AGGREGATES:
        ctx.fail(
            f"Invalid aggregate '{name}': use {', '.join(AGGREGATES)}.",
            codes.INVALID_AGGREGATE,
            attr.pos,
            "attribute",
        )
    if name == "count":
        return func.count()
    if name == "countcolumn":
        return func.count(col.distinct() if attr.distinct else col)
    allowed = ("int", "float") if name in ("sum", "avg") else ("int", "float", "datetime")
    if info.kind not in allowed:
        ctx.fail(
            f"Aggregate '{name}' is not valid for attribute '{info.entity}.{info.name}' "
            f"of type {info.dotnet}.",
            codes.INVALID_AGGREGATE,
            attr.pos,
            "attribute",
        )
    if name == "avg":
        return cast(func.avg(col), Float)  # PostgreSQL's avg(int) is numeric
    if name == "sum":
        return func.sum(col) if info.kind == "int" else cast(func.sum(col), Float)
    return func.min(col) if name == "min" else func.max(col)
