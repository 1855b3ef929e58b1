"""Roles: making a user a rep or an admin (issue 13), never leaving the organization
without an enabled admin, audited ("user.role") when an actor is given."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, update

from ..errors import InputError, NotFoundError
from . import audit
from .schema import systemuser, utcnow
from .users import ROLES, Row, by_id, enabled_admins


def set_role(
    conn: Connection,
    user_id: uuid.UUID,
    role: str,
    *,
    by: uuid.UUID | None = None,
    actor: str | None = None,
) -> Row:
    """Make a user a rep or an admin; returns the user. Refused: demoting oneself, and
    the last enabled admin (nobody could manage users over the API or the panel). Run it
    in `store.db.writing` on SQLite; on PostgreSQL the admins' rows are locked here."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    user = by_id(conn, user_id)
    if user is None:
        raise NotFoundError(f"systemuser With Id = {user_id} Does Not Exist")
    if user["accessrole"] == role:
        return user
    if user["accessrole"] == "admin":
        if by == user_id:
            raise InputError("you cannot take your own admin role; ask another admin")
        if not user["isdisabled"] and len(enabled_admins(conn)) <= 1:
            raise InputError(
                f"{user['internalemailaddress']} is the last enabled admin: "
                "add or enable another admin first"
            )
    conn.execute(
        update(systemuser)
        .where(systemuser.c.systemuserid == user_id)
        .values(accessrole=role, modifiedon=utcnow())
    )
    if actor is not None:
        audit.record(
            conn,
            "user.role",
            actor=actor,
            subject=str(user_id),
            details={"from": user["accessrole"], "to": role},
        )
    user["accessrole"] = role
    return user
