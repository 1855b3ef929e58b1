"""The Web API's endpoints: WhoAmI, RetrieveMultiple (`?fetchXml=`, `?savedQuery=`),
Retrieve (`{entityset}({id})?$select=`), the `savedqueries` set, and PATCH (update, or
create for contacts, leads and accounts).

Queries run in a worker thread under the caller's query slot and bound (web/queries.py):
stopped past `query_timeout_seconds` (503 0x80044151) or when the client leaves, and
refused beyond `max_queries_per_user` at once (429 0x80072326). Database work never
runs on the event loop, which also answers the tracking hits.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine

from ...errors import MailSignalError
from ...fetchxml import Caller, EntityInfo, Fetch, parse
from ...fetchxml.paging import annotation
from ...store import fetch, records, users
from ...store.bounds import QueryBound
from ...store.catalog import CATALOG
from ..api import current_user
from ..queries import bounded, query_slot
from . import options, prepare, writes
from .batch import router as batch_router
from .definitions import router as definitions_router
from .errors import (
    BAD_PAYLOAD,
    QUERY_SYNTAX,
    DataverseError,
    does_not_exist,
    handle,
    no_options,
    record_id,
)
from .shape import (
    FORMATTED,
    MORE,
    PAGING,
    TOTAL,
    TOTAL_EXCEEDED,
    lookup_refs,
    max_page_size,
    next_link,
    prefer_annotations,
    shape,
    wants,
)

PREFIX = "/api/data/v9.2"
router = APIRouter(prefix=PREFIX, tags=["dataverse"])
_KEY = re.compile(r"^(?P<set>[A-Za-z_]+)\((?P<id>[^)]*)\)$")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _entity_set(name: str) -> EntityInfo:
    info = CATALOG.entity_set(name)
    if info is None:
        raise DataverseError(404, QUERY_SYNTAX, f"Resource not found for the segment '{name}'.")
    return info


def _caller(request: Request, conn: Connection) -> Caller:
    return fetch.load_caller(conn, current_user(request)["systemuserid"])


def _shaped(
    conn: Connection,
    info: EntityInfo,
    rows: list[dict[str, Any]],
    wanted: set[str] | None,
    caller: Caller,
    hidden: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """`rows` shaped for the caller, with the lookups' display names when asked for;
    `hidden` columns were read only for the ETag."""
    names = records.display_names(conn, lookup_refs(info, rows)) if wants(wanted, FORMATTED) else {}
    return shape(info, rows, wanted, ZoneInfo(caller.time_zone), names, hidden)


# Registered before `/{segment}`, which would take `$metadata` for an entity set.
router.include_router(definitions_router)
router.include_router(batch_router)


@router.get("/WhoAmI()")
@router.get("/WhoAmI")
def who_am_i(request: Request) -> Any:
    """The caller's ids, as Dataverse's WhoAmI function returns them."""

    def run() -> Any:
        with _engine(request).begin() as conn:
            user = current_user(request)
            org = users.get_org(conn)
        base = str(request.base_url).rstrip("/")
        return {
            "@odata.context": f"{base}{PREFIX}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": str(org["organizationid"]),
            "UserId": str(user["systemuserid"]),
            "OrganizationId": str(org["organizationid"]),
        }

    return handle(run)


def _saved_queries(request: Request) -> Any:
    """`savedqueries`: the shipped and user views (Dataverse's system-view entity set)."""
    from ... import views

    with _engine(request).connect():
        current_user(request)
    records_ = [
        {
            "savedqueryid": str(v.id),
            "name": v.name,
            "description": v.description,
            "returnedtypecode": v.entity,
            "fetchxml": v.fetchxml,
            "querytype": 0,
            "isdefault": v.slug == "engaged-this-week",
        }
        for v in views.all_views(request.app.state.settings.data_dir)
    ]
    params = options.once(request.query_params.multi_items())
    value, query = options.saved_queries(records_, params)
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "@odata.context": options.context(
                f"{base}{PREFIX}/$metadata", options.SAVED_QUERY, query
            ),
            "value": value,
        }
    )


def _saved_query_xml(request: Request, key: str, info: EntityInfo) -> str:
    from ... import views

    try:
        view = views.find(request.app.state.settings.data_dir, str(uuid.UUID(key)))
    except (ValueError, MailSignalError) as exc:
        raise DataverseError(
            404, "0x80040217", f"savedquery With Id = {key} Does Not Exist"
        ) from exc
    if view.entity != info.name:
        raise DataverseError(
            400,
            "0x80041128",
            "The entity name specified in the saved "
            "query does not match the entity name in the URL.",
        )
    return view.fetchxml


def _with_count(xml: str) -> str:
    root = ET.fromstring(xml)  # noqa: S314 - the text already passed fetchxml.parse
    root.set("returntotalrecordcount", "true")
    return ET.tostring(root, encoding="unicode")


