"""FetchXML: Dataverse's query language, compiled to SQLAlchemy Core (docs/fetchxml.md).

One module per stage, as sqlglot is laid out:

    xmlread.py   text -> element tree (safe: no DTD, size and depth limits, positions)
    parse.py     element tree -> ast.Fetch (grammar.py: elements, attributes, booleans;
                 aliases, the 500 conditions / 15 links limits)
    catalog.py   logical entities and attributes, read from store.schema
    compile.py   ast.Fetch -> Select, with links.py (joins, filters), conditions.py
                 (operators), values.py (typed values), dates.py (relative dates),
                 patterns.py (T-SQL LIKE), columns.py and aggregate.py (what is
                 returned), paging.py (cookies), access.py (row-level rule)
    run.py       execute(): compile, run, shape rows, cookie, total count

The package sits in the storage layer (tests/test_layers.py) because the catalog is
read from `store.schema`: one source of truth for tables and column types.
"""

from __future__ import annotations

from .access import Caller, load_caller
from .aggregate import register_sqlite_functions
from .ast import Fetch
from .catalog import ENTITIES, EntityInfo
from .compile import CompiledFetch, compile_fetch
from .parse import parse
from .run import FetchResult, execute

__all__ = [
    "ENTITIES",
    "Caller",
    "CompiledFetch",
    "EntityInfo",
    "Fetch",
    "FetchResult",
    "compile_fetch",
    "execute",
    "load_caller",
    "parse",
    "register_sqlite_functions",
]
