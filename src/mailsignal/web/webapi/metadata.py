"""Table and column metadata as Dataverse's `EntityDefinitions` serve it, from the catalog.

What the two stock clients read: powerplatform-dataverse-client 1.1 resolves a table with
`EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute&$filter=
LogicalName eq 'contact'`, then `EntityDefinitions(<MetadataId>)/Attributes`,
`.../Attributes(LogicalName='x')` and, to turn option labels into numbers,
`EntityDefinitions(LogicalName='x')/Attributes/Microsoft.Dynamics.CRM.
PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)`.

Everything is generated from `store.catalog.CATALOG`, so a column exists here the
moment it exists in the schema. MetadataIds are uuid5 of the logical names: stable
across servers and restarts, as clients cache them. `$select` picks properties (plus
`MetadataId`, which Dataverse always returns); `$filter` takes `LogicalName eq '...'`
only, anything else is refused with Dataverse's 0x80060888 rather than ignored.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ...fetchxml import AttributeInfo, EntityInfo
from ...model import EventKind
from ...store.catalog import CATALOG
from .errors import NOT_FOUND, QUERY_SYNTAX, DataverseError
from .shape import BOOLEAN_LABELS

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://mailsignal/metadata")
CRM = "Microsoft.Dynamics.CRM."
# Dataverse's SchemaName and ObjectTypeCode of the standard tables MailSignal serves.
_SCHEMA = {
    "email": ("Email", 4202),
    "interactionforemail": ("InteractionForEmail", None),
    "contact": ("Contact", 2),
    "lead": ("Lead", 4),
    "account": ("Account", 1),
    "systemuser": ("SystemUser", 8),
    "usersettings": ("UserSettings", 150),
    "organization": ("Organization", 1019),
}
# Choice columns: their metadata type and options (value, label).
_OPTIONS: dict[tuple[str, str], tuple[str, tuple[tuple[int, str], ...]]] = {
    ("email", "statecode"): ("State", ((0, "Open"), (1, "Completed"), (2, "Canceled"))),
    ("email", "statuscode"): (
        "Status",
        (
            (1, "Draft"),
            (2, "Completed"),
            (3, "Sent"),
            (4, "Received"),
            (5, "Canceled"),
            (6, "Pending Send"),
            (7, "Sending"),
            (8, "Failed"),
        ),
    ),
    ("interactionforemail", "statecode"): ("State", ((0, "Active"), (1, "Inactive"))),
    ("interactionforemail", "interactiontype"): (
        "Picklist",
        (
            (EventKind.OPEN, "Email Open"),
            (EventKind.CLICK, "Link Open"),
            (EventKind.ATTACHMENT, "Attachment Open"),
            (EventKind.REPLY, "Email Reply"),
        ),
    ),
}
_TYPES = {
    "uuid": ("Uniqueidentifier", "UniqueidentifierType"),
    "string": ("String", "StringType"),
    "float": ("Double", "DoubleType"),
    "bool": ("Boolean", "BooleanType"),
    "datetime": ("DateTime", "DateTimeType"),
    "json": ("Memo", "MemoType"),
}
# The typed casts (`Attributes/Microsoft.Dynamics.CRM.XAttributeMetadata`) and their type.
CASTS = {
    "Picklist": "Picklist",
    "State": "State",
    "Status": "Status",
    "Boolean": "Boolean",
    "String": "String",
    "Memo": "Memo",
    "Integer": "Integer",
    "BigInt": "BigInt",
    "Double": "Double",
    "DateTime": "DateTime",
    "Lookup": "Lookup",
    "UniqueIdentifier": "Uniqueidentifier",
}
_FILTER = re.compile(r"\s*LogicalName\s+eq\s+'((?:[^']|'')*)'\s*")
_PRIVATE = re.compile(r"\s*IsPrivate\s+eq\s+(true|false)\s*")
_KEY = re.compile(r"LogicalName\s*=\s*'((?:[^']|'')*)'")


def metadata_id(*names: str) -> uuid.UUID:
    """The stable MetadataId of a table (`"contact"`) or column (`"contact", "fullname"`)."""
    return uuid.uuid5(_NAMESPACE, ".".join(names))


def _label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def entity_definition(info: EntityInfo) -> dict[str, Any]:
    """One `EntityMetadata`, with the properties clients read."""
    schema, type_code = _SCHEMA.get(info.name, (info.name, None))
    return {
        "MetadataId": str(metadata_id(info.name)),
        "LogicalName": info.name,
        "SchemaName": schema,
        "EntitySetName": info.entity_set,
        "LogicalCollectionName": info.entity_set,
        "CollectionSchemaName": info.entity_set,
        "PrimaryIdAttribute": info.primary_key,
        "PrimaryNameAttribute": info.primary_name,
        "ObjectTypeCode": type_code,
        "IsActivity": info.name == "email",
        "IsCustomEntity": False,
        "OwnershipType": "UserOwned" if info.owner in ("owner", "owned-email") else "None",
        "TableType": "Standard",
        "DisplayName": _label(schema),
        "DisplayCollectionName": _label(info.entity_set),
    }


def attribute_type(info: EntityInfo, attr: AttributeInfo) -> str:
    """Dataverse's AttributeType of a column (`String`, `Lookup`, `Picklist`...)."""
    if (info.name, attr.name) in _OPTIONS:
        return _OPTIONS[info.name, attr.name][0]
    if attr.name in info.lookups and attr.name != info.primary_key:
        return "Owner" if attr.name == "ownerid" else "Lookup"
    if attr.kind == "int":
        return "BigInt" if attr.int_bits == 64 else "Integer"
    return _TYPES[attr.kind][0]


