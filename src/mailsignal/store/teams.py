"""Teams (Dataverse's `team` and `teammembership`) with a manager, the team's
`administratorid`: a manager reads their members' mail (fetchxml/access.py, issue 12)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import InputError, NotFoundError
from ..model import new_id
from .schema import systemuser, team, teammembership, utcnow


def managed_members(conn: Connection, manager_id: uuid.UUID) -> frozenset[uuid.UUID]:
    """Every member of every team `manager_id` manages (themself excluded)."""
    rows = conn.execute(
        select(teammembership.c.systemuserid)
        .join(team, team.c.teamid == teammembership.c.teamid)
        .where(team.c.administratorid == manager_id)
    ).scalars()
    return frozenset(rows) - {manager_id}


def add(conn: Connection, name: str, manager_id: uuid.UUID | None = None) -> uuid.UUID:
    """A new team; its name is unique (InputError otherwise)."""
    name = name.strip()
    if not name or len(name) > 160:
        raise InputError("a team needs a name of 1 to 160 characters")
    team_id = new_id()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(team).values(
                    teamid=team_id,
                    name=name,
                    administratorid=manager_id,
                    createdon=utcnow(),
                    modifiedon=utcnow(),
                )
            )
    except IntegrityError as exc:
        raise InputError(f"a team named {name!r} already exists") from exc
    return team_id


def by_name(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(select(team).where(team.c.name == name.strip())).mappings().first()
    if row is None:
        raise NotFoundError(f"no team named {name!r}")
    return dict(row)


def set_manager(conn: Connection, team_id: uuid.UUID, manager_id: uuid.UUID | None) -> None:
    conn.execute(
        update(team)
        .where(team.c.teamid == team_id)
        .values(administratorid=manager_id, modifiedon=utcnow())
    )


def add_member(conn: Connection, team_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Add a member; False when they already were one."""
    found = conn.execute(
        select(teammembership.c.teamid).where(
            teammembership.c.teamid == team_id, teammembership.c.systemuserid == user_id
        )
    ).first()
    if found:
        return False
    conn.execute(insert(teammembership).values(teamid=team_id, systemuserid=user_id))
    return True


def remove_member(conn: Connection, team_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    done = conn.execute(
        delete(teammembership).where(
            teammembership.c.teamid == team_id, teammembership.c.systemuserid == user_id
        )
    )
    return bool(done.rowcount)


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every team with its manager's address and its members' addresses."""
    manager = systemuser.alias("manager")
    teams = conn.execute(
        select(team.c.teamid, team.c.name, manager.c.internalemailaddress.label("manager"))
        .select_from(team.outerjoin(manager, manager.c.systemuserid == team.c.administratorid))
        .order_by(team.c.name)
    ).mappings()
    found = [dict(t) | {"members": []} for t in teams]
    by_id = {t["teamid"]: t for t in found}
    for team_id, address in conn.execute(
        select(teammembership.c.teamid, systemuser.c.internalemailaddress)
        .join(systemuser, systemuser.c.systemuserid == teammembership.c.systemuserid)
        .order_by(systemuser.c.internalemailaddress)
    ):
        if team_id in by_id:
            by_id[team_id]["members"].append(address)
    return found


def get(conn: Connection, team_id: uuid.UUID) -> dict[str, Any]:
    """A team by id (NotFoundError when there is none)."""
    row = conn.execute(select(team).where(team.c.teamid == team_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"team With Id = {team_id} Does Not Exist")
    return dict(row)
