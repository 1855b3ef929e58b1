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

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...errors import MailSignalError
from ...fetchxml import EntityInfo, parse
from ...fetchxml.paging import annotation
from ...store import records, users
from ...store.bounds import QueryBound
from ..api import current_user
from ..queries import bounded
from . import common, options, prepare, record, writes
from .batch import router as batch_router
from .common import PREFIX
from .definitions import router as definitions_router
from .errors import (
    BAD_PAYLOAD,
    QUERY_SYNTAX,
    DataverseError,
    does_not_exist,
    handle,
    record_id,
)
from .shape import (
    MORE,
    PAGING,
    TOTAL,
    TOTAL_EXCEEDED,
    max_page_size,
    next_link,
    prefer_annotations,
    wants,
)

router = APIRouter(prefix=PREFIX, tags=["dataverse"])
_KEY = re.compile(r"^(?P<set>[A-Za-z_]+)\((?P<id>[^)]*)\)$")


# Registered before `/{segment}`, which would take `$metadata` for an entity set.
router.include_router(definitions_router)
router.include_router(batch_router)


@router.get("/WhoAmI()")
@router.get("/WhoAmI")
def who_am_i(request: Request) -> Any:
    """The caller's ids, as Dataverse's WhoAmI function returns them."""

    def run() -> Any:
        with common.engine(request).begin() as conn:
            user = current_user(request)
            org = users.get_org(conn)
        base = common.base(request)
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

    with common.engine(request).connect():
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
    base = common.base(request)
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


@router.get("/{segment}")
async def retrieve(segment: str, request: Request) -> Any:
    """`{entityset}?fetchXml=...` (RetrieveMultiple) or `{entityset}({id})?$select=...`."""

    def run(bound: QueryBound) -> Any:
        key = _KEY.match(segment)
        if key:
            info = common.entity_set(key["set"])
            return record.retrieve(request, info, record_id(key["id"]), bound=bound)
        if segment == "savedqueries":
            return _saved_queries(request)
        info = common.entity_set(segment)
        params = options.once(request.query_params.multi_items())
        wanted, applied = prefer_annotations(request)
        hidden, page_size = frozenset[str](), max_page_size(request)
        query = options.plan(info, params, page_size)  # None: FetchXML
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
        if query is None:
            xml, hidden, page_size = prepare.ready(xml, info, page_size)
        elif not query.paged:
            page_size = None  # `$top` chose the rows
        if page_size:
            size = f"odata.maxpagesize={page_size}"
            applied = f"{applied}, {size}" if applied else size
        with common.engine(request).connect() as conn:
            who, result = common.run(request, conn, query.fetch if query else xml, bound)
            value = common.shaped(conn, info, result.rows, wanted, who, hidden)
        options.finish(value, query)
        base = common.base(request)
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
        elif query is not None and query.paged and result.more_records and result.paging_cookie:
            token = {"$skiptoken": annotation(result.paging_cookie)}
            body["@odata.nextLink"] = next_link(request, base, **token)
        if wants(wanted, MORE):
            body[f"@{MORE}"] = result.more_records
        body["value"] = value
        headers = {"Preference-Applied": applied} if applied else {}
        return JSONResponse(body, headers={"OData-Version": "4.0", **headers})

    return await bounded(request, lambda bound: handle(lambda: run(bound)))


@router.patch("/{segment}")
async def patch(segment: str, request: Request) -> Any:
    """Update writable columns (204, or 200 with `Prefer: return=representation`)."""
    raw = await request.body()

    def run() -> Any:
        key = _KEY.match(segment)
        if not key:
            common.entity_set(segment)
            raise DataverseError(
                405, QUERY_SYNTAX, f"PATCH needs a single record: {segment}(<id>)."
            )
        info = common.entity_set(key["set"])
        rid = record_id(key["id"])
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
        with common.engine(request).begin() as conn:
            who = common.caller(request, conn)
            writes.check_write(info, rid, who)
            current = records.get(conn, info, rid)
            writes.preconditions(request, info, rid, current)
            if current is None:
                if info.entity_set not in writes.CREATABLE:
                    raise does_not_exist(info, rid)
                records.create(conn, info, rid, values)
            elif values:
                records.update_columns(conn, info, rid, values)
            writes.follow_addresses(conn, info, current, values, request.app.state.settings)
        if "return=representation" in request.headers.get("prefer", ""):
            return record.retrieve(request, info, rid)
        base = common.base(request)
        return Response(
            status_code=204,
            headers={"OData-EntityId": f"{base}{PREFIX}/{info.entity_set}({rid})"},
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
            return record.count(request, common.entity_set(segment), bound)
        if key and "/" not in rest:
            info = common.entity_set(key["set"])
            return record.property_value(request, info, record_id(key["id"]), rest, bound)
        raise DataverseError(
            404, QUERY_SYNTAX, f"Resource not found for the segment '{rest.split('/')[-1]}'."
        )

    return await bounded(request, lambda bound: handle(lambda: run(bound)))
