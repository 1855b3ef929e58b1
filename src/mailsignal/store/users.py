"""Users and access: the organization switch, reps and admins, their API keys.

Functions take a SQLAlchemy `Connection` so callers decide the transaction; they
return plain dicts (`RowMapping` copies) so nothing above leaks SQLAlchemy rows.

A key is "msk_<prefix>_<secret>". The prefix finds the row; the SHA-256 of the whole key
is compared in constant time. A fast hash is right here: the secret has 256 bits of
entropy, so there is nothing for a slow hash to protect against.

A disabled user, or a revoked key, stops working at once: `authenticate` (every REST and
Web API request, every relay AUTH) and `session_user` (an SMTP session that logged in
before, at each MAIL FROM; the panel's web sessions when it comes) read both every time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..addresses import normalise_address
from ..errors import AuthError, InputError, NotFoundError
from ..model import new_id
from .schema import apikey, organization, systemuser, usersettings, utcnow

log = logging.getLogger(__name__)

Row = dict[str, Any]
ROLES = ("rep", "admin")
# `apikey.lastusedon` is written at most this often per key: a read request then writes
# nothing, mostly, and never waits for the write lock (see `authenticate`).
LAST_USED_EVERY = timedelta(minutes=5)


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
    """A user with their opt-in and zone; never the password hash (store/sessions.py
    reads that, and nothing returns it)."""
    return select(
        *[c for c in systemuser.c if c.name != "passwordhash"],
        usersettings.c.emailengagementoptin,
        usersettings.c.timezonename,
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


def key_prefix(key: str) -> str:
    """The public prefix of a key ("msk_<prefix>_<secret>"): what names it in lists,
    revocations and logs."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "msk" or not parts[1]:
        raise AuthError("malformed API key")
    return parts[1]


def authenticate(engine: Engine, key: str, *, now: datetime | None = None) -> Row:
    """The enabled user this key belongs to, else AuthError; the key's last use noted.

    Takes the engine, not a connection, because it decides its own transactions: the
    check only reads, and `lastusedon` is written afterwards, apart, and only when the
    stored one is older than `LAST_USED_EVERY`. That write is skipped when it cannot
    have the lock at once (SQLite's write lock held by ingest or the relay, the row
    locked on PostgreSQL): a read request never waits for, or fails on, a timestamp.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        row = _one(conn, select(apikey).where(apikey.c.prefix == key_prefix(key)))
        if (
            row is None
            or row["revokedon"] is not None
            or not hmac.compare_digest(row["keyhash"], _hash(key))
        ):
            raise AuthError("unknown or revoked API key")
        user = by_id(conn, row["systemuserid"])
        if user is None or user["isdisabled"]:
            raise AuthError("the key's user is disabled")
        conn.rollback()  # end the read before the write below takes its own turn
        if row["lastusedon"] is None or row["lastusedon"] < now - LAST_USED_EVERY:
            _note_use(conn, row["apikeyid"], now)
    return user


def _note_use(conn: Connection, apikeyid: uuid.UUID, now: datetime) -> None:
    """Stamp `lastusedon` in a short transaction of its own, unless the lock is taken."""
    due = or_(apikey.c.lastusedon.is_(None), apikey.c.lastusedon < now - LAST_USED_EVERY)
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # SQLite: do not wait for the write lock (the busy timeout), fail at once instead.
        waits = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        where: Any = (apikey.c.apikeyid == apikeyid) & due
    else:
        # PostgreSQL: leave the row alone while another transaction holds it.
        where = apikey.c.apikeyid.in_(
            select(apikey.c.apikeyid)
            .where(apikey.c.apikeyid == apikeyid, due)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    try:
        conn.execute(update(apikey).where(where).values(lastusedon=now))
        conn.commit()
    except OperationalError as exc:
        conn.rollback()
        if not _lock_taken(exc):
            raise
        log.debug("API key last use not stamped: the database is write-locked")
    finally:
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={waits}")
            conn.commit()


def _lock_taken(exc: OperationalError) -> bool:
    """SQLite's SQLITE_BUSY or SQLITE_LOCKED (any extended code)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (5, 6)


