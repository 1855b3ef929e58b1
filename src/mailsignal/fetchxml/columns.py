"""What a query returns and in which order: output columns, aggregates, sort keys.

Output names follow Dataverse (reference/dataverse.md §4): an entity attribute by its
name, a link-entity attribute as `alias.name`, anything with an `alias` (always so for
aggregates) by that alias. SQL labels are generated (`c0`, `c1`, ... and `k0`, ... for
sort keys); user text never becomes an SQL identifier.

Orders apply in document order, the entity's first and then each link-entity's
(dataverse.md §1); in normal queries they name an `attribute`, in aggregate queries an
`alias`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy.sql.elements import ColumnElement

from . import ast, codes
from .aggregate import aggregate, group_key
from .paging import SortKey
from .scope import Bound, Context

# (attributes, orders, bound, link alias or None for the root entity)
Scope: TypeAlias = tuple[tuple[ast.Select, ...], tuple[ast.Order, ...], Bound, str | None]


@dataclass(frozen=True)
class Output:
    """One output column: its Dataverse-style name, SQL label and expression."""

    name: str
    label: str
    expr: ColumnElement[Any]
    order_key: ColumnElement[Any] | None = None  # aggregate mode: what `order alias` sorts


def outputs(
    fetch: ast.Fetch, scopes: list[Scope], ctx: Context
) -> tuple[list[Output], list[ColumnElement[Any]]]:
    """The output columns and, in aggregate mode, the GROUP BY expressions."""
    outs: list[Output] = []
    sources: dict[str, tuple[str, str] | None] = {}
    group_by: list[ColumnElement[Any]] = []

    def add(
        name: str,
        expr: ColumnElement[Any],
        source: tuple[str, str] | None,
        pos: ast.Pos,
        order_key: ColumnElement[Any] | None = None,
    ) -> None:
        if name in sources:
            if source is not None and sources[name] == source:
                return  # the same column asked for twice
            ctx.fail(
                "FetchXML should have unique aliases.", codes.DUPLICATE_ALIAS, pos, "attribute"
            )
        sources[name] = source
        outs.append(Output(name, f"c{len(outs)}", expr, order_key))

    for attributes, _, bound, link_alias in scopes:
        prefix = "" if link_alias is None else f"{link_alias}."
        if link_alias is None and not attributes and not fetch.aggregate:
            # Dataverse: an <entity> naming no attribute returns all of them (a
            # link-entity naming none returns none of its own).
            attributes = (ast.AllAttributes(),)
        for item in attributes:
            if isinstance(item, ast.AllAttributes):
                if fetch.aggregate:
                    ctx.fail(
                        "<all-attributes/> can't be used in an aggregate query.",
                        codes.ATTRIBUTE_WITH_AGGREGATE,
                        item.pos,
                        "all-attributes",
                    )
                for name in bound.entity.attributes:
                    add(prefix + name, bound.table.c[name], (bound.alias, name), item.pos)
                continue
            col, info = ctx.column(bound, item.name, item.pos, "attribute")
            if not fetch.aggregate:
                if item.aggregate or item.groupby:
                    ctx.fail(
                        "An attribute with 'aggregate' or 'groupby' needs "
                        'aggregate="true" on <fetch>.',
                        codes.INVALID_AGGREGATE,
                        item.pos,
                        "attribute",
                    )
                source = None if item.alias else (bound.alias, item.name)
                add(item.alias or prefix + item.name, col, source, item.pos)
                continue
            if not item.alias:
                ctx.fail(
                    "An alias is required for an attribute in an aggregate query.",
                    codes.NO_ALIAS,
                    item.pos,
                    "attribute",
                )
            if item.aggregate and item.groupby:
                ctx.fail(
                    "An attribute can't both aggregate and group by.",
                    codes.ATTRIBUTE_WITH_AGGREGATE,
                    item.pos,
                    "attribute",
                )
            if item.aggregate:
                add(item.alias, aggregate(item, col, info, ctx), None, item.pos)
            elif item.groupby:
                key = group_key(item, col, info, ctx)
                group_by.append(key)
                by = ctx.sort_key(col, info.kind) if item.dategrouping is None else key
                add(item.alias, key, None, item.pos, by)
            else:
                ctx.fail(
                    "An attribute in an aggregate query needs 'aggregate' or 'groupby'.",
                    codes.ATTRIBUTE_WITH_AGGREGATE,
                    item.pos,
                    "attribute",
                )
    return outs, group_by


def sort_keys(
    scopes: list[Scope], root: Bound, joined: list[Bound], distinct: bool, ctx: Context
) -> list[SortKey]:
    """ORDER BY keys of a normal query, then primary keys so that paging is exact."""
    keys: list[SortKey] = []
    for _, orders, bound, _ in scopes:
        for order in orders:
            if order.alias is not None:
                ctx.fail(
                    "An order in a non-aggregate query can't use 'alias'; use 'attribute'.",
                    codes.ORDER_ALIAS_IN_NORMAL_QUERY,
                    order.pos,
                    "order",
                )
            target = bound
            if order.entityname is not None:
                target = ctx.resolve(
                    order.entityname, order.pos, "order", codes.LINK_NODE_FOR_ORDER_NOT_FOUND
                )
            assert order.attribute is not None
            col, info = ctx.column(target, order.attribute, order.pos, "order")
            if info.kind == "json":
                ctx.fail(
                    "A JSON attribute cannot be ordered.",
                    codes.INVALID_ARGUMENT,
                    order.pos,
                    "order",
                )
            keys.append(
                SortKey(f"k{len(keys)}", ctx.sort_key(col, info.kind), info.kind, order.descending)
            )
    if distinct:
        return keys  # a primary key would defeat DISTINCT; such queries page by OFFSET
    for bound in (root, *joined):
        pk = bound.entity.primary_key
        keys.append(SortKey(f"k{len(keys)}", bound.table.c[pk], "uuid", False))
    return keys


def aggregate_orders(scopes: list[Scope], outs: list[Output], ctx: Context) -> list[Any]:
    """ORDER BY clauses of an aggregate query: each order names an output alias."""
    by_name = {o.name: o for o in outs}
    clauses: list[Any] = []
    for _, orders, _, _ in scopes:
        for order in orders:
            if order.alias is None:
                ctx.fail(
                    "An order in an aggregate query must use 'alias', not 'attribute'.",
                    codes.ORDER_ATTRIBUTE_IN_AGGREGATE,
                    order.pos,
                    "order",
                )
            out = by_name.get(order.alias)
            if out is None:
                ctx.fail(
                    f"The order alias '{order.alias}' is not an attribute alias.",
                    codes.ORDER_ALIAS_NOT_FOUND,
                    order.pos,
                    "order",
                )
            expr = out.order_key if out.order_key is not None else out.expr
            clauses.append(
                expr.desc().nulls_last() if order.descending else expr.asc().nulls_first()
            )
    return clauses
