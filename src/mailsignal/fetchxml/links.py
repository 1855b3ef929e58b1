"""`<filter>` trees and `<link-entity>` joins (reference/dataverse.md §1).

Joins: `{link}.{from} = {parent}.{to}`. `inner` and `outer` join in the FROM clause; an
outer link's own filter and the row-level rule (access.py) go in its ON clause, so a
filtered-out or forbidden row comes back as an empty link, not as a missing parent.
`exists` and `in` are semi-joins (each parent once, no link columns). Inside a filter,
`any` = EXISTS(link rows matching the link's filter), `not any` = NOT EXISTS, `not all`
= `any`, and `all` = related rows exist AND none of them matches the filter. The
row-level rule is inside every subquery too.
"""

from __future__ import annotations

from sqlalchemy import FromClause, and_, exists, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from . import ast, codes
from .conditions import condition
from .scope import Bound, Context


class Linker:
    """Builds joins and filters; `aliases` maps each link-entity to its FetchXML alias."""

    def __init__(self, ctx: Context, aliases: dict[int, str]) -> None:
        self.ctx = ctx
        self.aliases = aliases
        self.joined: list[tuple[ast.LinkEntity, Bound]] = []  # in join order, for columns

    def filter(self, node: ast.Filter | None, owner: Bound) -> ColumnElement[bool] | None:
        """A filter as one boolean, or None when it holds nothing."""
        if node is None:
            return None
        parts: list[ColumnElement[bool]] = []
        for item in node.items:
            if isinstance(item, ast.Condition):
                parts.append(condition(item, owner, self.ctx))
            elif isinstance(item, ast.Filter):
                inner = self.filter(item, owner)
                if inner is not None:
                    parts.append(inner)
            else:
                parts.append(self._filter_link(item, owner))
        if not parts:
            return None
        return and_(*parts) if node.type == "and" else or_(*parts)

    def join(
        self,
        links: tuple[ast.LinkEntity, ...],
        parent: Bound,
        frm: FromClause,
        where: list[ColumnElement[bool]],
        *,
        selectable: bool,
    ) -> FromClause:
        """Join `links` (and their children) onto `frm`; semi-joins are added to `where`."""
        for link in links:
            if link.link_type in ("exists", "in"):
                where.append(self._semi(link, parent))
                continue
            if link.link_type not in ("inner", "outer"):
                self.ctx.fail(
                    f"link-type '{link.link_type}' is not supported by MailSignal.",
                    codes.INVALID_LINK_TYPE,
                    link.pos,
                    "link-entity",
                )
            bound, on = self._bind(link, parent)
            outer = link.link_type == "outer"
            own = self.filter(link.filter, bound)
            if own is not None:
                # In ON, as Dataverse does: on an outer link the filter decides which rows
                # join, not which parents stay.
                on.append(own)
            frm = frm.join(bound.table, and_(*on), isouter=outer)
            if selectable:
                self.joined.append((link, bound))
            frm = self.join(link.links, bound, frm, where, selectable=selectable)
        return frm

    def _bind(self, link: ast.LinkEntity, parent: Bound) -> tuple[Bound, list[ColumnElement[bool]]]:
        """Bind `link` in scope; return it with its join condition and row-level rule."""
        ctx = self.ctx
        info = ctx.entity(link.name, link.pos, "link-entity")
        bound = ctx.bind(self.aliases[id(link)], info)
        mine, mine_info = ctx.column(bound, link.from_attr, link.pos, "link-entity")
        theirs, theirs_info = ctx.column(parent, link.to_attr, link.pos, "link-entity")
        if mine_info.kind != theirs_info.kind or mine_info.kind == "json":
            ctx.fail(
                f"link-entity '{link.name}': '{link.from_attr}' ({mine_info.dotnet}) cannot "
                f"be joined to '{link.to_attr}' ({theirs_info.dotnet}).",
                codes.INVALID_ARGUMENT,
                link.pos,
                "link-entity",
            )
        on = [mine == theirs]
        rule = ctx.rule(info, bound.table)
        if rule is not None:
            on.append(rule)
        return bound, on

    def _subquery(
        self, link: ast.LinkEntity, parent: Bound, *, with_filter: bool = True
    ) -> tuple[Bound, FromClause, list[ColumnElement[bool]]]:
        """FROM and WHERE of the rows `link` relates to one parent row (correlated)."""
        before = dict(self.ctx.scope)
        bound, on = self._bind(link, parent)
        where = list(on)
        own = self.filter(link.filter, bound) if with_filter else None
        if own is not None:
            where.append(own)
        frm = self.join(link.links, bound, bound.table, where, selectable=False)
        # Aliases inside a subquery are not visible to the outer query.
        self.ctx.scope.clear()
        self.ctx.scope.update(before)
        return bound, frm, where

    def _semi(self, link: ast.LinkEntity, parent: Bound) -> ColumnElement[bool]:
        bound, frm, where = self._subquery(link, parent)
        if link.link_type == "exists":
            return exists(select(literal(1)).select_from(frm).where(*where))
        # `in`: the same rows, written as parent.to IN (SELECT link.from ...); the join
        # condition stays in `where`, which keeps it correct when the filter correlates.
        target = parent.table.c[link.to_attr]
        return target.in_(select(bound.table.c[link.from_attr]).select_from(frm).where(*where))

    def _filter_link(self, link: ast.LinkEntity, parent: Bound) -> ColumnElement[bool]:
        _, frm, where = self._subquery(link, parent)
        matching = exists(select(literal(1)).select_from(frm).where(*where))
        if link.link_type in ("any", "not all"):
            return matching
        if link.link_type == "not any":
            return ~matching
        _, frm_all, where_all = self._subquery(link, parent, with_filter=False)
        related = exists(select(literal(1)).select_from(frm_all).where(*where_all))
        return and_(related, ~matching)  # "all", as dataverse.md §1 defines it


def assign_aliases(fetch: ast.Fetch, ctx: Context) -> dict[int, str]:
    """Every link-entity's alias: its own, or `{name}{n}` for the n-th link in document
    order (Dataverse's `account1`); duplicates are 0x80041130."""
    found: list[ast.LinkEntity] = []

    def visit_filter(node: ast.Filter | None) -> None:
        for item in node.items if node else ():
            if isinstance(item, ast.Filter):
                visit_filter(item)
            elif isinstance(item, ast.LinkEntity):
                visit(item)

    def visit(link: ast.LinkEntity) -> None:
        found.append(link)
        visit_filter(link.filter)
        for child in link.links:
            visit(child)

    visit_filter(fetch.entity.filter)
    for link in fetch.entity.links:
        visit(link)
    found.sort(key=lambda link: (link.pos.line, link.pos.column))
    taken = {link.alias for link in found if link.alias} | {fetch.entity.name}
    aliases: dict[int, str] = {}
    seen: set[str] = {fetch.entity.name}
    for n, link in enumerate(found, start=1):
        alias = link.alias
        if alias is None:
            alias = f"{link.name}{n}"
            while alias in taken:
                alias += "_"
            taken.add(alias)
        if alias in seen:
            ctx.fail(
                "FetchXML should have unique aliases.",
                codes.DUPLICATE_ALIAS,
                link.pos,
                "link-entity",
            )
        seen.add(alias)
        aliases[id(link)] = alias
    return aliases
