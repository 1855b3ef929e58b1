"""The logical model FetchXML sees: entities, their attributes and attribute types.

The compiler is handed a `Catalog` and knows nothing else about the database: which
entities exist, their tables (SQLAlchemy `Table`s it builds expressions over), entity
set names (reference/dataverse.md §4), primary keys and names, lookup targets, who may
read which rows (`access.py`) and each attribute's kind. `store/catalog.py` builds the
one the application uses from `store.schema`; a test may build its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Table

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
    """One logical entity, its table and its attributes (`columns`, in table order)."""

    name: str
    table: Table
    entity_set: str
    primary_key: str
    primary_name: str | None
    owner: Owner
    columns: Mapping[str, AttributeInfo]
    lookups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names in table order (what `<all-attributes/>` returns)."""
        return tuple(self.columns)

    def attribute(self, name: str) -> AttributeInfo | None:
        return self.columns.get(name)


class Catalog:
    """The entities a query may name, by logical name and by entity set name."""

    def __init__(self, entities: Iterable[EntityInfo]) -> None:
        self.entities: Mapping[str, EntityInfo] = {e.name: e for e in entities}
        self.entity_sets: Mapping[str, EntityInfo] = {
            e.entity_set: e for e in self.entities.values()
        }

    def entity(self, name: str) -> EntityInfo | None:
        """The entity with this logical name (`email`), or None."""
        return self.entities.get(name)

    def entity_set(self, name: str) -> EntityInfo | None:
        """The entity with this entity set name (`emails`), or None."""
        return self.entity_sets.get(name)
