"""One record and what hangs off it: `{entityset}({id})?$select=&$expand=` (Retrieve),
`{entityset}({id})/{property}` (one column's value) and `{entityset}/$count`.

A record is read by the OData translation every collection query uses, narrowed to its
key, so the row access rule applies to it as it does to a query; a record the caller
may not read does not exist for them (404, as Dataverse answers).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ...fetchxml import EntityInfo, ast
from ...fetchxml.odata import ODataQuery, translate
from ...store.bounds import QueryBound
from ...store.catalog import CATALOG
from ..queries import query_slot
from . import common, options, prepare, writes
from .errors import does_not_exist, no_options
from .shape import prefer_annotations


def query(info: EntityInfo, record: uuid.UUID, params: dict[str, str]) -> ODataQuery:
    """The OData query reading record `record` with `$select` (Dataverse's aliases
    mapped to their columns) and `$expand`.

    Raises:
        FetchXmlQueryError: 0x80060888 for an unknown property or navigation.
    """
    odata = {k: v for k, v in params.items() if k == "$expand"}
    if "$select" in params:
        asked = (s.strip() for s in params["$select"].split(","))
        odata["$select"] = ",".join(writes.aliased(info, name) for name in asked if name)
    found = translate(info, odata, CATALOG)
    key = ast.Condition(info.primary_key, "eq", value=str(record))
    entity = replace(found.fetch.entity, filter=ast.Filter("and", (key,)))
    return replace(found, fetch=ast.Fetch(entity), paged=False)


def retrieve(
    request: Request, info: EntityInfo, record: uuid.UUID, *, bound: QueryBound | None = None
) -> Response:
    """`GET {entityset}({id})`: the record as the caller may read it, with its ETag."""
    params = options.single(request.query_params.multi_items())
    wanted, applied = prefer_annotations(request)
    found = query(info, record, params)
    with common.engine(request).connect() as conn:
        who, result = common.run(request, conn, found.fetch, bound)
        if not result.rows:
            raise does_not_exist(info, record)
        rows = common.shaped(conn, info, result.rows, wanted, who)
    options.finish(rows, found)
    [row] = rows
    asked = [s.strip() for s in params.get("$select", "").split(",") if s.strip()]
    for name in asked:  # a column asked for by its Dataverse alias answers by it
        column = writes.ALIASES.get(info.entity_set, {}).get(name)
        if column and column in row:
            row[name] = row[column] if column in asked else row.pop(column)
    context = f"{common.base(request)}{common.PREFIX}/$metadata#{info.entity_set}"
    body = {"@odata.context": f"{context}/$entity", **row}
    headers = {"OData-Version": "4.0"}
    if applied:
        headers["Preference-Applied"] = applied
    if "@odata.etag" in row:
        headers["ETag"] = row["@odata.etag"]
    return JSONResponse(body, headers=headers)


def count(request: Request, info: EntityInfo, bound: QueryBound) -> Response:
    """`GET {entityset}/$count[?$filter=]`: plain text, at most 5,000 as Dataverse counts."""
    with common.engine(request).connect() as conn:
        who = common.caller(request, conn)
        with query_slot(request.app.state.settings, who.user_id):
            total = options.count(conn, info, request.query_params, who, bound)
    return Response(str(total), media_type="text/plain", headers={"OData-Version": "4.0"})


def property_value(
    request: Request, info: EntityInfo, record: uuid.UUID, name: str, bound: QueryBound
) -> Response:
    """`GET {entityset}({id})/{property}`: one column's value, 204 when it is null."""
    column = prepare.column(info, name)
    no_options(request.query_params)
    found = query(info, record, {"$select": name})
    with common.engine(request).connect() as conn:
        who, result = common.run(request, conn, found.fetch, bound)
        if not result.rows:
            raise does_not_exist(info, record)
        [row] = common.shaped(conn, info, result.rows, None, who)
    value: Any = row.get(name if name.startswith("_") else column)
    if value is None:
        return Response(status_code=204, headers={"OData-Version": "4.0"})
    context = f"{common.base(request)}{common.PREFIX}/$metadata#{info.entity_set}({record})/{name}"
    return JSONResponse(
        {"@odata.context": context, "value": value}, headers={"OData-Version": "4.0"}
    )