def _run(
    request: Request, conn: Connection, xml: str | Fetch, bound: QueryBound | None
) -> tuple[Caller, fetch.FetchResult]:
    """`xml` run for the key's user on `conn`: under `bound` and in one of their query
    slots, or (no bound: the record a PATCH just wrote) as it is."""
    caller = _caller(request, conn)
    if bound is None:
        return caller, fetch.execute(conn, xml, caller)
    with query_slot(request.app.state.settings, caller.user_id):
        return caller, fetch.execute(conn, xml, caller, bound=bound)


@router.get("/{segment}")
async def retrieve(segment: str, request: Request) -> Any:
    """`{entityset}?fetchXml=...` (RetrieveMultiple) or `{entityset}({id})?$select=...`."""

    def run(bound: QueryBound) -> Any:
        key = _KEY.match(segment)
        if key:
            info = _entity_set(key["set"])
            return _retrieve_one(request, info, record_id(key["id"]), bound=bound)
        if segment == "savedqueries":
            return _saved_queries(request)
        info = _entity_set(segment)
        params = options.once(request.query_params.multi_items())
        query = options.plan(info, params)  # None: FetchXML; OData options refused there
        xml = params.get("fetchXml", "")
        if params.get("savedQuery"):
            xml = _saved_query_xml(request, params["savedQuery"], info)
        if query is None and parse(xml).entity.name != info.name:
            raise DataverseError(
                400,
                "0x80041128",
                "The entity name specified in FetchXml does not match the entity name in the URL.",
            )
        if query is None and params.get("$count", "").lower() == "true":
            xml = _with_count(xml)
        wanted, applied = prefer_annotations(request)
        hidden, page_size = frozenset[str](), max_page_size(request)
        if query is None:
            xml, hidden, page_size = prepare.ready(xml, info, page_size)
            if page_size:
                size = f"odata.maxpagesize={page_size}"
                applied = f"{applied}, {size}" if applied else size
        with _engine(request).connect() as conn:
            caller, result = _run(request, conn, query.fetch if query else xml, bound)
            value = _shaped(conn, info, result.rows, wanted, caller, hidden)
        options.finish(value, query)
        base = str(request.base_url).rstrip("/")
        body: dict[str, Any] = {
            "@odata.context": options.context(f"{base}{PREFIX}/$metadata", info, query)
        }
        if result.total_record_count is not None:
            body["@odata.count"] = result.total_record_count
            body[f"@{TOTAL}"] = result.total_record_count
            body[f"@{TOTAL_EXCEEDED}"] = result.total_record_count_limit_exceeded
        if result.more_records and wants(wanted, PAGING) and result.paging_cookie:
            body[f"@{PAGING}"] = annotation(result.paging_cookie)
        if query is None and page_size and result.more_records:
            body["@odata.nextLink"] = next_link(
                request, base, fetchXml=prepare.following(xml, result.page, result.paging_cookie)
            )
        if wants(wanted, MORE):
            body[f"@{MORE}"] = result.more_records
        body["value"] = value
        headers = {"Preference-Applied": applied} if applied else {}
        return JSONResponse(body, headers={"OData-Version": "4.0", **headers})

    return await bounded(request, lambda bound: handle(lambda: run(bound)))


def _fetch_one(info: EntityInfo, record: uuid.UUID, select_: list[str] | None) -> str:
    """The FetchXML that reads one record (so row-level access applies to it too)."""
    if select_:
        for name in select_:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise DataverseError(
                    400, QUERY_SYNTAX, f"Could not find a property named '{name}'."
                )
        columns = "".join(
            f'<attribute name="{n}"/>'
            for n in dict.fromkeys([info.primary_key, *select_, "modifiedon"])
            if info.attribute(n)
        )
        unknown = [n for n in select_ if info.attribute(n) is None]
        if unknown:
            raise DataverseError(
                400,
                QUERY_SYNTAX,
                f"Could not find a property named '{unknown[0]}' "
                f"on type 'Microsoft.Dynamics.CRM.{info.name}'.",
            )
    else:
        columns = "<all-attributes/>"
    return (
        f'<fetch><entity name="{info.name}">{columns}<filter><condition '
        f'attribute="{info.primary_key}" operator="eq" value="{record}"/></filter>'
        "</entity></fetch>"
    )


