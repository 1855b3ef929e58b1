"""FetchXML: Dataverse's query language, compiled to SQLAlchemy Core (docs/fetchxml.md).

One module per stage, as sqlglot is laid out:

    xmlread.py   text -> element tree (safe: no DTD, size and depth limits, positions)
    parse.py     element tree -> ast.Fetch (grammar.py: elements, attributes, booleans;
                 aliases, the 500 conditions / 15 links limits)
    catalog.py   the types of the logical model: Catalog, EntityInfo, AttributeInfo
    compile.py   ast.Fetch + Catalog -> Select, with links.py (joins, filters),
                 conditions.py (operators), values.py (typed values), dates.py (relative
                 dates), patterns.py (T-SQL LIKE), columns.py and aggregate.py (what is
                 returned), paging.py (cookies), access.py (row-level rule)

The package is pure logic (tests/test_layers.py): it reads no schema, opens no
connection and runs no query. It builds SQLAlchemy Core expressions over the tables of
the catalog it is given; `store/catalog.py` builds that catalog from `store.schema` and
`store/fetch.py` runs a query (parse, compile, execute, shape the page).
"""

from __future__ import annotations

from .access import Caller
from .ast import Fetch
from .catalog import AttributeInfo, Catalog, EntityInfo
from .compile import CompiledFetch, compile_fetch
from .parse import parse

__all__ = [
    "AttributeInfo",
    "Caller",
    "Catalog",
    "CompiledFetch",
    "EntityInfo",
    "Fetch",
    "compile_fetch",
    "parse",
]
