"""Rows as Dataverse returns them (reference/dataverse.md §4).

Nulls are left out, a lookup `x` becomes `_x_value`, and the annotations the `Prefer:
odata.include-annotations` header asks for are added: formatted values (booleans by
their labels, numbers grouped, datetimes in the caller's zone, lookups by the display
name of the record they point at), the lookup's logical name, and the attribute name
of a link-entity column. The ETag is `modifiedon` in microseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from ...fetchxml import EntityInfo

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ATTRIBUTE_NAME = "OData.Community.Display.V1.AttributeName"
PAGING = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE = "Microsoft.Dynamics.CRM.morerecords"
TOTAL = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
BOOLEAN_LABELS = {
    "directioncode": ("Outgoing", "Incoming"),
    "followemail": ("Allow", "Do Not Allow"),
}


def prefer_annotations(request: Request) -> tuple[set[str] | None, str | None]:
    """Which annotations the Prefer header asks for (None = none), and what to echo."""
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.include-annotations":
            wanted = value.strip().strip('"')
            applied = f'odata.include-annotations="{wanted}"'
            return ({"*"} if wanted == "*" else {w.strip() for w in wanted.split(",")}), applied
    return None, None


def wants(wanted: set[str] | None, name: str) -> bool:
    return wanted is not None and ("*" in wanted or name in wanted)


def etag(row: Mapping[str, Any]) -> str | None:
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


def lookup_refs(info: EntityInfo, rows: list[dict[str, Any]]) -> set[tuple[str, uuid.UUID]]:
    """(entity name, id) of every record the rows' lookups point at."""
    refs: set[tuple[str, uuid.UUID]] = set()
    for row in rows:
        for attr, targets in info.lookups.items():
            if isinstance(row.get(attr), uuid.UUID):
                kind = row.get(f"{attr}typecode") or (
                    row.get("regardingobjecttypecode") if attr == "regardingobjectid" else None
                )
                refs.add((str(kind or targets[0]), row[attr]))
    return refs


def shape(
    info: EntityInfo,
    rows: list[dict[str, Any]],
    wanted: set[str] | None,
    zone: ZoneInfo,
    names: Mapping[uuid.UUID, str],
) -> list[dict[str, Any]]:
    """Rows as Dataverse returns them; `names` are the lookups' display names."""
    lookups = dict(info.lookups)
    shaped = []
    for row in rows:
        out: dict[str, Any] = {}
        tag = etag(row)
        if tag:
            out["@odata.etag"] = tag
        for name, value in row.items():
            if value is None:
                continue
            if name in lookups and isinstance(value, uuid.UUID):
                key = f"_{name}_value"
                out[key] = str(value)
                if wants(wanted, LOOKUP_NAME):
                    kind = (
                        row.get("regardingobjecttypecode") if name == "regardingobjectid" else None
                    )
                    out[f"{key}@{LOOKUP_NAME}"] = kind or lookups[name][0]
                if value in names:
                    out[f"{key}@{FORMATTED}"] = names[value]
                continue
            out[name] = _json_value(value)
            if wants(wanted, FORMATTED):
                formatted = _formatted(name, value, zone)
                if formatted is not None:
                    out[f"{name}@{FORMATTED}"] = formatted
            if "." in name and wants(wanted, ATTRIBUTE_NAME):
                out[f"{name}@{ATTRIBUTE_NAME}"] = name.rsplit(".", 1)[1]
        shaped.append(out)
    return shaped
