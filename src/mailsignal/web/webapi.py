"""The Dataverse-compatible Web API subset under `/api/data/v9.2/` (issue #5).

Enough of Dataverse for queries and flows written for Dynamics 365 to run unchanged:
`GET {entityset}?fetchXml=`, `GET {entityset}({id})?$select=`, `PATCH` on the writable
columns of usersettings, contacts, leads, accounts and organizations, and `WhoAmI`.
Shapes, codes and messages follow shared/reference/dataverse.md §3-4; every error is
`{"error": {"code": "0x...", "message": "..."}}`. Row-level access is the FetchXML
compiler's (a rep reads only their own emails and events), so this module never filters.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine, insert, select, update

from ..errors import AuthError, FetchXmlError, MailSignalError
from ..fetchxml import Caller, EntityInfo, execute, load_caller, parse
from ..fetchxml.catalog import BY_ENTITY_SET
from ..store import users
from ..store.schema import utcnow
from .api import current_user

PREFIX = "/api/data/v9.2"
router = APIRouter(prefix=PREFIX, tags=["dataverse"])
FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ATTRIBUTE_NAME = "OData.Community.Display.V1.AttributeName"
PAGING = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE = "Microsoft.Dynamics.CRM.morerecords"
TOTAL = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
# Columns a PATCH may change, per entity set; anything else known is non-updateable.
WRITABLE: dict[str, frozenset[str]] = {
    "usersettingscollection": frozenset({"emailengagementoptin", "timezonename", "timezonecode"}),
    "contacts": frozenset({"fullname", "emailaddress1", "followemail", "parentcustomerid"}),
    "leads": frozenset({"fullname", "emailaddress1", "followemail", "companyname"}),
    "accounts": frozenset({"name", "emailaddress1", "followemail"}),
    "organizations": frozenset({"name", "isemailmonitoringallowed"}),
}
# Published rollout flows opt users in with this obsolete column (dataverse.md §5).
ALIASES = {"usersettingscollection": {"allowemailcredentials": "emailengagementoptin"}}
CREATABLE = frozenset({"contacts", "leads", "accounts"})
BOOLEAN_LABELS = {
    "directioncode": ("Outgoing", "Incoming"),
    "followemail": ("Allow", "Do Not Allow"),
}
_KEY = re.compile(r"^(?P<set>[A-Za-z_]+)\((?P<id>[0-9A-Fa-f-]{36})\)$")


class DataverseError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _entity_set(name: str) -> EntityInfo:
    info = BY_ENTITY_SET.get(name)
    if info is None:
        raise DataverseError(404, "", f"Resource not found for the segment '{name}'.")
    return info


def _annotations(request: Request) -> tuple[set[str] | None, str | None]:
    """Which annotations the Prefer header asks for (None = none), and what to echo."""
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.include-annotations":
            wanted = value.strip().strip('"')
            applied = f'odata.include-annotations="{wanted}"'
            return ({"*"} if wanted == "*" else {w.strip() for w in wanted.split(",")}), applied
    return None, None


def _wants(wanted: set[str] | None, name: str) -> bool:
    return wanted is not None and ("*" in wanted or name in wanted)


def _etag(row: dict[str, Any]) -> str | None:
    stamp = row.get("modifiedon")
    return f'W/"{int(stamp.timestamp() * 1_000_000)}"' if isinstance(stamp, datetime) else None


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _formatted(name: str, value: Any, zone: ZoneInfo) -> str | None:
    attr = name.rsplit(".", 1)[-1]
    if isinstance(value, bool):
        yes, no = BOOLEAN_LABELS.get(attr, ("Yes", "No"))
        return yes if value else no
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%m/%d/%Y %I:%M %p")
    return None


def _lookup_names(conn: Connection, refs: set[tuple[str, uuid.UUID]]) -> dict[uuid.UUID, str]:
    names: dict[uuid.UUID, str] = {}
    by_kind: dict[str, list[uuid.UUID]] = {}
    for kind, ref in refs:
        by_kind.setdefault(kind, []).append(ref)
    for kind, ids in by_kind.items():
        target = BY_ENTITY_SET.get(f"{kind}s")
        if target is None or target.primary_name is None:
            continue
        table = target.table
        for key, name in conn.execute(
            select(table.c[target.primary_key], table.c[target.primary_name]).where(
                table.c[target.primary_key].in_(ids)
            )
        ):
            names[key] = name
    return names


def _shape(
    conn: Connection,
    info: EntityInfo,
    rows: list[dict[str, Any]],
    wanted: set[str] | None,
    zone: ZoneInfo,
) -> list[dict[str, Any]]:
    """Rows as Dataverse returns them: nulls omitted, lookups as `_x_value`, annotations."""
    lookups = dict(info.lookups)
    refs: set[tuple[str, uuid.UUID]] = set()
    for row in rows:
        for attr, targets in lookups.items():
            if isinstance(row.get(attr), uuid.UUID):
                kind = row.get(f"{attr}typecode") or (
                    row.get("regardingobjecttypecode") if attr == "regardingobjectid" else None
                )
                refs.add((str(kind or targets[0]), row[attr]))
    names = _lookup_names(conn, refs) if _wants(wanted, FORMATTED) else {}
    shaped = []
    for row in rows:
        out: dict[str, Any] = {}
        etag = _etag(row)
        if etag:
            out["@odata.etag"] = etag
        for name, value in row.items():
            if value is None:
                continue
            if name in lookups and isinstance(value, uuid.UUID):
                key = f"_{name}_value"
                out[key] = str(value)
                if _wants(wanted, LOOKUP_NAME):
                    kind = (
                        row.get("regardingobjecttypecode") if name == "regardingobjectid" else None
                    )
                    out[f"{key}@{LOOKUP_NAME}"] = kind or lookups[name][0]
                if value in names:
                    out[f"{key}@{FORMATTED}"] = names[value]
                continue
            out[name] = _json_value(value)
            if _wants(wanted, FORMATTED):
                formatted = _formatted(name, value, zone)
                if formatted is not None:
                    out[f"{name}@{FORMATTED}"] = formatted
            if "." in name and _wants(wanted, ATTRIBUTE_NAME):
                out[f"{name}@{ATTRIBUTE_NAME}"] = name.rsplit(".", 1)[1]
        shaped.append(out)
    return shaped


def _caller(request: Request, conn: Connection) -> Caller:
    return load_caller(conn, current_user(request)["systemuserid"])


def _handle(fn: Any) -> Any:
    """Run a route body, answering every refusal in Dataverse's error shape."""
    try:
        return fn()
    except DataverseError as exc:
        return _error(exc.status, exc.code, exc.message)
    except FetchXmlError as exc:
        return _error(400, exc.error_code, exc.message)
    except AuthError as exc:
        return _error(exc.http_status, "0x80040220" if exc.http_status == 403 else "", exc.message)
    except MailSignalError as exc:
        return _error(exc.http_status, "0x80040203", exc.message)


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

    return _handle(run)


