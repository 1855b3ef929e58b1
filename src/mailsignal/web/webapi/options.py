"""OData query options on Web API collections, between the routes and the translator.

A collection request is either FetchXML (`?fetchXml=` or `?savedQuery=`, with at most
`$count`) or OData (`$select`, `$filter`, `$top`, `$orderby`, `$count`, `$expand`), which
`fetchxml.odata` turns into the `Fetch` FetchXML would have written, so both run the
same compiler under the same row access rule and query bound. Any other option, or
OData options mixed into a FetchXML request, is refused with Dataverse's 400; none is
ignored. `count` serves `{entityset}/$count` for the route that owns that segment.

`savedqueries` is not a table but the view files, so `saved_queries` applies the same
translation to those few records in memory: `$filter` (comparisons, `in`, null,
contains/startswith/endswith, and/or/not), `$select`, `$orderby` and `$top`.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Integer, MetaData, String, Table, Uuid

from ...errors import FetchXmlQueryError
from ...fetchxml import AttributeInfo, Caller, EntityInfo, ast
from ...fetchxml.catalog import DOTNET, Kind
from ...fetchxml.odata import QUERY_SYNTAX, ODataQuery, translate, unsupported
from ...fetchxml.values import convert
from ...store import fetch
from ...store.bounds import QueryBound
from ...store.catalog import CATALOG
from .shape import ATTRIBUTE_NAME

FETCHXML_PARAMETERS = ("fetchXml", "savedQuery", "$count")


def once(items: list[tuple[str, str]]) -> dict[str, str]:
    """The query parameters by name, each given at most once (a second `$filter` would
    otherwise silently replace the first).

    Raises:
        FetchXmlQueryError: 0x80060888, Dataverse's message for a repeated option.
    """
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise FetchXmlQueryError(
                f"Query option '{name}' was specified more than once, but it must be "
                "specified at most once.",
                error_code=QUERY_SYNTAX,
            )
        params[name] = value
    return params


def single(items: list[tuple[str, str]]) -> dict[str, str]:
    """The options of a by-id retrieve, `{entityset}({id})`: `$select` and `$expand`,
    each once. Anything else is refused, not ignored.

    Raises:
        FetchXmlQueryError: 0x80060888 naming an option given twice or not supported.
    """
    params = once(items)
    unsupported(sorted(set(params) - {"$select", "$expand"}))
    return params


def plan(
    info: EntityInfo, params: Mapping[str, str], page_size: int | None = None
) -> ODataQuery | None:
    """The OData query a collection request asks for, in pages of `page_size` unless it
    sets `$top`, or None for a FetchXML request.

    Raises:
        FetchXmlQueryError: 0x80060888 for an unsupported or malformed option, an
            unknown property, or OData options next to `fetchXml` / `savedQuery`.
    """
    if "fetchXml" in params or "savedQuery" in params:
        unsupported([n for n in params if n not in FETCHXML_PARAMETERS])
        return None
    return translate(info, params, CATALOG, page_size)


def context(base: str, info: EntityInfo, query: ODataQuery | None) -> str:
    """`@odata.context`, naming the projection when `$select` or `$expand` chose one:
    `emails(subject,regardingobjectid_contact_email(fullname))`."""
    parts = list(query.selected or ()) if query else []
    for x in query.expanded if query else ():
        parts.append(f"{x.navigation}({','.join(x.selected)})" if x.selected else x.navigation)
    return f"{base}#{info.entity_set}" + (f"({','.join(parts)})" if parts else "")


def finish(rows: list[dict[str, Any]], query: ODataQuery | None) -> None:
    """Shaped `rows` as the OData request asked: each expanded record as a nested object
    (null when the lookup is empty or points elsewhere), and `modifiedon` dropped when
    it was read only for the ETag."""
    if query is None:
        return
    drop_version = query.selected is not None and "modifiedon" not in query.selected
    for row in rows:
        if drop_version:
            row.pop("modifiedon", None)
        for x in query.expanded:
            prefix = f"{x.navigation}."
            nested: dict[str, Any] = {}
            for key in [k for k in row if k.startswith(prefix)]:
                name, at, annotation = key[len(prefix) :].partition("@")
                value = row.pop(key)
                if annotation != ATTRIBUTE_NAME:
                    lookup = name in x.target.lookups
                    nested[(f"_{name}_value" if lookup else name) + at + annotation] = value
            row[x.navigation] = nested if x.target.primary_key in nested else None


def count(
    conn: Connection,
    info: EntityInfo,
    params: Mapping[str, str],
    caller: Caller,
    bound: QueryBound | None = None,
) -> int:
    """`GET {entityset}/$count[?$filter=...]`: the caller's visible rows that match,
    capped at 5,000 as Dataverse's count is. `$top` and `$orderby` change nothing.

    Raises:
        FetchXmlQueryError: as `plan`; `$select` and `$count` are refused on `$count`.
    """
    unsupported([n for n in params if n not in ("$filter", "$top", "$orderby")])
    query = translate(info, {k: v for k, v in params.items() if k == "$filter"})
    counted = replace(query.fetch, count=1, return_total_record_count=True)
    result = fetch.execute(conn, counted, caller, bound=bound)
    assert result.total_record_count is not None  # asked for above
    return result.total_record_count


_VIEW_COLUMNS: dict[str, Kind] = {
    "savedqueryid": "uuid",
    "name": "string",
    "description": "string",
    "returnedtypecode": "string",
    "fetchxml": "string",
    "querytype": "int",
    "isdefault": "bool",
}
_SQL_TYPES = {"uuid": Uuid, "string": String, "int": Integer, "bool": Boolean}
# The savedquery entity as the translator sees it; its table describes the records and
# is never queried (the views are files).
SAVED_QUERY = EntityInfo(
    name="savedquery",
    table=Table(
        "savedquery",
        MetaData(),
        *(Column(n, _SQL_TYPES[k]()) for n, k in _VIEW_COLUMNS.items()),
    ),
    entity_set="savedqueries",
    primary_key="savedqueryid",
    primary_name="name",
    owner="everyone",
    columns={n: AttributeInfo("savedquery", n, k, DOTNET[k]) for n, k in _VIEW_COLUMNS.items()},
)


def saved_queries(
    views: list[dict[str, Any]], params: Mapping[str, str]
) -> tuple[list[dict[str, Any]], ODataQuery]:
    """`views` (savedquery records) filtered, ordered, cut and projected as `params` ask.

    Raises:
        FetchXmlQueryError: as `plan`, and for `$count` or a query function, which the
            view list does not offer.
    """
    unsupported([n for n in params if n not in ("$select", "$filter", "$orderby", "$top")])
    query = translate(SAVED_QUERY, params)
    entity = query.fetch.entity
    found = [v for v in views if entity.filter is None or _matches(entity.filter, v)]
    for order in reversed(entity.orders):
        name = order.attribute or ""
        found.sort(key=lambda v: (v[name] is not None, _folded(v[name])), reverse=order.descending)
    found = found[: query.fetch.top]
    if query.selected is not None:
        keep = {SAVED_QUERY.primary_key, *query.selected}
        found = [{k: v for k, v in view.items() if k in keep} for view in found]
    return found, query


def _folded(value: Any) -> Any:
    """Strings compare ignoring case, as Dataverse's collation does; ids as text."""
    return str(value).casefold() if isinstance(value, (str, uuid.UUID)) else value