def attribute_definition(info: EntityInfo, attr: AttributeInfo, expand: bool) -> dict[str, Any]:
    """One `AttributeMetadata`, typed by `@odata.type`; `expand` adds its OptionSet."""
    kind = attribute_type(info, attr)
    column = info.table.c[attr.name]
    out: dict[str, Any] = {
        "@odata.type": f"#{CRM}{_cast_name(kind)}AttributeMetadata",
        "MetadataId": str(metadata_id(info.name, attr.name)),
        "LogicalName": attr.name,
        "SchemaName": attr.name,
        "EntityLogicalName": info.name,
        "AttributeType": kind,
        "AttributeTypeName": {"Value": f"{kind}Type"},
        "IsPrimaryId": attr.name == info.primary_key,
        "IsPrimaryName": attr.name == info.primary_name,
        "IsValidForRead": True,
        "IsCustomAttribute": False,
        "RequiredLevel": {"Value": "None" if column.nullable else "SystemRequired"},
        "DisplayName": _label(attr.name),
    }
    length = getattr(column.type, "length", None)
    if kind == "String" and length:
        out["MaxLength"] = length
    if kind in ("Lookup", "Owner"):
        out["Targets"] = list(info.lookups[attr.name])
    if kind == "Integer":
        out.update(MinValue=-(2**31), MaxValue=2**31 - 1)
    if kind == "DateTime":
        out["Format"] = "DateAndTime"
    if expand and (info.name, attr.name) in _OPTIONS:
        options = [
            {"Value": int(value), "Label": _label(text)}
            for value, text in _OPTIONS[info.name, attr.name][1]
        ]
        out["OptionSet"] = {"Name": f"{info.name}_{attr.name}", "Options": options}
    if expand and kind == "Boolean":
        yes, no = BOOLEAN_LABELS.get(attr.name, ("Yes", "No"))
        out["OptionSet"] = {
            "Name": f"{info.name}_{attr.name}",
            "TrueOption": {"Value": 1, "Label": _label(yes)},
            "FalseOption": {"Value": 0, "Label": _label(no)},
        }
    return out


def _cast_name(kind: str) -> str:
    return {"Uniqueidentifier": "UniqueIdentifier", "Owner": "Lookup"}.get(kind, kind)


def entity(key: str) -> EntityInfo:
    """The table an `EntityDefinitions(...)` key names: `LogicalName='x'` or a MetadataId."""
    named = _KEY.fullmatch(key.strip())
    if named:
        name = named[1].replace("''", "'")
        found = CATALOG.entity(name)
        if found is None:
            raise DataverseError(
                404, NOT_FOUND, f"Could not find entity with LogicalName = '{name}'."
            )
        return found
    try:
        wanted = uuid.UUID(key.strip())
    except ValueError:
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
    for info in CATALOG.entities.values():
        if metadata_id(info.name) == wanted:
            return info
    raise DataverseError(404, NOT_FOUND, f"Could not find entity with MetadataId = '{wanted}'.")


