"""Users and access: the organization switch, reps and admins, their API keys.

Functions take a SQLAlchemy `Connection` so callers decide the transaction; they
return plain dicts (`RowMapping` copies) so nothing above leaks SQLAlchemy rows.

Keys are made and revoked in store/apikeys.py (re-exported here); their SHA-256 is
compared in constant time. A fast hash is right: a secret of 256 bits has nothing for a
slow one to protect.

A disabled user, or a revoked key, stops working at once: `authenticate` (every REST and
Web API request, every relay AUTH) and `session_user` (an SMTP session that logged in
before, at each MAIL FROM; the panel's web sessions when it comes) read both every time.

Every change here takes an optional `actor` (store/audit.py's actor strings): given, the
change is written to the audit trail in the same transaction; every CLI, REST, Web API
and panel path passes one. Without it nothing is audited (seeding, the demo, tests).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..addresses import normalise_address
from ..errors import AuthError, InputError, NotFoundError
from ..model import new_id
from . import audit
from .apikeys import api_key_owner as api_key_owner
from .apikeys import create_api_key as create_api_key
from .apikeys import key_hash
from .apikeys import key_prefix as key_prefix
from .apikeys import list_api_keys as list_api_keys
from .apikeys import revoke_all_api_keys as revoke_all_api_keys
from .apikeys import revoke_api_keys as revoke_api_keys
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


def set_org(
    conn: Connection,
    *,
    monitoring: bool | None = None,
    name: str | None = None,
    actor: str | None = None,
) -> Row:
    """Change the org switch or name; audited ("org.update", old and new values) when it
    changes something and an actor is given."""
    org = get_org(conn)
    values: Row = {}
    if monitoring is not None:
        values["isemailmonitoringallowed"] = monitoring
    if name is not None:
        values["name"] = name
    changed = {k: v for k, v in values.items() if org[k] != v}
    if values:
        conn.execute(
            update(organization)
            .where(organization.c.organizationid == org["organizationid"])
            .values(**values, modifiedon=utcnow())
        )
    if changed and actor is not None:
        audit.record(
            conn,
            "org.update",
            actor=actor,
            subject=str(org["organizationid"]),
            details={k: {"from": org[k], "to": v} for k, v in changed.items()},
        )
    return get_org(conn)


# --- users -----------------------------------------------------------------------------


def add(
    conn: Connection,
    fullname: str,
    address: str,
    *,
    role: str = "rep",
    opt_in: bool | None = None,
    default_opt_in: bool = False,
    timezone: str = "UTC",
    actor: str | None = None,
) -> uuid.UUID:
    """A new rep or admin (systemuser + usersettings); returns the user's id.

    Every path that creates users comes here. `opt_in` None takes `default_opt_in`,
    which callers fill from the `default_user_optin` setting (the opt-in rollout).
    """
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    address = normalise_address(address)
    chosen = opt_in is not None
    opt_in = opt_in if opt_in is not None else default_opt_in
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
    if actor is not None:
        audit.record(
            conn,
            "user.create",
            actor=actor,
            subject=str(user_id),
            details={
                "role": role,
                "opt_in": opt_in,
                "opt_in_from": "request" if chosen else "default_user_optin",
            },
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


def set_optin(
    conn: Connection, user_id: uuid.UUID, opt_in: bool, *, actor: str | None = None
) -> None:
    before = conn.execute(
        select(usersettings.c.emailengagementoptin).where(usersettings.c.systemuserid == user_id)
    ).scalar_one_or_none()
    if before is None:
        raise NotFoundError(f"usersettings With Id = {user_id} Does Not Exist")
    conn.execute(
        update(usersettings)
        .where(usersettings.c.systemuserid == user_id)
        .values(emailengagementoptin=opt_in, modifiedon=utcnow())
    )
    if actor is not None:
        audit_optin(conn, user_id, bool(before), opt_in, actor=actor)


def audit_optin(
    conn: Connection, user_id: uuid.UUID, before: bool, after: bool, *, actor: str
) -> None:
    """Audit an opt-in change ("user.optin"), when it is one: also for writes that do not
    come through `set_optin` (the Web API's PATCH of usersettings)."""
    if before != after:
        audit.record(
            conn, "user.optin", actor=actor, subject=str(user_id), details={"opt_in": after}
        )


def enabled_admins(conn: Connection) -> list[Any]:
    """The enabled admins' ids, their rows locked (PostgreSQL) until the transaction ends."""
    return list(
        conn.execute(
            select(systemuser.c.systemuserid)
            .where(systemuser.c.accessrole == "admin", systemuser.c.isdisabled.is_(False))
            .with_for_update()
        ).all()
    )


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
            or not hmac.compare_digest(row["keyhash"], key_hash(key))
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


# --- disabling -------------------------------------------------------------------------


def set_disabled(
    conn: Connection,
    user_id: uuid.UUID,
    disabled: bool,
    *,
    by: uuid.UUID | None = None,
    actor: str | None = None,
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
        if user["accessrole"] == "admin" and len(enabled_admins(conn)) <= 1:
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
        if actor is not None:
            action = "user.disable" if disabled else "user.enable"
            audit.record(conn, action, actor=actor, subject=str(user_id))
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
