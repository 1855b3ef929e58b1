"""Who runs a query, and the row-level rule the compiler adds for them (issue 5).

The rule, applied to every table the query touches (the fetched entity, each joined
or semi-joined link-entity, and each any/all subquery), so no link can reach around it:

| entity                                        | a rep (non-admin) reads            |
|-----------------------------------------------|------------------------------------|
| email                                         | rows whose `ownerid` is the rep    |
|                                               | or a member of a team they manage  |
| interactionforemail                           | rows whose email they may read     |
| systemuser, usersettings                      | the rep's own row                  |
| contact, lead, account, organization          | every row (shared sales data)      |

An admin reads every row. A manager (the administrator of a `team`, issue 12) reads the
mail of the team's members as their own; `store.fetch.load_caller` fills `team`. The
panel's own queries (store/panel*.py) take their email rule from `row_filter` too, so
there is one statement of who reads what.

On an outer join the rule sits in the ON clause, so a row the caller may not see comes
back as an empty (null) link, never as data. The email table an interaction's rule reads
is the catalog's `email` entity, like every other table here. `store.fetch.load_caller`
makes the `Caller` of a stored user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import FromClause, select
from sqlalchemy.sql.elements import ColumnElement

from .catalog import Catalog, EntityInfo


@dataclass(frozen=True)
class Caller:
    """The user a query runs for. `time_zone` is an IANA name (usersettings.timezonename)."""

    user_id: uuid.UUID
    is_admin: bool
    time_zone: str = "UTC"
    team: frozenset[uuid.UUID] = frozenset()  # members of the teams this user manages

    @property
    def owners(self) -> frozenset[uuid.UUID]:
        """Whose mail a non-admin caller reads: their own and their teams' members'."""
        return self.team | {self.user_id}


def row_filter(
    entity: EntityInfo, table: FromClause, caller: Caller, catalog: Catalog
) -> ColumnElement[bool] | None:
    """The predicate limiting `table` (an alias of `entity`) to rows `caller` may read."""
    if caller.is_admin or entity.owner == "everyone":
        return None
    if entity.owner == "owner":
        return _owned(table.c.ownerid, caller)
    if entity.owner == "self":
        return table.c.systemuserid == caller.user_id
    email = catalog.entity("email")
    if email is None:
        raise ValueError(f"{entity.name} is 'owned-email' but the catalog has no email entity")
    mail = email.table
    owned = select(mail.c[email.primary_key]).where(_owned(mail.c.ownerid, caller))
    return table.c.emailactivityid.in_(owned)


def _owned(owner: ColumnElement[uuid.UUID], caller: Caller) -> ColumnElement[bool]:
    if not caller.team:
        return owner == caller.user_id
    return owner.in_(sorted(caller.owners))
