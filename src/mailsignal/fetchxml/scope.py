"""What the compiler stages share: the caller's context and the aliases in scope.

`Bound` ties a FetchXML alias (the entity's name for the root, a link-entity's `alias`
or generated name) to its catalog entry and its SQL alias. SQL aliases are generated
(`t0`, `t1`, ...): user aliases never reach the SQL text, only the output column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from sqlalchemy import FromClause, collate, func
from sqlalchemy.sql.elements import ColumnElement

from ..errors import FetchXmlError, FetchXmlQueryError
from . import ast, codes
from .access import Caller, row_filter
from .catalog import AttributeInfo, Catalog, EntityInfo
from .xmlread import excerpt


@dataclass(frozen=True)
class Bound:
    """An entity instance in the query: the root or one link-entity."""

    alias: str
    entity: EntityInfo
    table: FromClause


@dataclass
class Context:
    """Per-compilation state: who asks, when, where (dialect), what exists (the catalog)
    and what is in scope."""

    caller: Caller
    catalog: Catalog
    now: datetime
    tz: ZoneInfo
    dialect: str
    source: str
    scope: dict[str, Bound] = field(default_factory=dict)
    counter: int = 0
    uses_sqlite_functions: bool = False

    def fail(self, message: str, code: str, pos: ast.Pos, element: str) -> NoReturn:
        raise FetchXmlQueryError(
            message,
            error_code=code,
            line=pos.line or None,
            column=pos.column or None,
            element=element,
            excerpt=excerpt(self.source, pos.line, pos.column) if pos.line else None,
        )

    def locate(self, exc: FetchXmlError, pos: ast.Pos, element: str) -> NoReturn:
        """Re-raise an error from a pure helper with the position of the element at fault."""
        if exc.line is not None:
            raise exc
        self.fail(exc.message, exc.error_code, pos, element)

    def bind(self, alias: str, entity: EntityInfo) -> Bound:
        """A fresh SQL alias for `entity`, registered under the FetchXML `alias`."""
        bound = Bound(alias, entity, entity.table.alias(f"t{self.counter}"))
        self.counter += 1
        self.scope[alias] = bound
        return bound

    def entity(self, name: str, pos: ast.Pos, element: str) -> EntityInfo:
        """The catalog entity `name`, or Dataverse's 0x80041102."""
        info = self.catalog.entity(name)
        if info is None:
            self.fail("The specified entity was not found.", codes.NO_ENTITY, pos, element)
        return info

    def rule(self, entity: EntityInfo, table: FromClause) -> ColumnElement[bool] | None:
        """The row-level rule (access.py) for `table`, an alias of `entity`."""
        return row_filter(entity, table, self.caller, self.catalog)

    def resolve(self, alias: str, pos: ast.Pos, element: str, code: str) -> Bound:
        bound = self.scope.get(alias)
        if bound is None:
            self.fail(
                f"The alias '{alias}' does not name a joined link-entity.", code, pos, element
            )
        return bound

    def column(
        self, bound: Bound, name: str, pos: ast.Pos, element: str
    ) -> tuple[ColumnElement[Any], AttributeInfo]:
        """The SQL column and catalog info of `bound.name`, or Dataverse's 0x80041103."""
        info = bound.entity.attribute(name)
        if info is None:
            self.fail(
                f"'{bound.entity.name}' entity doesn't contain attribute with Name = '{name}' "
                "and NameMapping = 'Logical'.",
                codes.NO_ATTRIBUTE,
                pos,
                element,
            )
        return bound.table.c[name], info

    def fold(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """Case-folded string for equality: lower() (ASCII-only on SQLite)."""
        return func.lower(expr)

    def sort_key(self, expr: ColumnElement[Any], kind: str) -> ColumnElement[Any]:
        """The expression strings sort and compare by: folded, and byte order on PostgreSQL
        (COLLATE "C") so both backends agree whatever the database's locale."""
        if kind != "string":
            return expr
        folded = func.lower(expr)
        return collate(folded, "C") if self.dialect == "postgresql" else folded
