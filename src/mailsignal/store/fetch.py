"""Run a FetchXML query: parse, compile over the store's catalog, execute, shape one page.

The compiler (`mailsignal.fetchxml`) is pure: it turns the text into a SQLAlchemy
`Select` over `store.catalog.CATALOG` and says what the query needs. This module is the
part that touches the database: it installs `mailsignal_datepart` on a SQLite
connection when date grouping asks for it, runs the page and the total count under the
query's bound (bounds.py), and makes the paging cookie from the last row
(docs/fetchxml.md).
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from ..errors import NotFoundError
from ..fetchxml import Caller, CompiledFetch, Fetch, codes, compile_fetch, parse
from ..fetchxml.aggregate import SQLITE_FUNCTION, sqlite_datepart
from ..fetchxml.paging import encode
from . import teams, users
from .bounds import QueryBound, run
from .catalog import CATALOG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    """One page of results.

    `rows` are dicts keyed by the output column names (`columns`, in order); a null
    column is present with None (the Web API omits it, dataverse.md §4). Ids are
    `uuid.UUID`, datetimes are aware UTC. `paging_cookie` is set when `more_records`
    and the query can be keyset-paged; send it back with `page` + 1.
    """

    entity: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    page: int
    more_records: bool
    paging_cookie: str | None
    total_record_count: int | None
    total_record_count_limit_exceeded: bool


def load_caller(conn: Connection, user_id: uuid.UUID) -> Caller:
    """The `Caller` of a stored user: admin from `accessrole`, zone from usersettings.

    A stored zone that is not a known IANA name (written before names were checked, or
    by hand) counts as UTC: refusing it would break every query the user makes.

    Raises:
        NotFoundError: no such systemuser.
    """
    found = users.access(conn, user_id)
    if found is None:
        raise NotFoundError(f"systemuser With Id = {user_id} Does Not Exist")
    role, zone = found
    admin = role == "admin"
    team = frozenset() if admin else teams.managed_members(conn, user_id)
    return Caller(user_id, admin, zone if _known_zone(zone) else "UTC", team)


@functools.lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    """Whether zoneinfo knows `name`; an unknown one is logged once per process."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("a user's stored time zone is not an IANA name; their queries use UTC")
        return False
    return True


def compile_xml(
    xml: str, caller: Caller, *, dialect_name: str, now: datetime | None = None
) -> CompiledFetch:
    """Parse and compile `xml` over the store's catalog without running it (what `execute`
    runs; also how a saved view is validated).

    Raises:
        FetchXmlParseError, FetchXmlQueryError: the query is refused (Dataverse's codes).
    """
    return compile_fetch(
        parse(xml), caller, CATALOG, now=now or datetime.now(UTC), dialect_name=dialect_name
    )


def _install_sqlite_functions(dbapi_connection: Any) -> None:
    """`mailsignal_datepart` on a sqlite3 connection (idempotent: replaces itself)."""
    dbapi_connection.create_function(SQLITE_FUNCTION, 3, sqlite_datepart, deterministic=True)


def execute(
    conn: Connection,
    xml: str | Fetch,
    caller: Caller,
    *,
    now: datetime | None = None,
    bound: QueryBound | None = None,
) -> FetchResult:
    """Parse, compile and run `xml` for `caller` on `conn` (SQLite or PostgreSQL).

    `xml` may also be a query already built, as `fetchxml.odata` builds one from OData
    options: it then runs through the same compiler, row access rule and bound.

    Args:
        conn: an open connection; the caller owns the transaction.
        xml: the FetchXML text, or its syntax tree.
        caller: whose rows are visible and whose time zone relative dates use.
        now: the instant date operators count from (default: the current time).
        bound: the deadline of the page and the count together, and the handle that
            stops them early; None runs unbounded.

    Raises:
        FetchXmlParseError, FetchXmlQueryError: the query is refused (Dataverse's codes).
        QueryTimeout, QueryCancelled: `bound` stopped it.
    """
    compiled = compile_fetch(
        parse(xml) if isinstance(xml, str) else xml,
        caller,
        CATALOG,
        now=now or datetime.now(UTC),
        dialect_name=conn.dialect.name,
    )
    if compiled.needs_sqlite_functions:
        _install_sqlite_functions(conn.connection.driver_connection)
    result = list(run(conn, compiled.select, bound))
    more = compiled.top is None and len(result) > compiled.page_size
    if more:
        result = result[: compiled.page_size]
    # By position, resolved once: a 5,000-row page spent most of its time in per-row
    # lookups by label (bench/views.py, "Engaged This Week" as admin).
    positions = [compiled.select.selected_columns.keys().index(label) for label in compiled.labels]
    columns = compiled.columns
    rows = [dict(zip(columns, [row[i] for i in positions], strict=True)) for row in result]
    cookie = None
    if more and compiled.keys and result:
        last = result[-1]._mapping
        cookie = encode(compiled.page, [last[k.label] for k in compiled.keys], compiled.fingerprint)
    total, exceeded = None, False
    if compiled.count_select is not None:
        total = int(run(conn, compiled.count_select, bound)[0][0])
        exceeded = total > codes.MAX_TOTAL_RECORD_COUNT
        total = min(total, codes.MAX_TOTAL_RECORD_COUNT)
    return FetchResult(
        entity=compiled.entity,
        columns=compiled.columns,
        rows=rows,
        page=compiled.page,
        more_records=more,
        paging_cookie=cookie,
        total_record_count=total,
        total_record_count_limit_exceeded=exceeded,
    )