def list_api_keys(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    """A user's keys, oldest first: prefix, name, created, last used, revoked; never the
    hash (the key itself is not stored)."""
    rows = conn.execute(
        select(
            apikey.c.prefix,
            apikey.c.name,
            apikey.c.createdon,
            apikey.c.lastusedon,
            apikey.c.revokedon,
        )
        .where(apikey.c.systemuserid == user_id)
        .order_by(apikey.c.createdon, apikey.c.prefix)
    ).mappings()
    return [dict(r) for r in rows]


def api_key_owner(conn: Connection, prefix: str) -> uuid.UUID | None:
    """Whose key this prefix names, or None."""
    owner = conn.execute(
        select(apikey.c.systemuserid).where(apikey.c.prefix == prefix)
    ).scalar_one_or_none()
    return owner if isinstance(owner, uuid.UUID) else None


def revoke_api_keys(
    conn: Connection, prefixes: Iterable[str], *, user_id: uuid.UUID | None = None
) -> int:
    """Revoke the keys with these prefixes (only the user's own with `user_id`); returns
    how many were live. A revoked key keeps its row, so lists still show when it was
    made, last used and revoked."""
    stmt = update(apikey).where(apikey.c.prefix.in_(list(prefixes)), apikey.c.revokedon.is_(None))
    if user_id is not None:
        stmt = stmt.where(apikey.c.systemuserid == user_id)
    return conn.execute(stmt.values(revokedon=utcnow())).rowcount


def revoke_all_api_keys(conn: Connection, user_id: uuid.UUID) -> int:
    """Revoke every live key of a user; returns how many."""
    return conn.execute(
        update(apikey)
        .where(apikey.c.systemuserid == user_id, apikey.c.revokedon.is_(None))
        .values(revokedon=utcnow())
    ).rowcount


# --- disabling -------------------------------------------------------------------------


def set_disabled(
    conn: Connection, user_id: uuid.UUID, disabled: bool, *, by: uuid.UUID | None = None
) -> Row:
    """Disable (or enable) a user; returns the user. `by` is the admin acting, if any.

    Refused (InputError): disabling oneself, and disabling the last enabled admin, which
    would leave nobody able to enable anyone over the API. On SQLite run it in
    `store.db.writing` so two admins cannot race past the check; on PostgreSQL the
    enabled admins' rows are locked here until the transaction ends.
    """
    user = by_id(conn, user_id)
    if user is None:
        raise NotFoundError(f"systemuser With Id = {user_id} Does Not Exist")
    if disabled and not user["isdisabled"]:
        if by == user_id:
            raise InputError("you cannot disable yourself; ask another admin")
        if user["accessrole"] == "admin":
            admins = conn.execute(
                select(systemuser.c.systemuserid)
                .where(systemuser.c.accessrole == "admin", systemuser.c.isdisabled.is_(False))
                .with_for_update()
            ).all()
            if len(admins) <= 1:
                raise InputError(
                    f"{user['internalemailaddress']} is the last enabled admin: "
                    "add or enable another admin first"
                )
    if bool(user["isdisabled"]) != disabled:
        conn.execute(
            update(systemuser)
            .where(systemuser.c.systemuserid == user_id)
            .values(isdisabled=disabled, modifiedon=utcnow())
        )
        user["isdisabled"] = disabled
    return user


def session_user(conn: Connection, user_id: uuid.UUID, key: str | None = None) -> Row:
    """The user of a session that authenticated earlier, if they may still act: enabled,
    and with `key` (the prefix of the API key the session logged in with) that key not
    revoked; else AuthError. One indexed read, for every new transaction of a session:
    the relay calls it at MAIL FROM, the panel (issue 12) will on every request."""
    user = by_id(conn, user_id)
    if user is None or user["isdisabled"]:
        raise AuthError("the user is disabled")
    if key is not None:
        live = conn.execute(
            select(func.count())
            .select_from(apikey)
            .where(
                apikey.c.prefix == key,
                apikey.c.systemuserid == user_id,
                apikey.c.revokedon.is_(None),
            )
        ).scalar_one()
        if not live:
            raise AuthError("the API key was revoked")
    return user
