"""Rows as Dataverse returns them (reference/dataverse.md §4).

Nulls are left out, a lookup `x` becomes `_x_value`, and the annotations the `Prefer:
odata.include-annotations` header asks for are added: formatted values (booleans by
their labels, numbers grouped, datetimes in the caller's zone, lookups by the display
name of the record they point at), the lookup's logical name, and the attribute name
of a link-entity column. The ETag is `modifiedon` in microseconds, on every row whose
entity has it (the routes read it even when the query does not select it).

`Prefer` is parsed as RFC 7240 says: comma-separated preferences whose values may be
quoted, so `odata.include-annotations="a,b,c"` is one preference naming three
annotations, next to `odata.maxpagesize=N`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request

from ...fetchxml import EntityInfo
from ...fetchxml.codes import MAX_PAGE_SIZE

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


# One preference of a Prefer header: a token, then `=` and a token or a quoted string.
_PREFERENCE = re.compile(r'\s*([^\s=,;]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;]*))?[^,]*,?')


def preferences(request: Request) -> dict[str, str]:
    """Every preference of the request's Prefer headers, by lower-cased name; quoted
    values unquoted (`return=representation` gives "representation", a bare name "")."""
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for match in _PREFERENCE.finditer(header):
            value = (match[2] or "").strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found.setdefault(match[1].lower(), value)
    return found


def prefer_annotations(request: Request) -> tuple[set[str] | None, str | None]:
    """Which annotations the Prefer header asks for (None = none), and what to echo."""
    wanted = preferences(request).get("odata.include-annotations")
    if wanted is None:
        return None, None
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    return names, f'odata.include-annotations="{wanted}"'


def max_page_size(request: Request) -> int | None:
    """`Prefer: odata.maxpagesize=N` (1..5000; a larger N is Dataverse's cap), or None
    when absent or not a positive number, as a preference a server may ignore."""
    raw = preferences(request).get("odata.maxpagesize", "")
    return min(int(raw), MAX_PAGE_SIZE) if raw.isdigit() and int(raw) > 0 else None


def next_link(request: Request, base: str, **params: str) -> str:
    """The request's own URL under `base` with `params` replaced: `@odata.nextLink`."""
    query = dict(request.query_params)
    query.update(params)
    return f"{base}{request.url.path}?{urlencode(query)}"


def wants(wanted: set[str] | None, name: str) -> bool:
    """Whether `name` is among `wanted`, literally or by a `*` / `Namespace.*` wildcard."""
    if wanted is None:
        return False
    return any(
        w == name or w == "*" or (w.endswith(".*") and name.startswith(w[:-1])) for w in wanted
    )


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
    hidden: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Rows as Dataverse returns them; `names` are the lookups' display names, and
    `hidden` columns were read only for the ETag and are left out."""
    # A primary key that is also a lookup (usersettings' `systemuserid`) is the key.
    lookups = {k: v for k, v in info.lookups.items() if k != info.primary_key}
    shaped = []
    for row in rows:
        out: dict[str, Any] = {}
        tag = etag(row)
        if tag:
            out["@odata.etag"] = tag
        for name, value in row.items():
            if value is None or name in hidden:
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