def _matches(item: ast.Condition | ast.Filter | ast.LinkEntity, view: Mapping[str, Any]) -> bool:
    if isinstance(item, ast.Filter):
        results = (_matches(i, view) for i in item.items)
        return all(results) if item.type == "and" else any(results)
    if isinstance(item, ast.LinkEntity):  # the translator makes none
        raise FetchXmlQueryError("savedqueries has no related records.", error_code=QUERY_SYNTAX)
    value, op = view.get(item.attribute), item.operator
    if op in ("null", "not-null"):
        return (value is None) == (op == "null")
    attr = SAVED_QUERY.columns[item.attribute]
    if op in ("in", "not-in"):
        wanted = {_folded(convert(v, attr)) for v in item.values}
        return (value is not None and _folded(value) in wanted) == (op == "in")
    if item.value is None or op not in _VIEW_OPERATORS:
        raise FetchXmlQueryError(
            f"The query function for '{op}' is not supported on savedqueries.",
            error_code=QUERY_SYNTAX,
        )
    if value is None:  # FetchXML: a negated operator matches null, the others do not
        return op.startswith(("ne", "not-"))
    if op in _TEXT:
        text = item.value.strip("%") if op.endswith("like") else item.value
        needle = re.sub(r"\[(.)\]", r"\1", text)  # the translator's escaped wildcards
        return _TEXT[op](_folded(str(value)), needle.casefold())
    return _COMPARE[op](_folded(value), _folded(convert(item.value, attr)))


_TEXT: dict[str, Callable[[str, str], bool]] = {
    "like": lambda s, n: n in s,
    "not-like": lambda s, n: n not in s,
    "begins-with": str.startswith,
    "not-begin-with": lambda s, n: not s.startswith(n),
    "ends-with": str.endswith,
    "not-end-with": lambda s, n: not s.endswith(n),
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_VIEW_OPERATORS = frozenset((*_TEXT, *_COMPARE))
