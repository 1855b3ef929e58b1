"""The metadata endpoints: `EntityDefinitions[...]` (JSON, metadata.py builds the
bodies) and `$metadata` (the CSDL document OData clients and tools read).

`EntityDefinitions` and everything below it arrive as one path (`EntityDefinitions(
LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`),
split here into its segments. Every request needs an API key, as every Web API call does.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...fetchxml import AttributeInfo, EntityInfo
from ...store.catalog import CATALOG
from ..api import current_user
from . import common
from . import metadata as md
from .errors import NOT_FOUND, QUERY_SYNTAX, DataverseError, handle

router = APIRouter()
# A segment with an optional key: `Attributes`, `Attributes(LogicalName='x')`.
_SEGMENT = re.compile(r"(?P<name>[A-Za-z_.]+)(?:\((?P<key>[^()]*)\))?")
_EDM = {
    "uuid": "Edm.Guid",
    "string": "Edm.String",
    "float": "Edm.Double",
    "bool": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
    "json": "Edm.String",
}


def _context(request: Request, fragment: str) -> str:
    base = common.base(request)
    return f"{base}/api/data/v9.2/$metadata#{fragment}"


def _segments(rest: str) -> list[tuple[str, str | None]]:
    """`(key)/Attributes(...)/Cast` as [("", key), ("Attributes", ...), ("Cast", None)]."""
    out: list[tuple[str, str | None]] = []
    head, _, tail = rest.partition("/")
    if head:
        if not (head.startswith("(") and head.endswith(")")):
            raise DataverseError(
                404, QUERY_SYNTAX, f"Resource not found for the segment 'EntityDefinitions{head}'."
            )
        out.append(("", head[1:-1]))
    for part in tail.split("/") if tail else []:
        found = _SEGMENT.fullmatch(part)
        if not found:
            raise DataverseError(404, QUERY_SYNTAX, f"Resource not found for the segment '{part}'.")
        out.append((found["name"], found["key"]))
    return out


def _definitions(request: Request, rest: str) -> Any:
    params = dict(request.query_params)
    segments = _segments(rest)
    if not segments:  # the collection
        md.check_options(params, ("$select", "$filter"))
        name = md.logical_name_filter(params.get("$filter"))
        rows = [
            md.entity_definition(info)
            for info in CATALOG.entities.values()
            if name is None or info.name == name
        ]
        value = md.selected(rows, params.get("$select"), "EntityMetadata")
        return {"@odata.context": _context(request, "EntityDefinitions"), "value": value}
    info = md.entity(segments[0][1] or "")
    if len(segments) == 1:
        md.check_options(params, ("$select",))
        [row] = md.selected([md.entity_definition(info)], params.get("$select"), "EntityMetadata")
        return {"@odata.context": _context(request, "EntityDefinitions/$entity"), **row}
    name, key = segments[1]
    if name != "Attributes" or len(segments) > 3:
        raise DataverseError(
            404, QUERY_SYNTAX, f"Resource not found for the segment '{segments[-1][0]}'."
        )
    md.check_options(params, ("$select", "$filter", "$expand"))
    cast = md.cast(segments[2][0]) if len(segments) == 3 else None
    expand = md.expand_option_set(params.get("$expand"))
    attrs: list[AttributeInfo] = list(info.columns.values())
    if key is not None:
        attrs = [md.attribute(info, key)]
    if cast is not None:
        attrs = [a for a in attrs if md.attribute_type(info, a) in _cast_types(cast)]
    type_name = f"{cast or ''}AttributeMetadata".replace("Uniqueidentifier", "UniqueIdentifier")
    if key is not None:
        if not attrs:  # the one column named is not of the cast's type
            raise DataverseError(404, NOT_FOUND, f"The attribute is not a {type_name}.")
        md.check_options(params, ("$select", "$expand"))
        [row] = md.selected(
            [md.attribute_definition(info, attrs[0], expand)], params.get("$select"), type_name
        )
        return {"@odata.context": _context(request, "EntityDefinitions/Attributes/$entity"), **row}
    wanted = md.logical_name_filter(params.get("$filter"))
    rows = [md.attribute_definition(info, a, expand) for a in attrs if wanted in (None, a.name)]
    value = md.selected(rows, params.get("$select"), type_name)
    fragment = f"EntityDefinitions({md.metadata_id(info.name)})/Attributes"
    return {"@odata.context": _context(request, fragment), "value": value}


def _cast_types(cast: str) -> tuple[str, ...]:
    return ("Lookup", "Owner") if cast == "Lookup" else (cast,)


@router.get("/EntityDefinitions{rest:path}")
def entity_definitions(rest: str, request: Request) -> Any:
    """`EntityDefinitions`, one table, its `Attributes`, one column, and typed casts."""

    def run() -> Any:
        current_user(request)
        return JSONResponse(_definitions(request, rest), headers={"OData-Version": "4.0"})

    return handle(run)


def _property(info: EntityInfo, attr: AttributeInfo) -> str:
    if attr.name in info.lookups and attr.name != info.primary_key:
        return f'<Property Name="_{attr.name}_value" Type="Edm.Guid"/>'
    edm = ("Edm.Int64" if attr.int_bits == 64 else "Edm.Int32") if attr.kind == "int" else None
    return f'<Property Name="{attr.name}" Type="{edm or _EDM[attr.kind]}"/>'


def csdl() -> str:
    """The CSDL (OData v4 XML) of MailSignal's tables, WhoAmI and their entity sets."""
    types, sets = [], []
    for info in CATALOG.entities.values():
        props = "".join(_property(info, a) for a in info.columns.values())
        navs = "".join(
            f'<NavigationProperty Name="{name}" Type="Microsoft.Dynamics.CRM.{targets[0]}"/>'
            for name, targets in info.lookups.items()
            if name != info.primary_key
        )
        types.append(
            f"<EntityType Name={quoteattr(info.name)}><Key><PropertyRef "
            f'Name="{info.primary_key}"/></Key>{props}{navs}</EntityType>'
        )
        sets.append(
            f'<EntitySet Name="{info.entity_set}" EntityType="Microsoft.Dynamics.CRM.{info.name}"/>'
        )
    who = "".join(
        f'<Property Name="{n}" Type="Edm.Guid" Nullable="false"/>'
        for n in ("BusinessUnitId", "UserId", "OrganizationId")
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
        "<edmx:DataServices>"
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" '
        'xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(types)
        + f'<ComplexType Name="WhoAmIResponse">{who}</ComplexType>'
        '<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/>'
        '</Function><EntityContainer Name="System">'
        + "".join(sets)
        + '<FunctionImport Name="WhoAmI" Function="mscrm.WhoAmI"/>'
        "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )


@router.get("/$metadata")
def service_metadata(request: Request) -> Any:
    """`$metadata`: the CSDL document."""

    def run() -> Any:
        current_user(request)
        return Response(csdl(), media_type="application/xml", headers={"OData-Version": "4.0"})

    return handle(run)
