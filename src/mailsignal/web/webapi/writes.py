"""What a PATCH may change (reference/dataverse.md §4-5), checked before anything is
written: the writable columns per entity set, their JSON types, whether each value fits
its column (length, integer range, text the database can store) and, for
`timezonename` and `timezonecode`, that they name a time zone (and set each other); the
caller's privilege; and the `If-Match` / `If-None-Match` preconditions (ETag =
`modifiedon`); and, after the write, the audit row for the org switch and a user's
opt-in (store/audit.py), in the write's transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from sqlalchemy import Connection

from ...fetchxml import Caller, EntityInfo
from ...pipeline import parties
from ...settings import Settings
from ...store import audit, timezones, users
from ...store.columns import Misfit, misfit, shown
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


def aliased(info: EntityInfo, name: str) -> str:
    """The column a Dataverse name stands for: an alias's column, else the name itself."""
    return ALIASES.get(info.entity_set, {}).get(name, name)


# PATCH on a missing record creates it (an upsert) only for these.
CREATABLE = frozenset({"contacts", "leads", "accounts"})
# Navigation properties a PATCH may bind (`name@odata.bind`), per entity set: the lookup
# column each sets and the entity set its reference names. Dataverse lets a contact's
# parent be a contact too; MailSignal's is an account, so that form is refused by name.
BINDS: dict[str, dict[str, tuple[str, str]]] = {
    "contacts": {"parentcustomerid_account": ("parentcustomerid", "accounts")},
}
UNBINDABLE = {
    ("contacts", "parentcustomerid_contact"): "a contact's parent is an account in "
    "MailSignal: bind parentcustomerid_account to '/accounts(<id>)'.",
}
_REF = re.compile(r"^(?:.*/)?(?P<set>[A-Za-z_]+)\((?P<id>[^()]*)\)$")


def values(info: EntityInfo, body: dict[str, Any]) -> dict[str, Any]:
    """The columns and typed values a PATCH body sets; refuses what may not be set."""
    found: dict[str, Any] = {}
    for name, value in body.items():
        if name.endswith("@odata.bind"):
            column, ref = _bind(info, name, value)
            found[column] = ref
            continue
        if name.startswith("@") or "@odata." in name:
            continue
        column = aliased(info, name)
        attr = info.attribute(column)
        if attr is None:
            raise DataverseError(
                400,
                "0x80041103",
                f"'{info.name}' entity doesn't contain "
                f"attribute with Name = '{_literal(name)}' and NameMapping = 'Logical'.",
            )
        if column not in WRITABLE[info.entity_set]:
            raise DataverseError(
                400, "0x80041100", "An attempt was made to update a non-updateable field."
            )
        found[column] = _typed(attr.kind, name, value)
    wrong = misfit(info.table, found)
    if wrong is not None:
        raise _misfit_error(info, wrong)
    if "timezonename" in found or "timezonecode" in found:
        found.update(_zone(found))
    return found


def _bind(info: EntityInfo, name: str, value: Any) -> tuple[str, uuid.UUID | None]:
    """The lookup column and record a `nav@odata.bind` sets (null clears it); a 400 for
    any bind MailSignal cannot honour, never a silent 204."""
    prop = name.removesuffix("@odata.bind")
    target = BINDS.get(info.entity_set, {}).get(prop)
    if target is None:
        why = UNBINDABLE.get((info.entity_set, prop))
        raise DataverseError(
            400,
            "0x80060888",
            f"Cannot bind '{_literal(prop)}' on {info.entity_set}: {why}"
            if why
            else f"An undeclared property '{_literal(prop)}' which only has property "
            "annotations in the payload but no property value was found in the payload. "
            "In OData, only declared navigation properties and declared named streams can "
            "be represented as properties without values.",
        )
    column, entity_set = target
    if value is None:
        return column, None
    match = _REF.match(value) if isinstance(value, str) else None
    if match is None or match["set"] != entity_set:
        raise DataverseError(
            400,
            "0x80060891",
            f"The value '{_literal(value)}' of '{_literal(name)}' does not name a record "
            f"of {entity_set}: give '/{entity_set}(<id>)'.",
        )
    return column, _typed("uuid", name, match["id"])


