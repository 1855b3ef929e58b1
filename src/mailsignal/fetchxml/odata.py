"""OData query options on a Web API collection -> a FetchXML syntax tree (`ast.Fetch`).

`GET /api/data/v9.2/emails?$select=subject&$filter=opencount gt 1&$orderby=senton desc`
is translated into the query FetchXML would write for it, so it is compiled, bounded and
row-restricted by the very same path (`compile.py`, `access.py`, `store/fetch.py`)
instead of a second SQL builder. `$filter` is parsed by the kept `odata-query` library;
`odata_filter.py` only maps its tree to conditions (reference/dataverse.md §4, "Minimal
OData"):

    eq gt ge lt le in            -> the FetchXML operator of the same name
    ne                           -> ne AND not-null (OData's `ne` never matches null,
                                    FetchXML's does)
    eq null / ne null            -> null / not-null
    contains/startswith/endswith -> like with the value's wildcards made literal
    Microsoft.Dynamics.CRM.X(PropertyName=..., PropertyValue=...)
                                 -> the FetchXML operator x (LastXDays -> last-x-days)
    and / or                     -> <filter type="and|or">
    not                          -> the negated operators (De Morgan over filters); a
                                    query function has no negation and is refused

Lookups are named `_x_value`, as the Web API returns them; `$expand` of a single-valued
navigation property (`parentcustomerid_account`) is an outer link-entity. Anything else (unknown
options, properties, functions, column-to-column comparisons) is refused with a 400 in
Dataverse's shape, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import ast, codes, paging
from .catalog import Catalog, EntityInfo
from .odata_filter import QUERY_SYNTAX, Filter, attribute_of, syntax

__all__ = ["OPTIONS", "QUERY_SYNTAX", "Expansion", "ODataQuery", "attribute_of", "translate"]
OPTIONS = frozenset(("$select", "$filter", "$top", "$orderby", "$count", "$expand", "$skiptoken"))
_ORDER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*\Z")


@dataclass(frozen=True)
class Expansion:
    """One `$expand` of a single-valued navigation property: the outer link-entity,
    aliased by the property's name, that reads the columns of the `target` record."""

    navigation: str
    target: EntityInfo
    selected: tuple[str, ...] | None
    link: ast.LinkEntity


@dataclass(frozen=True)
class ODataQuery:
    """The translated query and what the response needs to know about the request.

    `selected` are the `$select` names as asked (lookups as `_x_value`), None when all
    columns are returned; they name the `@odata.context` projection and say whether the
    `modifiedon` added for the ETag is returned too.
    """

    fetch: ast.Fetch
    selected: tuple[str, ...] | None
    expanded: tuple[Expansion, ...] = ()
    paged: bool = False  # in pages (no `$top`): `@odata.nextLink` follows a full one


def navigations(info: EntityInfo, catalog: Catalog) -> dict[str, tuple[str, EntityInfo]]:
    """The single-valued navigation properties of `info`, by Dataverse's names, with the
    lookup and target entity of each: `parentcustomerid_account` on contact, and the
    activity form `regardingobjectid_contact_email` on email. `ownerid` is left out (its
    navigation names the owner entity, which MailSignal does not have)."""
    found = {}
    for attr, targets in info.lookups.items():
        if attr in ("ownerid", info.primary_key):
            continue
        for name in targets:
            target = catalog.entity(name)
            suffix = f"_{info.name}" if info.name == "email" else ""
            if target is not None:
                found[f"{attr}_{name}{suffix}"] = (attr, target)
    return found


def unsupported(names: list[str]) -> None:
    """Refuse the first query parameter this endpoint does not implement.

    Raises:
        FetchXmlQueryError: 0x80060888 naming the parameter.
    """
    for name in names:
        raise syntax(f"The query parameter {name} is not supported")


