"""`ast.Fetch` -> a SQLAlchemy Core `Select` (sqlglot's generator stage).

Order of work: fetch-level checks (top/count/page), the root entity and its row-level
rule, joins (links.py), the filter (conditions.py), output columns (or aggregates,
aggregate.py), orders, then paging (paging.py). Nothing here builds SQL text: every
name comes from the catalog and every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from ..errors import FetchXmlError
from . import ast, codes
from .access import Caller
from .catalog import Catalog
from .columns import Output, Scope, aggregate_orders, outputs, sort_keys
from .links import Linker, assign_aliases
from .paging import SortKey, after, decode, fingerprint
from .scope import Context


@dataclass(frozen=True)
class CompiledFetch:
    """A compiled query and what `store.fetch.execute` needs to shape its rows.

    `select` returns one page: at most `page_size + 1` rows (the extra row only says
    that more exist) or `top` rows. `columns[i]` is the output name of the SQL column
    labelled `labels[i]`; `keys` are the hidden sort-key columns a paging cookie is
    made from (empty when no cookie is possible: aggregate or distinct queries).
    """

    entity: str
    select: Select[Any]
    columns: tuple[str, ...]
    labels: tuple[str, ...]
    aggregate: bool
    top: int | None
    page: int
    page_size: int
    count_select: Select[Any] | None
    keys: tuple[SortKey, ...]
    fingerprint: str
    needs_sqlite_functions: bool

    @property
    def count(self) -> int:
        """The page size (`count`, default and maximum 5000)."""
        return self.page_size


def _limits(fetch: ast.Fetch, ctx: Context) -> tuple[int, int]:
    pos = fetch.pos
    if fetch.top is not None:
        if fetch.count is not None or fetch.page is not None or fetch.return_total_record_count:
            ctx.fail(
                "The 'top' attribute can't be used with 'count', 'page' or "
                "'returntotalrecordcount'.",
                codes.INVALID_ARGUMENT,
                pos,
                "fetch",
            )
        if fetch.top < 1:
            ctx.fail(
                "The 'top' attribute must be greater than zero.",
                codes.TOP_COUNT_GREATER_THAN_ZERO,
                pos,
                "fetch",
            )
        if fetch.top > codes.MAX_PAGE_SIZE:
            ctx.fail(
                f"The 'top' attribute can't be greater than {codes.MAX_PAGE_SIZE}.",
                codes.INVALID_ARGUMENT,
                pos,
                "fetch",
            )
    if fetch.count is not None and fetch.count < 1:
        ctx.fail(
            "The 'count' attribute must be greater than zero.",
            codes.TOP_COUNT_GREATER_THAN_ZERO,
            pos,
            "fetch",
        )
    if fetch.page is not None and fetch.page < 1:
        ctx.fail(
            "The 'page' attribute must be greater than zero.",
            codes.VALUE_GREATER_THAN_ZERO,
            pos,
            "fetch",
        )
    # Dataverse's page size is at most 5000; a larger count is served 5000 at a time.
    return fetch.page or 1, min(fetch.count or codes.MAX_PAGE_SIZE, codes.MAX_PAGE_SIZE)


def compile_fetch(
    fetch: ast.Fetch, caller: Caller, catalog: Catalog, *, now: datetime, dialect_name: str
) -> CompiledFetch:
    """Compile a parsed query for `caller` over the entities of `catalog`.

    Args:
        fetch: from `parse`.
        caller: whose rows may be read (access.py) and whose time zone dates use.
        catalog: the entities, their tables and attributes (`store.catalog.CATALOG`).
        now: the instant relative date operators count from; must be timezone-aware.
        dialect_name: "sqlite" or "postgresql" (string folding and date grouping differ).

    Raises:
        FetchXmlQueryError: anything Dataverse would refuse (docs/fetchxml.md, "Errors").
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        tz = ZoneInfo(caller.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    ctx = Context(caller, catalog, now, tz or ZoneInfo("UTC"), dialect_name, fetch.source)
    if tz is None:
        ctx.fail(
            f"Unknown time zone '{caller.time_zone}' in the caller's user settings.",
            codes.USER_TIMEZONE,
            fetch.pos,
            "fetch",
        )
    page, page_size = _limits(fetch, ctx)
    root_node = fetch.entity
    info = ctx.entity(root_node.name, root_node.pos, "entity")
    aliases = assign_aliases(fetch, ctx)
    root = ctx.bind(root_node.name, info)
    where: list[ColumnElement[bool]] = []
    rule = ctx.rule(info, root.table)
    if rule is not None:
        where.append(rule)
    linker = Linker(ctx, aliases)
    frm = linker.join(root_node.links, root, root.table, where, selectable=True)
    own = linker.filter(root_node.filter, root)
    if own is not None:
        where.append(own)
    scopes: list[Scope] = [(root_node.attributes, root_node.orders, root, None)] + [
        (() if link.intersect else link.attributes, link.orders, bound, bound.alias)
        for link, bound in linker.joined
    ]
    outs, group_by = outputs(fetch, scopes, ctx)
    if not fetch.aggregate and not fetch.distinct:
        outs = _with_primary_key(outs, root.table.c[info.primary_key], info.primary_key)
    if fetch.aggregate:
        keys: list[SortKey] = []
        order_by = aggregate_orders(scopes, outs, ctx)
    else:
        keys = _shared(
            sort_keys(scopes, root, [b for _, b in linker.joined], fetch.distinct, ctx), outs
        )
        order_by = [k.clause() for k in keys]
    shown = {o.label for o in outs}
    hidden = [k.expr.label(k.label) for k in keys if k.label not in shown]
    base = select(*[o.expr.label(o.label) for o in outs], *hidden)
    base = base.select_from(frm).where(*where)
    if group_by:
        base = base.group_by(*group_by)
    if fetch.distinct and not fetch.aggregate:
        base = base.distinct()
    count_select = None
    if fetch.return_total_record_count:
        capped = base.limit(codes.MAX_TOTAL_RECORD_COUNT + 1).subquery()
        count_select = select(func.count()).select_from(capped)
    stmt = base.order_by(*order_by)
    # Only a unique sort key (ending in primary keys) can say where a page ended.
    unique = [] if fetch.distinct else keys
    fp = fingerprint(info.name, unique)
    if fetch.top is not None:
        stmt = stmt.limit(fetch.top)
    else:
        offset = (page - 1) * page_size
        cookie = None
        if fetch.paging_cookie and unique:
            try:
                cookie = decode(fetch.paging_cookie, unique, fp)
            except FetchXmlError as exc:
                ctx.locate(exc, fetch.pos, "fetch")
        if cookie is not None and cookie[0] == page - 1:
            stmt, offset = stmt.where(after(unique, cookie[1])), 0
        stmt = stmt.limit(page_size + 1).offset(offset)
    return CompiledFetch(
        entity=info.name,
        select=stmt,
        columns=tuple(o.name for o in outs),
        labels=tuple(o.label for o in outs),
        aggregate=fetch.aggregate,
        top=fetch.top,
        page=page,
        page_size=page_size,
        count_select=count_select,
        keys=tuple(unique),
        fingerprint=fp,
        needs_sqlite_functions=ctx.uses_sqlite_functions,
    )


def _shared(keys: list[SortKey], outs: list[Output]) -> list[SortKey]:
    """Sort keys that are an output column read it by that column's label, rather than
    selecting it twice: a 5,000-row page otherwise converts the primary key (and the
    ordered column) twice per row (bench/views.py)."""
    found = []
    for key in keys:
        same = next((o for o in outs if key.expr.compare(o.expr)), None)
        found.append(replace(key, label=same.label) if same is not None else key)
    return found


def _with_primary_key(outs: list[Output], pk: ColumnElement[Any], name: str) -> list[Output]:
    """The primary key is always returned (dataverse.md §4), after the asked-for columns."""
    if any(o.name == name for o in outs):
        return outs
    return [*outs, Output(name, f"c{len(outs)}", pk, None)]