def _saved_queries(request: Request) -> Any:
    """`savedqueries`: the shipped and user views (Dataverse's system-view entity set)."""
    from .. import views

    with _engine(request).connect():
        current_user(request)
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "@odata.context": f"{base}{PREFIX}/$metadata#savedqueries",
            "value": [
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
            ],
        }
    )


def _saved_query_xml(request: Request, key: str, info: EntityInfo) -> str:
    from .. import views

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
def retrieve(segment: str, request: Request) -> Any:
    """`{entityset}?fetchXml=...` (RetrieveMultiple) or `{entityset}({id})?$select=...`."""

    def run() -> Any:
        key = _KEY.match(segment)
        if key:
            return _retrieve_one(request, _entity_set(key["set"]), uuid.UUID(key["id"]))
        if segment == "savedqueries":
            return _saved_queries(request)
        info = _entity_set(segment)
        params = dict(request.query_params)
        for name in params:
            if name not in ("fetchXml", "$count", "savedQuery"):
                raise DataverseError(400, "0x0", f"The query parameter {name} is not supported")
        xml = params.get("fetchXml")
        if params.get("savedQuery"):
            xml = _saved_query_xml(request, params["savedQuery"], info)
        if not xml:
            raise DataverseError(
                400,
                "0x0",
                "This endpoint needs a fetchXml query parameter "
                "(OData $filter queries are not supported).",
            )
        fetch = parse(xml)
        if fetch.entity.name != info.name:
            raise DataverseError(
                400,
                "0x80041128",
                "The entity name specified in FetchXml does not match the entity name in the URL.",
            )
        if params.get("$count", "").lower() == "true":
            xml = _with_count(xml)
        wanted, applied = _annotations(request)
        with _engine(request).connect() as conn:
            caller = _caller(request, conn)
            result = execute(conn, xml, caller)
            value = _shape(conn, info, result.rows, wanted, ZoneInfo(caller.time_zone))
        base = str(request.base_url).rstrip("/")
        body: dict[str, Any] = {"@odata.context": f"{base}{PREFIX}/$metadata#{info.entity_set}"}
        if result.total_record_count is not None:
            body["@odata.count"] = result.total_record_count
            body[f"@{TOTAL}"] = result.total_record_count
            body[f"@{TOTAL_EXCEEDED}"] = result.total_record_count_limit_exceeded
        if result.more_records and _wants(wanted, PAGING) and result.paging_cookie:
            body[f"@{PAGING}"] = result.paging_cookie
        if _wants(wanted, MORE):
            body[f"@{MORE}"] = result.more_records
        body["value"] = value
        headers = {"Preference-Applied": applied} if applied else {}
        return JSONResponse(body, headers={"OData-Version": "4.0", **headers})

    return _handle(run)