def _retrieve_one(
    request: Request, info: EntityInfo, record: uuid.UUID, *, bound: QueryBound | None = None
) -> Any:
    raw = options.single(request.query_params.multi_items()).get("$select")
    asked = [s.strip() for s in raw.split(",") if s.strip()] if raw else None
    select_ = [prepare.column(info, n) for n in asked] if asked else None
    wanted, applied = prefer_annotations(request)
    with _engine(request).connect() as conn:
        caller, result = _run(request, conn, _fetch_one(info, record, select_), bound)
        if not result.rows:
            raise does_not_exist(info, record)
        [row] = _shaped(conn, info, result.rows, wanted, caller)
    if select_ and "modifiedon" not in select_:
        row.pop("modifiedon", None)
    for name in asked or ():  # a column asked for by its Dataverse alias answers by it
        column = writes.ALIASES.get(info.entity_set, {}).get(name)
        if column and column in row:
            row[name] = row[column] if column in (asked or ()) else row.pop(column)
    base = str(request.base_url).rstrip("/")
    body = {"@odata.context": f"{base}{PREFIX}/$metadata#{info.entity_set}/$entity", **row}
    headers = {"OData-Version": "4.0"}
    if applied:
        headers["Preference-Applied"] = applied
    if "@odata.etag" in row:
        headers["ETag"] = row["@odata.etag"]
    return JSONResponse(body, headers=headers)


@router.patch("/{segment}")
async def patch(segment: str, request: Request) -> Any:
    """Update writable columns (204, or 200 with `Prefer: return=representation`)."""
    raw = await request.body()

    def run() -> Any:
        key = _KEY.match(segment)
        if not key:
            _entity_set(segment)
            raise DataverseError(
                405, QUERY_SYNTAX, f"PATCH needs a single record: {segment}(<id>)."
            )
        info = _entity_set(key["set"])
        record = record_id(key["id"])
        if info.entity_set not in writes.WRITABLE:
            raise DataverseError(405, QUERY_SYNTAX, f"{info.entity_set} cannot be updated here.")
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise DataverseError(400, BAD_PAYLOAD, f"Invalid JSON body: {exc.msg}.") from exc
        except (ValueError, RecursionError) as exc:  # 4,300+ digit integers, deep nesting
            message = "Invalid JSON body: a value is too large."
            raise DataverseError(400, BAD_PAYLOAD, message) from exc
        if not isinstance(body, dict):
            raise DataverseError(400, BAD_PAYLOAD, "The request body must be a JSON object.")
        values = writes.values(info, body)
        with _engine(request).begin() as conn:
            caller = _caller(request, conn)
            writes.check_write(info, record, caller)
            current = records.get(conn, info, record)
            writes.preconditions(request, info, record, current)
            if current is None:
                if info.entity_set not in writes.CREATABLE:
                    raise does_not_exist(info, record)
                records.create(conn, info, record, values)
            elif values:
                records.update_columns(conn, info, record, values)
            writes.follow_addresses(conn, info, current, values, request.app.state.settings)
        if "return=representation" in request.headers.get("prefer", ""):
            return _retrieve_one(request, info, record)
        base = str(request.base_url).rstrip("/")
        return Response(
            status_code=204,
            headers={"OData-EntityId": f"{base}{PREFIX}/{info.entity_set}({record})"},
        )

    return await anyio.to_thread.run_sync(handle, run)


@router.get("/{segment}/{rest:path}")
async def navigate(segment: str, rest: str, request: Request) -> Any:
    """Paths of more than one segment: `{entityset}/$count[?$filter=]` (the rows the
    caller may read, at most 5,000 as Dataverse counts them) and `{entityset}({id})/{property}`
    (one column's value); any other is Dataverse's 404 for the segment it cannot route."""

    def run(bound: QueryBound) -> Any:
        key = _KEY.match(segment)
        if rest == "$count" and not key:
            return _count(request, _entity_set(segment), bound)
        if key and "/" not in rest:
            info = _entity_set(key["set"])
            return _property(request, info, record_id(key["id"]), rest, bound)
        raise DataverseError(
            404, QUERY_SYNTAX, f"Resource not found for the segment '{rest.split('/')[-1]}'."
        )

    return await bounded(request, lambda bound: handle(lambda: run(bound)))


def _count(request: Request, info: EntityInfo, bound: QueryBound) -> Response:
    with _engine(request).connect() as conn:
        caller = _caller(request, conn)
        with query_slot(request.app.state.settings, caller.user_id):
            total = options.count(conn, info, request.query_params, caller, bound)
    return Response(str(total), media_type="text/plain", headers={"OData-Version": "4.0"})


def _property(
    request: Request, info: EntityInfo, record: uuid.UUID, name: str, bound: QueryBound
) -> Response:
    column = prepare.column(info, name)
    no_options(request.query_params)
    with _engine(request).connect() as conn:
        caller, result = _run(request, conn, _fetch_one(info, record, [column]), bound)
        if not result.rows:
            raise does_not_exist(info, record)
        [row] = _shaped(conn, info, result.rows, None, caller)
    value = row.get(name if name.startswith("_") else column)
    if value is None:
        return Response(status_code=204, headers={"OData-Version": "4.0"})
    base = str(request.base_url).rstrip("/")
    context = f"{base}{PREFIX}/$metadata#{info.entity_set}({record})/{name}"
    return JSONResponse(
        {"@odata.context": context, "value": value}, headers={"OData-Version": "4.0"}
    )