def translate(
    info: EntityInfo,
    params: Mapping[str, str],
    catalog: Catalog | None = None,
    page_size: int | None = None,
) -> ODataQuery:
    """`params` (the request's OData system query options) as a Fetch over `info`.

    Without `$top` the rows come in pages of `page_size` (`Prefer: odata.maxpagesize`,
    else Dataverse's 5,000), and `$skiptoken` (the paging cookie annotation an
    `@odata.nextLink` carries) asks for the page after the one it ends.

    Args:
        info: the entity of the collection the URL names.
        params: query parameters; every key must be in `OPTIONS`.
        catalog: where `$expand` finds the entities lookups point at (required for it).
        page_size: rows per page when `$top` does not set them.

    Raises:
        FetchXmlQueryError: an option that is unknown, malformed or names an unknown
            property (0x80060888, Dataverse's messages), a value of the wrong type, or a
            `$skiptoken` that is not one of ours.
    """
    unsupported([n for n in params if n not in OPTIONS])
    selected, attributes = _select(info, params.get("$select"), version=True)
    expanded = _expand(info, params["$expand"], catalog) if "$expand" in params else ()
    filter_ = Filter(info).translate(params["$filter"]) if "$filter" in params else None
    orders = _orders(info, params["$orderby"]) if "$orderby" in params else ()
    top = _top(params["$top"]) if "$top" in params else None
    count = params.get("$count", "false").strip().lower()
    if count not in ("true", "false"):
        raise syntax(f"'{params['$count']}' is not a valid count option.")
    with_count = count == "true"
    links = tuple(x.link for x in expanded)
    entity = ast.Entity(info.name, attributes, orders, filter_, links)
    # FetchXML's `top` excludes a total count; `count` (the page size) on page 1 is the
    # same rows and allows it.
    if top is not None:
        if "$skiptoken" in params:
            raise syntax("$skiptoken cannot be combined with $top.")
        fetch = ast.Fetch(
            entity,
            top=None if with_count else top,
            count=top if with_count else None,
            return_total_record_count=with_count,
        )
        return ODataQuery(fetch, selected, expanded)
    page, cookie = paging.skiptoken(params["$skiptoken"]) if "$skiptoken" in params else (1, None)
    size = min(page_size or codes.MAX_PAGE_SIZE, codes.MAX_PAGE_SIZE)
    fetch = ast.Fetch(
        entity, count=size, page=page, paging_cookie=cookie, return_total_record_count=with_count
    )
    return ODataQuery(fetch, selected, expanded, paged=True)


def _select(
    info: EntityInfo, raw: str | None, *, version: bool
) -> tuple[tuple[str, ...] | None, tuple[ast.Select, ...]]:
    """(the `$select` names as written, the attributes to read); all of them when None.
    `version` adds `modifiedon`, the row's version, for `@odata.etag`."""
    if raw is None:
        return None, (ast.AllAttributes(),)
    selected = tuple(s.strip() for s in raw.split(",") if s.strip())
    if not selected:
        raise syntax("The $select query option must name at least one property.")
    names = [attribute_of(info, s) for s in selected]
    if version and info.attribute("modifiedon") is not None:
        names.append("modifiedon")
    return selected, tuple(ast.Attribute(n) for n in dict.fromkeys([info.primary_key, *names]))


_EXPAND = re.compile(r"\s*([A-Za-z_]\w*)\s*(?:\(\s*\$select\s*=\s*([\w\s,]*)\))?\s*\Z")


def _expand(info: EntityInfo, raw: str, catalog: Catalog | None) -> tuple[Expansion, ...]:
    """`nav` or `nav($select=a,b)`, comma-separated; other nested options are refused."""
    known = navigations(info, catalog) if catalog is not None else {}
    found = []
    for part in re.split(r",(?![^(]*\))", raw):
        match = _EXPAND.match(part)
        if match is None:
            raise syntax(
                f"Unsupported $expand '{part.strip()}': a single-valued navigation property, "
                "optionally with ($select=...), is supported."
            )
        if match[1] not in known:
            raise syntax(
                f"Could not find a property named '{match[1]}' on type "
                f"'Microsoft.Dynamics.CRM.{info.name}'."
            )
        lookup, target = known[match[1]]
        nested, attributes = _select(target, match[2], version=False)
        link = ast.LinkEntity(
            target.name, target.primary_key, lookup, match[1], "outer", attributes=attributes
        )
        found.append(Expansion(match[1], target, nested, link))
    if len({x.navigation for x in found}) != len(found):
        raise syntax("A navigation property is expanded more than once in $expand.")
    return tuple(found)


def _top(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= codes.MAX_PAGE_SIZE:
        raise syntax(f"Invalid value '{raw}' for $top: an integer from 1 to {codes.MAX_PAGE_SIZE}.")
    return int(text)


def _orders(info: EntityInfo, raw: str) -> tuple[ast.Order, ...]:
    orders = []
    for part in raw.split(","):
        match = _ORDER.match(part)
        if match is None:
            raise syntax(f"Syntax error in $orderby: '{part.strip()}'.")
        name = attribute_of(info, match[1])
        orders.append(ast.Order(attribute=name, descending=match[2] == "desc"))
    return tuple(orders)