def _fetch_one(info: EntityInfo, record: uuid.UUID, select_: list[str] | None) -> str:
    if select_:
        for name in select_:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise DataverseError(400, "0x0", f"Could not find a property named '{name}'.")
        columns = "".join(
            f'<attribute name="{n}"/>'
            for n in dict.fromkeys([info.primary_key, *select_, "modifiedon"])
            if info.attribute(n)
        )
        unknown = [n for n in select_ if info.attribute(n) is None]
        if unknown:
            raise DataverseError(
                400,
                "0x0",
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
    request: Request, info: EntityInfo, record: uuid.UUID, select_: list[str] | None = None
) -> Any:
    if select_ is None:
        raw = request.query_params.get("$select")
        select_ = [s.strip() for s in raw.split(",") if s.strip()] if raw else None
    wanted, applied = _annotations(request)
    with _engine(request).connect() as conn:
        caller = _caller(request, conn)
        result = execute(conn, _fetch_one(info, record, select_), caller)
        if not result.rows:
            raise DataverseError(
                404, "0x80040217", f"{info.name} With Id = {record} Does Not Exist"
            )
        [row] = _shape(conn, info, result.rows, wanted, ZoneInfo(caller.time_zone))
    if select_ and "modifiedon" not in select_:
        row.pop("modifiedon", None)
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
            raise DataverseError(405, "0x0", f"PATCH needs a single record: {segment}(<id>).")
        info = _entity_set(key["set"])
        record = uuid.UUID(key["id"])
        if info.entity_set not in WRITABLE:
            raise DataverseError(405, "0x0", f"{info.entity_set} cannot be updated here.")
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise DataverseError(400, "0x0", f"Invalid JSON body: {exc.msg}.") from exc
        if not isinstance(body, dict):
            raise DataverseError(400, "0x0", "The request body must be a JSON object.")
        values = _values(info, body)
        with _engine(request).begin() as conn:
            caller = _caller(request, conn)
            _check_write(info, record, caller)
            table, pk = info.table, info.table.c[info.primary_key]
            current = conn.execute(select(table).where(pk == record)).mappings().first()
            _preconditions(request, info, record, current)
            if current is None:
                if info.entity_set not in CREATABLE:
                    raise DataverseError(
                        404, "0x80040217", f"{info.name} With Id = {record} Does Not Exist"
                    )
                defaults = {"name": ""} if info.name == "account" else {"fullname": ""}
                conn.execute(insert(table).values({info.primary_key: record, **defaults, **values}))
            elif values:
                stamp = {"modifiedon": utcnow()} if "modifiedon" in table.c else {}
                conn.execute(update(table).where(pk == record).values(**values, **stamp))
        if "return=representation" in request.headers.get("prefer", ""):
            return _retrieve_one(request, info, record)
        base = str(request.base_url).rstrip("/")
        return Response(
            status_code=204,
            headers={"OData-EntityId": f"{base}{PREFIX}/{info.entity_set}({record})"},
        )

    return _handle(run)


def _values(info: EntityInfo, body: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@") or "@odata." in name:
            continue
        column = ALIASES.get(info.entity_set, {}).get(name, name)
        attr = info.attribute(column)
        if attr is None:
            raise DataverseError(
                400,
                "0x80041103",
                f"'{info.name}' entity doesn't contain "
                f"attribute with Name = '{name}' and NameMapping = 'Logical'.",
            )
        if column not in WRITABLE[info.entity_set]:
            raise DataverseError(
                400, "0x80041100", "An attempt was made to update a non-updateable field."
            )
        values[column] = _typed(attr.kind, name, value)
    return values


def _typed(kind: str, name: str, value: Any) -> Any:
    ok = {
        "bool": isinstance(value, bool),
        "string": isinstance(value, str) or value is None,
        "int": isinstance(value, int) and not isinstance(value, bool),
        "uuid": isinstance(value, str) or value is None,
    }.get(kind, True)
    if not ok:
        raise DataverseError(
            400,
            "0x80040203",
            f"Cannot convert the literal '{value}' to the expected type for '{name}'.",
        )
    if kind == "uuid" and value is not None:
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise DataverseError(400, "0x80040203", f"'{value}' is not a Guid.") from exc
    return value


def _check_write(info: EntityInfo, record: uuid.UUID, caller: Caller) -> None:
    if caller.is_admin:
        return
    if info.entity_set == "organizations" or (
        info.entity_set == "usersettingscollection" and record != caller.user_id
    ):
        raise DataverseError(
            403,
            "0x80040220",
            f"The user does not hold the privilege to update this {info.name} record.",
        )


def _preconditions(request: Request, info: EntityInfo, record: uuid.UUID, current: Any) -> None:
    if_match = request.headers.get("if-match")
    if if_match is not None:
        if current is None:
            raise DataverseError(
                404, "0x80040217", f"{info.name} With Id = {record} Does Not Exist"
            )
        if if_match.strip() != "*" and if_match.strip() != _etag(dict(current)):
            raise DataverseError(
                412,
                "0x80060882",
                "The version of the existing record "
                "doesn't match the RowVersion property provided.",
            )
    if request.headers.get("if-none-match", "").strip() == "*" and current is not None:
        raise DataverseError(412, "0x80060892", "A record with matching key values already exists.")
