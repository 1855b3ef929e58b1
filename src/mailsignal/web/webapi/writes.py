"""What a PATCH may change (reference/dataverse.md §4-5), checked before anything is
written: the writable columns per entity set, their JSON types, the caller's privilege,
and the `If-Match` / `If-None-Match` preconditions (ETag = `modifiedon`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from ...fetchxml import Caller, EntityInfo
from .errors import DataverseError, does_not_exist
from .shape import etag

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
# PATCH on a missing record creates it (an upsert) only for these.
CREATABLE = frozenset({"contacts", "leads", "accounts"})


def values(info: EntityInfo, body: dict[str, Any]) -> dict[str, Any]:
    """The columns and typed values a PATCH body sets; refuses what may not be set."""
    found: dict[str, Any] = {}
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
        found[column] = _typed(attr.kind, name, value)
    return found


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


def check_write(info: EntityInfo, record: uuid.UUID, caller: Caller) -> None:
    """A rep may not change the organization nor another user's settings."""
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


def preconditions(
    request: Request, info: EntityInfo, record: uuid.UUID, current: Mapping[str, Any] | None
) -> None:
    """`If-Match` (the record's ETag, or `*`) and `If-None-Match: *` against `current`."""
    if_match = request.headers.get("if-match")
    if if_match is not None:
        if current is None:
            raise does_not_exist(info, record)
        if if_match.strip() != "*" and if_match.strip() != etag(current):
            raise DataverseError(
                412,
                "0x80060882",
                "The version of the existing record "
                "doesn't match the RowVersion property provided.",
            )
    if request.headers.get("if-none-match", "").strip() == "*" and current is not None:
        raise DataverseError(412, "0x80060892", "A record with matching key values already exists.")
