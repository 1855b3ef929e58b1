"""The panel's sign-in (issue 12): password hashes and server-side sessions.

A session cookie carries 32 random bytes; the store keeps only their sha256 (a copy of
the database signs no one in), the user, the session's CSRF token and two times. A
session ends at logout, after `idle` without a request, `lifetime` after sign-in, when
the user's password changes or when the user is disabled (`resolve` checks it on every
request, as the relay's `users.session_user` does for SMTP).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from ..addresses import normalise_address
from ..errors import InputError, NotFoundError
from .schema import panelsession, systemuser, utcnow
from .users import Row, by_id

# A session's last-seen time is written at most this often, not on every page.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    """A live session: whose, and the token its forms must carry."""

    user: Row
    csrf: str
    token_hash: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_hash(conn: Connection, address: str) -> tuple[uuid.UUID | None, str | None]:
    """(user id, stored hash) of the enabled user with this sign-in address; (None, None)
    for an unknown, disabled or malformed address, so the caller checks a dummy hash."""
    try:
        login = normalise_address(address)
    except InputError:
        return None, None
    found = conn.execute(
        select(systemuser.c.systemuserid, systemuser.c.passwordhash).where(
            systemuser.c.internalemailaddress == login, systemuser.c.isdisabled.is_(False)
        )
    ).first()
    return (found[0], found[1]) if found else (None, None)


def set_password_hash(conn: Connection, user_id: uuid.UUID, hashed: str | None) -> None:
    """Store a new hash (None: no password, no sign-in) and end the user's sessions."""
    done = conn.execute(
        update(systemuser)
        .where(systemuser.c.systemuserid == user_id)
        .values(passwordhash=hashed, modifiedon=utcnow())
    )
    if done.rowcount == 0:
        raise NotFoundError(f"systemuser With Id = {user_id} Does Not Exist")
    end_all(conn, user_id)


def begin(conn: Connection, user_id: uuid.UUID, now: datetime | None = None) -> tuple[str, str]:
    """A new session for `user_id`: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = now or utcnow()
    conn.execute(
        insert(panelsession).values(
            sessionhash=_digest(token),
            systemuserid=user_id,
            csrftoken=csrf,
            createdon=at,
            lastseenon=at,
        )
    )
    return token, csrf


def resolve(
    conn: Connection,
    token: str,
    *,
    idle: timedelta,
    lifetime: timedelta,
    now: datetime | None = None,
) -> Session | None:
    """The live session a cookie names, its last-seen time moved on; None (and the row
    removed) when it has expired or its user is disabled or gone."""
    at = now or utcnow()
    key = _digest(token)
    found = conn.execute(select(panelsession).where(panelsession.c.sessionhash == key)).first()
    if found is None:
        return None
    user = by_id(conn, found.systemuserid)
    expired = at - found.lastseenon > idle or at - found.createdon > lifetime
    if expired or user is None or user["isdisabled"]:
        conn.execute(delete(panelsession).where(panelsession.c.sessionhash == key))
        return None
    if at - found.lastseenon >= TOUCH_EVERY:
        conn.execute(
            update(panelsession).where(panelsession.c.sessionhash == key).values(lastseenon=at)
        )
    return Session(user, found.csrftoken, key)


def end(conn: Connection, token: str) -> None:
    conn.execute(delete(panelsession).where(panelsession.c.sessionhash == _digest(token)))


def end_all(conn: Connection, user_id: uuid.UUID) -> int:
    """End every session of a user (password changed, disabled, signed out everywhere)."""
    done = conn.execute(delete(panelsession).where(panelsession.c.systemuserid == user_id))
    return int(done.rowcount or 0)


def purge(
    conn: Connection, *, idle: timedelta, lifetime: timedelta, now: datetime | None = None
) -> int:
    """Remove sessions that can no longer be used; how many."""
    at = now or utcnow()
    done = conn.execute(
        delete(panelsession).where(
            (panelsession.c.lastseenon < at - idle) | (panelsession.c.createdon < at - lifetime)
        )
    )
    return int(done.rowcount or 0)
