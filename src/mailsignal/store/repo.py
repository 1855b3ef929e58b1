"""Repositories: the few queries the edges need, on SQLite and PostgreSQL alike.

Functions take a SQLAlchemy `Connection` so callers decide the transaction; they
return plain dicts (`RowMapping` copies) so nothing above leaks SQLAlchemy rows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import AuthError, InputError, NotFoundError
from ..model import new_id
from .schema import (
    account,
    apikey,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    lead,
    organization,
    systemuser,
    usersettings,
    utcnow,
)

Row = dict[str, Any]
ROLES = ("rep", "admin")


def _one(conn: Connection, stmt: Any) -> Row | None:
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


# --- organization ----------------------------------------------------------------------


def get_org(conn: Connection) -> Row:
    """The single organization row, created on first use."""
    row = _one(conn, select(organization).limit(1))
    if row is None:
        conn.execute(insert(organization).values(name="MailSignal"))
        row = _one(conn, select(organization).limit(1))
    assert row is not None
    return row


def set_org(conn: Connection, *, monitoring: bool | None = None, name: str | None = None) -> Row:
    org = get_org(conn)
    values: Row = {}
    if monitoring is not None:
        values["isemailmonitoringallowed"] = monitoring
    if name is not None:
        values["name"] = name
    if values:
        conn.execute(
            update(organization)
            .where(organization.c.organizationid == org["organizationid"])
            .values(**values, modifiedon=utcnow())
        )
    return get_org(conn)


# --- users -----------------------------------------------------------------------------


def add_user(
    conn: Connection,
    fullname: str,
    address: str,
    *,
    role: str = "rep",
    opt_in: bool = False,
    timezone: str = "UTC",
) -> uuid.UUID:
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    address = normalise_address(address)
    user_id = new_id()
    try:
        conn.execute(
            insert(systemuser).values(
                systemuserid=user_id,
                fullname=fullname,
                internalemailaddress=address,
                accessrole=role,
            )
        )
    except IntegrityError as exc:
        raise InputError(f"a user with address {address} already exists") from exc
    conn.execute(
        insert(usersettings).values(
            systemuserid=user_id, emailengagementoptin=opt_in, timezonename=timezone
        )
    )
    return user_id


def user_by_address(conn: Connection, address: str) -> Row | None:
    return _one(
        conn,
        select(systemuser, usersettings.c.emailengagementoptin, usersettings.c.timezonename)
        .join(usersettings, usersettings.c.systemuserid == systemuser.c.systemuserid)
        .where(systemuser.c.internalemailaddress == normalise_address(address)),
    )


def user_by_id(conn: Connection, user_id: uuid.UUID) -> Row | None:
    return _one(
        conn,
        select(systemuser, usersettings.c.emailengagementoptin, usersettings.c.timezonename)
        .join(usersettings, usersettings.c.systemuserid == systemuser.c.systemuserid)
        .where(systemuser.c.systemuserid == user_id),
    )


def list_users(conn: Connection) -> list[Row]:
    rows = conn.execute(
        select(systemuser, usersettings.c.emailengagementoptin)
        .join(usersettings, usersettings.c.systemuserid == systemuser.c.systemuserid)
        .order_by(systemuser.c.internalemailaddress)
    ).mappings()
    return [dict(r) for r in rows]


def set_optin(conn: Connection, user_id: uuid.UUID, opt_in: bool) -> None:
    result = conn.execute(
        update(usersettings)
        .where(usersettings.c.systemuserid == user_id)
        .values(emailengagementoptin=opt_in, modifiedon=utcnow())
    )
    if result.rowcount == 0:
        raise NotFoundError(f"usersettings With Id = {user_id} Does Not Exist")


def normalise_address(address: str) -> str:
    address = address.strip()
    if address.count("@") != 1 or not all(address.split("@")) or any(c.isspace() for c in address):
        raise InputError(f"not an email address: {address!r}")
    local, domain = address.split("@")
    return f"{local}@{domain.lower()}".lower()


# --- parties (contact, lead, account) ----------------------------------------------------

PARTIES = (
    ("contact", contact, "contactid"),
    ("lead", lead, "leadid"),
    ("account", account, "accountid"),
)


def find_party(conn: Connection, address: str) -> tuple[str, uuid.UUID, bool] | None:
    """The contact, else lead, else account with this address: (type, id, followemail)."""
    address = address.lower()
    for kind, table, key in PARTIES:
        row = conn.execute(
            select(table.c[key], table.c.followemail)
            .where(func.lower(table.c.emailaddress1) == address)
            .limit(1)
        ).first()
        if row is not None:
            return kind, row[0], bool(row[1])
    return None


def add_party(
    conn: Connection,
    kind: str,
    name: str,
    address: str | None,
    *,
    follow: bool = True,
    parent: uuid.UUID | None = None,
) -> uuid.UUID:
    for party_kind, table, key in PARTIES:
        if party_kind == kind:
            party_id = new_id()
            values: Row = {
                key: party_id,
                "emailaddress1": address and normalise_address(address),
                "followemail": follow,
            }
            values["name" if kind == "account" else "fullname"] = name
            if parent is not None and kind == "contact":
                values["parentcustomerid"] = parent
            conn.execute(insert(table).values(**values))
            return party_id
    raise InputError(f"unknown party type {kind!r}")


# --- emails and events -----------------------------------------------------------------


def get_email(conn: Connection, activity_id: uuid.UUID, *, viewer: Row | None = None) -> Row:
    stmt = select(email).where(email.c.activityid == activity_id)
    if viewer is not None and viewer["accessrole"] != "admin":
        stmt = stmt.where(email.c.ownerid == viewer["systemuserid"])
    row = _one(conn, stmt)
    if row is None:
        raise NotFoundError(f"email With Id = {activity_id} Does Not Exist")
    return row


def deliveries(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    rows = conn.execute(
        select(emaildelivery)
        .where(emaildelivery.c.emailactivityid == activity_id)
        .order_by(emaildelivery.c.deliveryid)
    ).mappings()
    return [dict(r) for r in rows]


def list_events(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    rows = conn.execute(
        select(interactionforemail)
        .where(interactionforemail.c.emailactivityid == activity_id)
        .order_by(interactionforemail.c.emailinteractiontime, interactionforemail.c.hitid)
    ).mappings()
    return [dict(r) for r in rows]


def list_emails(
    conn: Connection, *, viewer: Row | None = None, limit: int = 50, since: datetime | None = None
) -> list[Row]:
    stmt = select(email).order_by(email.c.createdon.desc()).limit(limit)
    if viewer is not None and viewer["accessrole"] != "admin":
        stmt = stmt.where(email.c.ownerid == viewer["systemuserid"])
    if since is not None:
        stmt = stmt.where(email.c.senton >= since)
    return [dict(r) for r in conn.execute(stmt).mappings()]


# --- API keys --------------------------------------------------------------------------
# A key is "msk_<prefix>_<secret>". The prefix finds the row; the SHA-256 of the whole key
# is compared in constant time. A fast hash is right here: the secret has 256 bits of
# entropy, so there is nothing for a slow hash to protect against.


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(conn: Connection, user_id: uuid.UUID, name: str = "") -> str:
    prefix = secrets.token_hex(6)
    key = f"msk_{prefix}_{secrets.token_urlsafe(32)}"
    conn.execute(
        insert(apikey).values(systemuserid=user_id, name=name, prefix=prefix, keyhash=_hash(key))
    )
    return key


def user_for_api_key(conn: Connection, key: str) -> Row:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "msk":
        raise AuthError("malformed API key")
    row = _one(conn, select(apikey).where(apikey.c.prefix == parts[1]))
    if (
        row is None
        or row["revokedon"] is not None
        or not hmac.compare_digest(row["keyhash"], _hash(key))
    ):
        raise AuthError("unknown or revoked API key")
    user = user_by_id(conn, row["systemuserid"])
    if user is None or user["isdisabled"]:
        raise AuthError("the key's user is disabled")
    conn.execute(
        update(apikey).where(apikey.c.apikeyid == row["apikeyid"]).values(lastusedon=utcnow())
    )
    return user


def revoke_api_keys(conn: Connection, prefixes: Iterable[str]) -> int:
    result = conn.execute(
        update(apikey).where(apikey.c.prefix.in_(list(prefixes))).values(revokedon=utcnow())
    )
    return result.rowcount