def attribute(info: EntityInfo, key: str) -> AttributeInfo:
    """The column an `Attributes(...)` key names: `LogicalName='x'` or a MetadataId."""
    named = _KEY.fullmatch(key.strip())
    for attr in info.columns.values():
        if (named and attr.name == named[1]) or (
            not named and str(metadata_id(info.name, attr.name)) == key.strip().lower()
        ):
            return attr
    if not named:
        try:
            uuid.UUID(key.strip())
        except ValueError:
            raise DataverseError(
                400, QUERY_SYNTAX, "Bad Request - Error in query syntax."
            ) from None
    shown = named[1] if named else key.strip()
    raise DataverseError(
        404, NOT_FOUND, f"Could not find attribute '{shown}' on entity '{info.name}'."
    )


def cast(segment: str) -> str:
    """The AttributeType a typed cast segment selects; 404 for one that is not a cast."""
    name = segment.removeprefix(CRM).removesuffix("AttributeMetadata")
    if not segment.startswith(CRM) or name not in CASTS:
        raise DataverseError(404, QUERY_SYNTAX, f"Resource not found for the segment '{segment}'.")
    return CASTS[name]


def logical_name_filter(raw: str | None) -> str | None:
    """The name of `$filter=LogicalName eq 'x'`; any other filter is refused, but for
    `IsPrivate eq false|true` (what the Python SDK's `tables.list()` asks): no table of
    MailSignal's is private, so it keeps all of them (None) or none (a name nothing has)."""
    if raw is None:
        return None
    private = _PRIVATE.fullmatch(raw)
    if private:
        return None if private[1] == "false" else ""
    found = _FILTER.fullmatch(raw)
    if not found:
        raise DataverseError(
            400,
            QUERY_SYNTAX,
            "The $filter on metadata supports only LogicalName eq '<name>' here.",
        )
    return found[1].replace("''", "'")


def selected(
    items: Iterable[dict[str, Any]], raw: str | None, type_name: str
) -> list[dict[str, Any]]:
    """`items` cut to the `$select`ed properties (with `MetadataId` and `@odata.type`)."""
    rows = list(items)
    if not raw or not rows:  # a cast no column has: an empty collection, as Dataverse says
        return rows
    names = [n.strip() for n in raw.split(",") if n.strip()]
    known = set().union(*(r.keys() for r in rows)) if rows else set()
    for name in names:
        if name not in known and not _optional(name):
            raise DataverseError(
                400,
                QUERY_SYNTAX,
                f"Could not find a property named '{name}' on type '{CRM}{type_name}'.",
            )
    keep = {"MetadataId", "@odata.type", "OptionSet", *names}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


def _optional(name: str) -> bool:
    """Properties that only some rows carry (a string's MaxLength, a lookup's Targets)."""
    return name in {"MaxLength", "Targets", "MinValue", "MaxValue", "Format", "OptionSet"}


def expand_option_set(raw: str | None) -> bool:
    """Whether `$expand` asks for the OptionSet (`OptionSet`, `OptionSet($select=...)`,
    `GlobalOptionSet`); any other expansion is refused."""
    if raw is None:
        return False
    for part in _top_level(raw):
        name = part.split("(", 1)[0].strip()
        if name not in ("OptionSet", "GlobalOptionSet"):
            raise DataverseError(
                400, QUERY_SYNTAX, f"Could not find a property named '{name}' to expand."
            )
    return True


def _top_level(raw: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(raw):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return [p for p in parts if p.strip()]


def check_options(params: Mapping[str, str], allowed: Iterable[str]) -> None:
    """Refuse a query option this resource does not take, as Dataverse does."""
    allowed = set(allowed)
    for name in params:
        if name not in allowed:
            raise DataverseError(400, QUERY_SYNTAX, f"The query parameter {name} is not supported")
