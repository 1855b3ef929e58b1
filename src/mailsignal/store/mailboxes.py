"""Reps' IMAP mailboxes: where to log in (the secret sealed), and how far each folder is read.

The cursor (`mailbox.syncstate`) is `{folder: {"uidvalidity": int, "lastuid": int}}`:
IMAP promises UIDs only grow while UIDVALIDITY stays the same, so every message at or
below `lastuid` was fully processed and is never fetched again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..errors import NotFoundError
from .schema import mailbox, systemuser, utcnow

Row = dict[str, Any]


def get(conn: Connection, user_id: uuid.UUID) -> Row | None:
    """The mailbox row of a rep (the secret still sealed), or None."""
    row = conn.execute(select(mailbox).where(mailbox.c.systemuserid == user_id)).mappings().first()
    return dict(row) if row else None


def save(conn: Connection, user_id: uuid.UUID, values: Row) -> None:
    """Create or change a rep's mailbox row with these column values."""
    exists = conn.execute(
        select(mailbox.c.systemuserid).where(mailbox.c.systemuserid == user_id)
    ).first()
    if exists is None:
        conn.execute(insert(mailbox).values(systemuserid=user_id, **values))
    else:
        conn.execute(
            update(mailbox)
            .where(mailbox.c.systemuserid == user_id)
            .values(modifiedon=utcnow(), **values)
        )


def show(conn: Connection, user_id: uuid.UUID) -> Row:
    """The mailbox row with the rep's address, the secret replaced by whether it is set."""
    row = (
        conn.execute(
            select(mailbox, systemuser.c.internalemailaddress.label("address"))
            .join(systemuser, systemuser.c.systemuserid == mailbox.c.systemuserid)
            .where(mailbox.c.systemuserid == user_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("no mailbox is set for this user: use `mailsignal mailbox set`")
    out = dict(row)
    out["secret"] = "set (encrypted)" if out["secret"] else "not set"
    return out


def owners(conn: Connection, address: str | None = None) -> list[uuid.UUID]:
    """The reps with a mailbox (or the one with this normalised address), by address."""
    stmt = select(mailbox.c.systemuserid).join(
        systemuser, systemuser.c.systemuserid == mailbox.c.systemuserid
    )
    if address is not None:
        stmt = stmt.where(systemuser.c.internalemailaddress == address)
    return list(conn.execute(stmt.order_by(systemuser.c.internalemailaddress)).scalars())


def cursor(conn: Connection, user_id: uuid.UUID) -> dict[str, dict[str, int]]:
    row = conn.execute(
        select(mailbox.c.syncstate).where(mailbox.c.systemuserid == user_id)
    ).scalar()
    return dict(row or {})


def advance(
    conn: Connection, user_id: uuid.UUID, folder: str, uidvalidity: int, lastuid: int
) -> None:
    """Record that every message up to `lastuid` is processed, in the caller's transaction
    (the same one that stored those messages' events)."""
    row = conn.execute(
        select(mailbox.c.syncstate).where(mailbox.c.systemuserid == user_id).with_for_update()
    ).scalar()
    state = dict(row or {})
    old = state.get(folder) or {}
    if old.get("uidvalidity") == uidvalidity:  # a concurrent run may already be further on
        lastuid = max(lastuid, int(old.get("lastuid", 0)))
    state[folder] = {"uidvalidity": uidvalidity, "lastuid": lastuid}
    conn.execute(update(mailbox).where(mailbox.c.systemuserid == user_id).values(syncstate=state))


def finish(conn: Connection, user_id: uuid.UUID, error: str | None, when: datetime) -> None:
    """Stamp the end of a run: the time, and the error that stopped it (None clears it)."""
    values: Row = {"lasterror": error}
    if error is None:
        values["lastsyncon"] = when
    conn.execute(update(mailbox).where(mailbox.c.systemuserid == user_id).values(**values))
