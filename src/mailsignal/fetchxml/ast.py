"""The FetchXML syntax tree: one frozen dataclass per element (sqlglot's `expressions`).

`parse.parse` builds it from text; `compile.compile_fetch` turns it into SQL. Nodes hold
the query exactly as written (names, operators and values are still strings); types
are checked by the compiler, which knows the catalog. Every node keeps its `Pos` so a
semantic error found late can still point at the element that caused it.

Grammar (reference/dataverse.md §1):

    fetch        -> entity
    entity       -> (attribute | all-attributes | order | filter | link-entity)*
    link-entity  -> (attribute | all-attributes | order | filter | link-entity)*
    filter       -> (condition | filter | link-entity)*     link-entity here: any/all types
    condition    -> value*
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Pos:
    """Where an element starts in the source: 1-based line, 1-based column."""

    line: int = 0
    column: int = 0


_NOWHERE = Pos()


@dataclass(frozen=True, slots=True)
class Attribute:
    """`<attribute>`: a column to return, or in aggregate mode a group or an aggregate."""

    name: str
    alias: str | None = None
    aggregate: str | None = None  # count countcolumn sum avg min max
    groupby: bool = False
    dategrouping: str | None = None  # day week month quarter year
    distinct: bool = False  # only with aggregate="countcolumn"
    usertimezone: bool = True  # dategrouping in the caller's zone unless false
    pos: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class AllAttributes:
    """`<all-attributes/>`: every column of the entity."""

    pos: Pos = field(default=_NOWHERE, compare=False)


Select: TypeAlias = Attribute | AllAttributes


@dataclass(frozen=True, slots=True)
class Order:
    """`<order>`: by `attribute` (normal queries) or by `alias` (aggregate queries)."""

    attribute: str | None = None
    alias: str | None = None
    descending: bool = False
    entityname: str | None = None
    pos: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Condition:
    """`<condition>`: `value` for one-value operators, `values` for `<value>` children."""

    attribute: str
    operator: str
    value: str | None = None
    values: tuple[str, ...] = ()
    valueof: str | None = None
    entityname: str | None = None
    pos: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Filter:
    """`<filter type="and|or">`: conditions, nested filters and any/all link-entities."""

    type: str = "and"
    items: tuple[FilterItem, ...] = ()
    pos: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class LinkEntity:
    """`<link-entity>`: joins `name` on `name.from_attr = parent.to_attr`."""

    name: str
    from_attr: str
    to_attr: str
    alias: str | None = None
    link_type: str = "inner"
    intersect: bool = False
    attributes: tuple[Select, ...] = ()
    orders: tuple[Order, ...] = ()
    filter: Filter | None = None
    links: tuple[LinkEntity, ...] = ()
    pos: Pos = field(default=_NOWHERE, compare=False)


FilterItem: TypeAlias = Condition | Filter | LinkEntity


@dataclass(frozen=True, slots=True)
class Entity:
    """`<entity name>`: the queried table and what to return from it."""

    name: str
    attributes: tuple[Select, ...] = ()
    orders: tuple[Order, ...] = ()
    filter: Filter | None = None
    links: tuple[LinkEntity, ...] = ()
    pos: Pos = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Fetch:
    """`<fetch>`: the whole query. `source` is the text it came from (for excerpts)."""

    entity: Entity
    top: int | None = None
    count: int | None = None
    page: int | None = None
    paging_cookie: str | None = None
    distinct: bool = False
    aggregate: bool = False
    return_total_record_count: bool = False
    source: str = field(default="", compare=False, repr=False)
    pos: Pos = field(default=_NOWHERE, compare=False)


def walk_links(links: tuple[LinkEntity, ...]) -> list[LinkEntity]:
    """Every link-entity under `links`, depth first, in document order."""
    found: list[LinkEntity] = []
    for link in links:
        found.append(link)
        found += walk_links(link.links)
    return found
