"""Single records of the Web API's entities: read one, create one, update its columns,
and the display names of looked-up records (docs/api.md, "Dataverse Web API").

Entities are the catalog's (`store.catalog.CATALOG`); which columns a caller may write
is the Web API's rule, checked before these run. Functions take a `Connection`, so the
caller decides the transaction, and return plain dicts. Values written are checked
against their columns (`columns.check`) and a lookup against the record it names, so
neither backend is left to refuse them with a database error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..errors import NotFoundError
from ..fetchxml import EntityInfo
from .catalog import CATALOG
from .columns import check
from .schema import utcnow


def get(conn: Connection, entity: EntityInfo, record: uuid.UUID) -> dict[str, Any] | None:
    """Every column of one record, or None when there is no such record."""
    table = entity.table
    row = (
        conn.execute(select(table).where(table.c[entity.primary_key] == record)).mappings().first()
    )
    return None if row is None else dict(row)


def create(
    conn: Connection, entity: EntityInfo, record: uuid.UUID, values: Mapping[str, Any]
) -> None:
    """Insert `record` with `values`; its primary name is null unless given."""
    values = _named(entity, values)
    _check(conn, entity, values)
    conn.execute(insert(entity.table).values({entity.primary_key: record, **values}))


def update_columns(
    conn: Connection, entity: EntityInfo, record: uuid.UUID, values: Mapping[str, Any]
) -> None:
    """Set `values` on `record`, stamping `modifiedon` where the entity has one."""
    table = entity.table
    stamp = {"modifiedon": utcnow()} if "modifiedon" in table.c else {}
    values = _named(entity, values)
    _check(conn, entity, values)
    conn.execute(
        update(table).where(table.c[entity.primary_key] == record).values(**values, **stamp)
    )


def _named(entity: EntityInfo, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values` with an empty or blank primary name as null, as Dataverse stores it."""
    name = entity.primary_name
    if name and isinstance(values.get(name), str) and not values[name].strip():
        return {**values, name: None}
    return values


def _check(conn: Connection, entity: EntityInfo, values: Mapping[str, Any]) -> None:
    """Values that fit their columns, and lookups that name a record that exists
    (`NotFoundError` in Dataverse's words otherwise: "account With Id = ... Does Not Exist")."""
    check(entity.table, dict(values))
    for name, value in values.items():
        if value is None:
            continue
        for key in entity.table.c[name].foreign_keys:
            target = key.column
            found = conn.execute(select(target).where(target == value)).first()
            if found is None:
                raise NotFoundError(f"{target.table.name} With Id = {value} Does Not Exist")


def display_names(conn: Connection, refs: Iterable[tuple[str, uuid.UUID]]) -> dict[uuid.UUID, str]:
    """The primary name of each (entity name, id) record that exists and has one."""
    by_entity: dict[str, list[uuid.UUID]] = {}
    for name, ref in refs:
        by_entity.setdefault(name, []).append(ref)
    names: dict[uuid.UUID, str] = {}
    for name, ids in by_entity.items():
        target = CATALOG.entity(name)
        if target is None or target.primary_name is None:
            continue
        table = target.table
        key = table.c[target.primary_key]
        for ref, display in conn.execute(
            select(key, table.c[target.primary_name]).where(key.in_(ids))
        ):
            if display is not None:
                names[ref] = display
    return names