def _misfit_error(info: EntityInfo, wrong: Misfit) -> DataverseError:
    """Dataverse's refusal of a value its column cannot hold."""
    if wrong.reason == "range":
        # An Int32 past its range fails where Dataverse reads the body, as a bad literal.
        return DataverseError(
            400,
            "0x80040203",
            f"Cannot convert the literal '{shown(wrong.value)}' to the expected type "
            f"'Edm.Int32' for '{wrong.column}'.",
        )
    where = f"the '{wrong.column}' attribute of the '{info.name}' entity"
    if wrong.reason == "null":
        text = f"A value must be provided for {where}."
    elif wrong.reason == "length":
        text = f"The length of {where} exceeded the maximum allowed length of '{wrong.limit}'."
    else:
        what = "NUL" if wrong.reason == "nul" else "a lone surrogate"
        text = f"The value of {where} holds a character that cannot be stored ({what})."
    return DataverseError(400, "0x80044331", f"A validation error occurred. {text}")


def _zone(found: dict[str, Any]) -> dict[str, Any]:
    """Both zone columns from the one (or two, agreeing) given: the date operators read
    `timezonename`, so a `timezonecode` takes effect only through the name it stands for."""
    if "timezonecode" not in found:
        _check_zone(found["timezonename"])
        code = timezones.code_of(found["timezonename"])
        return {} if code is None else {"timezonecode": code}
    code = found["timezonecode"]
    name = timezones.zone_of(code)
    if name is None:
        raise DataverseError(
            400,
            "0x80044331",
            f"A validation error occurred. The value {code} of 'timezonecode' on record of "
            "type 'usersettings' is outside the valid range.",
        )
    if found.get("timezonename", name) != name:
        raise DataverseError(
            400,
            "0x80044331",
            f"A validation error occurred. timezonecode {code} is {name}, "
            f"not '{_literal(found['timezonename'])}': give one of the two.",
        )
    return {"timezonename": name}


def _check_zone(name: str) -> None:
    """An unknown zone would break every date operator of the user's later queries."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise DataverseError(
            400,
            "0x80044331",
            f"A validation error occurred. '{_literal(name)}' is not a time zone: "
            "timezonename takes an IANA name such as 'Europe/Berlin'.",
        ) from exc


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
            f"Cannot convert the literal '{_literal(value)}' to the expected type for '{name}'.",
        )
    if kind == "uuid" and value is not None:
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise DataverseError(400, "0x80040203", f"'{_literal(value)}' is not a Guid.") from exc
    return value


def _literal(value: Any) -> str:
    """A value as a refusal quotes it: short, and JSON-safe whatever the client sent (a
    lone surrogate is written as its escape)."""
    text = shown(value) if isinstance(value, int) else str(value)
    text = text if len(text) <= 100 else text[:100] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Who is writing, from `check_write` to `follow_addresses` in the same PATCH (one worker
# thread, one copied context per request): the actor of the audit row.
_WRITER: ContextVar[Caller | None] = ContextVar("webapi_writer", default=None)


def check_write(info: EntityInfo, record: uuid.UUID, caller: Caller) -> None:
    """A rep may not change the organization nor another user's settings."""
    _WRITER.set(caller)
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


def follow_addresses(
    conn: Connection,
    info: EntityInfo,
    current: Mapping[str, Any] | None,
    written: Mapping[str, Any],
    settings: Settings,
) -> None:
    """After a contact, lead or account is created or changes its address or account,
    mail already sent follows, as after the CLI's and REST's writes (pipeline/parties.py).
    A change of the org switch or name, or of a user's opt-in, is audited."""
    if info.entity_set in CREATABLE:
        parties.follow(conn, info.name, current, written, settings)
    if current is not None and info.entity_set in ("organizations", "usersettingscollection"):
        _audit(conn, info, current, written)


def _audit(
    conn: Connection, info: EntityInfo, current: Mapping[str, Any], written: Mapping[str, Any]
) -> None:
    caller = _WRITER.get()
    if caller is None:  # check_write runs first on every PATCH
        raise RuntimeError("a Web API write without its caller: check_write was not called")
    actor = audit.user_actor(caller.user_id)
    if info.entity_set == "usersettingscollection":
        if "emailengagementoptin" in written:
            before, after = current["emailengagementoptin"], written["emailengagementoptin"]
            users.audit_optin(conn, current["systemuserid"], bool(before), bool(after), actor=actor)
        return
    changed = {
        column: {"from": current[column], "to": written[column]}
        for column in ("isemailmonitoringallowed", "name")
        if column in written and written[column] != current[column]
    }
    if changed:
        audit.record(
            conn,
            "org.update",
            actor=actor,
            subject=str(current["organizationid"]),
            details=changed,
        )
