"""The catalog the FetchXML compiler is given: the logical entities of `store.schema`.

The physical tables use Dataverse's logical names (DESIGN §4), so every column is an
attribute the moment it exists; its kind comes from its column type. What the tables
cannot say is written here: entity set names (reference/dataverse.md §4), primary names,
lookup targets, and who may read which rows (`fetchxml/access.py` applies the rule).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Integer, String, Table, Uuid

from ..fetchxml.catalog import DOTNET, AttributeInfo, Catalog, EntityInfo, Owner
from . import schema
from .types import UtcDateTime


def _info(entity: str, column: Column[object]) -> AttributeInfo:
    t = column.type
    if isinstance(t, UtcDateTime):
        return AttributeInfo(entity, column.name, "datetime", DOTNET["datetime"])
    if isinstance(t, Uuid):
        return AttributeInfo(entity, column.name, "uuid", DOTNET["uuid"])
    if isinstance(t, Boolean):
        return AttributeInfo(entity, column.name, "bool", DOTNET["bool"])
    if isinstance(t, BigInteger):
        return AttributeInfo(entity, column.name, "int", DOTNET["bigint"], 64)
    if isinstance(t, Integer):
        return AttributeInfo(entity, column.name, "int", DOTNET["int"], 32)
    if isinstance(t, Float):
        return AttributeInfo(entity, column.name, "float", DOTNET["float"])
    if isinstance(t, String):
        return AttributeInfo(entity, column.name, "string", DOTNET["string"])
    if isinstance(t, JSON):
        return AttributeInfo(entity, column.name, "json", DOTNET["json"])
    raise TypeError(f"{entity}.{column.name}: no FetchXML kind for {t!r}")  # pragma: no cover


def _entity(
    table: Table,
    entity_set: str,
    key: str,
    primary_name: str | None,
    owner: Owner,
    lookups: Mapping[str, tuple[str, ...]] | None = None,
    hidden: tuple[str, ...] = (),
) -> EntityInfo:
    """`table` as FetchXML and the Web API see it; `hidden` columns do not exist there."""
    columns = {c.name: _info(table.name, c) for c in table.columns if c.name not in hidden}
    return EntityInfo(
        table.name, table, entity_set, key, primary_name, owner, columns, lookups or {}
    )


CATALOG = Catalog(
    (
        _entity(
            schema.email,
            "emails",
            "activityid",
            "subject",
            "owner",
            {"regardingobjectid": ("contact", "lead", "account"), "ownerid": ("systemuser",)},
        ),
        # `ownerid` is the panel's copy of the email's owner for its feed index, not a
        # column of Dataverse's interactionforemail: access goes through the email.
        _entity(
            schema.interactionforemail,
            "interactionforemails",
            "interactionforemailid",
            None,
            "owned-email",
            hidden=("ownerid",),
        ),
        _entity(
            schema.contact,
            "contacts",
            "contactid",
            "fullname",
            "everyone",
            {"parentcustomerid": ("account",)},
        ),
        _entity(schema.lead, "leads", "leadid", "fullname", "everyone"),
        _entity(schema.account, "accounts", "accountid", "name", "everyone"),
        # A password hash is never readable, not even by an admin through a query.
        _entity(
            schema.systemuser,
            "systemusers",
            "systemuserid",
            "fullname",
            "self",
            hidden=("passwordhash",),
        ),
        _entity(
            schema.usersettings,
            "usersettingscollection",
            "systemuserid",
            None,
            "self",
            {"systemuserid": ("systemuser",)},
        ),
        _entity(schema.organization, "organizations", "organizationid", "name", "everyone"),
    )
)
