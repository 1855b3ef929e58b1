"""The logical model FetchXML sees: entities, their attributes and attribute types.

Built from `store.schema` (the physical tables use Dataverse's logical names, DESIGN §4),
so a new column is queryable the moment it exists. What the tables cannot say is
written here: entity set names (reference/dataverse.md §4), primary names, lookup
targets, and who may read which rows (`access.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Integer, String, Table, Uuid

from ..store import schema
from ..store.schema import UtcDateTime

Kind = Literal["uuid", "string", "int", "float", "bool", "datetime", "json"]
# How Dataverse names each type in its FormatException message (dataverse.md §2).
DOTNET: dict[str, str] = {
    "uuid": "System.Guid",
    "string": "System.String",
    "int": "System.Int32",
    "bigint": "System.Int64",
    "float": "System.Double",
    "bool": "System.Boolean",
    "datetime": "System.DateTime",
    "json": "System.Object",
}
# Who may read an entity's rows when the caller is not an admin (access.py applies it).
Owner = Literal["everyone", "owner", "self", "owned-email"]


@dataclass(frozen=True)
class AttributeInfo:
    """One attribute: its column and kind; `dotnet` names the type in error messages."""

    entity: str
    name: str
    kind: Kind
    dotnet: str
    int_bits: int = 0  # 32 or 64 for ints, so an overflowing value is refused, not sent


@dataclass(frozen=True)
class EntityInfo:
    """One logical entity and its table."""

    name: str
    table: Table
    entity_set: str
    primary_key: str
    primary_name: str | None
    owner: Owner
    lookups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names in table order (what `<all-attributes/>` returns)."""
        return tuple(c.name for c in self.table.columns)

    def attribute(self, name: str) -> AttributeInfo | None:
        column = self.table.columns.get(name)
        return None if column is None else _info(self.name, column)


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
) -> EntityInfo:
    return EntityInfo(table.name, table, entity_set, key, primary_name, owner, lookups or {})


ENTITIES: dict[str, EntityInfo] = {
    e.name: e
    for e in (
        _entity(
            schema.email,
            "emails",
            "activityid",
            "subject",
            "owner",
            {"regardingobjectid": ("contact", "lead", "account"), "ownerid": ("systemuser",)},
        ),
        _entity(
            schema.interactionforemail,
            "interactionforemails",
            "interactionforemailid",
            None,
            "owned-email",
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
        _entity(schema.systemuser, "systemusers", "systemuserid", "fullname", "self"),
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
}
BY_ENTITY_SET: dict[str, EntityInfo] = {e.entity_set: e for e in ENTITIES.values()}


def entity(name: str) -> EntityInfo | None:
    """The entity with this logical name, or None."""
    return ENTITIES.get(name)
