"""Users and access: the organization switch, reps and admins, their API keys.

Functions take a SQLAlchemy `Connection` so callers decide the transaction; they
return plain dicts (`RowMapping` copies) so nothing above leaks SQLAlchemy rows.

A key is "msk_<prefix>_<secret>". The prefix finds the row; the SHA-256 of the whole key
is compared in constant time. A fast hash is right here: the secret has 256 bits of
entropy, so there is nothing for a slow hash to protect against.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..addresses import normalise_address
from ..errors import AuthError, InputError, NotFoundError
from ..model import new_id
from .schema import apikey, organization, systemuser, usersettings, utcnow

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


def add(
    conn: Connection,
    fullname: str,
    address: str,
    *,
    role: str = "rep",
    opt_in: bool = False,
    timezone: str = "UTC",
) -> uuid.UUID:
    """A new rep or admin (systemuser + usersettings); returns the user's id."""
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


def _with_settings() -> Any:
    return select(
        systemuser, usersettings.c.emailengagementoptin, usersettings.c.timezonename
    ).join(usersettings, usersettings.c.systemuserid == systemuser.c.systemuserid)


def by_address(conn: Connection, address: str) -> Row | None:
    """The user with this address (any case), with opt-in and time zone, or None."""
    return _one(
        conn,
        _with_settings().where(systemuser.c.internalemailaddress == normalise_address(address)),
    )


def by_id(conn: Connection, user_id: uuid.UUID) -> Row | None:
    return _one(conn, _with_settings().where(systemuser.c.systemuserid == user_id))


def list_all(conn: Connection) -> list[Row]:
    rows = conn.execute(_with_settings().order_by(systemuser.c.internalemailaddress)).mappings()
    return [dict(r) for r in rows]


def set_optin(conn: Connection, user_id: uuid.UUID, opt_in: bool) -> None:
    result = conn.execute(
        update(usersettings)
        .where(usersettings.c.systemuserid == user_id)
        .values(emailengagementoptin=opt_in, modifiedon=utcnow())
    )
    if result.rowcount == 0:
        raise NotFoundError(f"usersettings With Id = {user_id} Does Not Exist")


def access(conn: Connection, user_id: uuid.UUID) -> tuple[str, str] | None:
    """(accessrole, time zone name) of a user, or None: what a query runs as."""
    row = conn.execute(
        select(systemuser.c.accessrole, usersettings.c.timezonename)
        .select_from(systemuser.outerjoin(usersettings))
        .where(systemuser.c.systemuserid == user_id)
    ).first()
    if row is None:
        return None
    return str(row.accessrole), str(row.timezonename or "UTC")


# --- API keys --------------------------------------------------------------------------


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(conn: Connection, user_id: uuid.UUID, name: str = "") -> str:
    """A new key for the user; returned once, only its hash is stored."""
    prefix = secrets.token_hex(6)
    key = f"msk_{prefix}_{secrets.token_urlsafe(32)}"
    conn.execute(
        insert(apikey).values(systemuserid=user_id, name=name, prefix=prefix, keyhash=_hash(key))
    )
    return key


def user_for_api_key(conn: Connection, key: str) -> Row:
    """The enabled user this key belongs to (and its last use stamped), else AuthError."""
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
    user = by_id(conn, row["systemuserid"])
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
