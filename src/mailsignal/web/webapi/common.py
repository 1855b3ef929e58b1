"""What every Web API endpoint needs: the engine, the entity set a URL names, the caller,
a query run under the caller's slot and bound, and rows shaped for the caller."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy import Connection, Engine

from ...fetchxml import Caller, EntityInfo, Fetch
from ...store import fetch, records
from ...store.bounds import QueryBound
from ...store.catalog import CATALOG
from ..api import current_user
from ..queries import query_slot
from .errors import QUERY_SYNTAX, DataverseError
from .shape import FORMATTED, lookup_refs, shape, wants

PREFIX = "/api/data/v9.2"


def engine(request: Request) -> Engine:
    found: Engine = request.app.state.engine
    return found


_HOST = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def base(request: Request) -> str:
    """The server's URL as the client reached it, without the trailing slash: the
    request's own, or behind a trusted proxy (`trusted_proxies`) the scheme and host of
    its `X-Forwarded-Proto` / `X-Forwarded-Host`, so links (`@odata.nextLink`,
    `@odata.context`) point at the proxy, not at the plain-http server behind it."""
    url = request.base_url
    if request.app.state.client_address.trusts(request.scope):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        if proto in ("http", "https"):
            url = url.replace(scheme=proto)
        if host and _HOST.fullmatch(host):
            url = url.replace(netloc=host)
    return str(url).rstrip("/")


def entity_set(name: str) -> EntityInfo:
    """The entity a URL segment names.

    Raises:
        DataverseError: 404 0x80060888, Dataverse's answer for an unknown segment.
    """
    info = CATALOG.entity_set(name)
    if info is None:
        raise DataverseError(404, QUERY_SYNTAX, f"Resource not found for the segment '{name}'.")
    return info


def caller(request: Request, conn: Connection) -> Caller:
    return fetch.load_caller(conn, current_user(request)["systemuserid"])


def run(
    request: Request, conn: Connection, xml: str | Fetch, bound: QueryBound | None
) -> tuple[Caller, fetch.FetchResult]:
    """`xml` run for the key's user on `conn`: under `bound` and in one of their query
    slots, or (no bound: the record a PATCH just wrote) as it is."""
    who = caller(request, conn)
    if bound is None:
        return who, fetch.execute(conn, xml, who)
    with query_slot(request.app.state.settings, who.user_id):
        return who, fetch.execute(conn, xml, who, bound=bound)


def shaped(
    conn: Connection,
    info: EntityInfo,
    rows: list[dict[str, Any]],
    wanted: set[str] | None,
    who: Caller,
    hidden: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """`rows` shaped for the caller, with the lookups' display names when asked for;
    `hidden` columns were read only for the ETag."""
    names = records.display_names(conn, lookup_refs(info, rows)) if wants(wanted, FORMATTED) else {}
    return shape(info, rows, wanted, ZoneInfo(who.time_zone), names, hidden)
