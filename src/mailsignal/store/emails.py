"""Emails and their deliveries: what was sent, to whom, and whether it was tracked.

An `email` row is one message (Dataverse's email activity, with the raw and labelled
counters); an `emaildelivery` row is one recipient's copy (its id is in every tracking
token). Recording a new email with its links, attachments and deliveries is
`register` (outgoing's one write); the rest are the reads the edges and services need.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update

from ..engagement import EMAIL_COUNTERS
from ..errors import NotFoundError
from .bulk import executemany
from .schema import contact, email, emaildelivery, trackedlink

Row = dict[str, Any]


def get(conn: Connection, activity_id: uuid.UUID, *, viewer: Row | None = None) -> Row:
    """One email; a rep (a viewer who is not admin) sees only their own."""
    stmt = select(email).where(email.c.activityid == activity_id)
    if viewer is not None and viewer["accessrole"] != "admin":
        stmt = stmt.where(email.c.ownerid == viewer["systemuserid"])
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFoundError(f"email With Id = {activity_id} Does Not Exist")
    return dict(row)


def exists(conn: Connection, activity_id: uuid.UUID) -> bool:
    found = conn.execute(select(email.c.activityid).where(email.c.activityid == activity_id))
    return found.first() is not None


def any_exist(conn: Connection) -> bool:
    return conn.execute(select(email.c.activityid).limit(1)).first() is not None


def list_recent(
    conn: Connection, *, viewer: Row | None = None, limit: int = 50, since: datetime | None = None
) -> list[Row]:
    """The most recently recorded emails, newest first (a rep's own only)."""
    stmt = select(email).order_by(email.c.createdon.desc()).limit(limit)
    if viewer is not None and viewer["accessrole"] != "admin":
        stmt = stmt.where(email.c.ownerid == viewer["systemuserid"])
    if since is not None:
        stmt = stmt.where(email.c.senton >= since)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def deliveries(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    rows = conn.execute(
        select(emaildelivery)
        .where(emaildelivery.c.emailactivityid == activity_id)
        .order_by(emaildelivery.c.deliveryid)
    ).mappings()
    return [dict(r) for r in rows]


def by_message_id(conn: Connection, message_id: str, sender: str) -> uuid.UUID | None:
    """The email this sender recorded with this Message-ID (imports are idempotent by it)."""
    return conn.execute(
        select(email.c.activityid).where(email.c.messageid == message_id, email.c.sender == sender)
    ).scalar()


def link_ids(conn: Connection, activity_id: uuid.UUID) -> dict[int, int]:
    """{position in the message: link id} of an email's tracked links."""
    rows = conn.execute(
        select(trackedlink.c.position, trackedlink.c.linkid).where(
            trackedlink.c.emailactivityid == activity_id
        )
    )
    return {int(position): int(link) for position, link in rows}


_TRACKING_IDS = select(email.c.activityid, email.c.emailtrackingid).where(
    email.c.activityid.in_(bindparam("ids", expanding=True))
)


def tracking_ids(conn: Connection, activity_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """{activity id: emailtrackingid}, the id the relay writes into X-MailSignal-Id."""
    ids = list(activity_ids)
    if not ids:
        return {}
    return {activity: tracking for activity, tracking in conn.execute(_TRACKING_IDS, {"ids": ids})}


def mark_failed(conn: Connection, delivery_ids: Iterable[int]) -> None:
    """Deliveries the smarthost refused for good, or a bounce named (idempotent)."""
    ids = sorted(set(delivery_ids))
    if ids:
        conn.execute(
            update(emaildelivery).where(emaildelivery.c.deliveryid.in_(ids)).values(status="failed")
        )


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(email)).scalar_one())


# Written in one executemany, not one compiled UPDATE per email: ingest recounts thousands
# of emails per batch.
_COUNTED = (*EMAIL_COUNTERS, "lastopenedtime", "lasthumanopenedtime", "engagementverdict")
_WRITE_COUNTERS = (
    update(email)
    .where(email.c.activityid == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in (*_COUNTED, "noiseflag", "modifiedon")})
)


def write_counters(
    conn: Connection, values: dict[uuid.UUID, dict[str, Any]], now: datetime
) -> None:
    """Set emails' counters, verdict and noise flag (`EmailTally.columns` of each)."""
    rows = [
        {"b_id": activity_id, "b_modifiedon": now, **{f"b_{k}": v for k, v in columns.items()}}
        for activity_id, columns in values.items()
    ]
    executemany(conn, _WRITE_COUNTERS, rows)


_IN_CHUNK = 500


def counters(
    conn: Connection, activity_ids: Iterable[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, dict[str, Any]]:
    """The stored counters, verdict and last-open times of these emails. `lock` takes the
    rows for the transaction (PostgreSQL `FOR UPDATE`, in id order) so that concurrent
    writers add their counts one after the other."""
    wanted = sorted(set(activity_ids), key=lambda i: i.bytes)
    columns = [email.c[name] for name in _COUNTED]
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for i in range(0, len(wanted), _IN_CHUNK):
        stmt = (
            select(email.c.activityid, *columns)
            .where(email.c.activityid.in_(wanted[i : i + _IN_CHUNK]))
            .order_by(email.c.activityid)
        )
        if lock:
            stmt = stmt.with_for_update()
        for row in conn.execute(stmt).mappings():
            values = dict(row)
            found[values.pop("activityid")] = values
    return found


def parties_of(conn: Connection, activity_ids: Iterable[uuid.UUID]) -> set[tuple[str, uuid.UUID]]:
    """The contacts, leads and accounts these emails went to, and those contacts' accounts."""
    ids = sorted(set(activity_ids), key=lambda i: i.bytes)
    d, c = emaildelivery, contact
    found: set[tuple[str, uuid.UUID]] = set()
    for i in range(0, len(ids), _IN_CHUNK):
        rows = conn.execute(
            select(d.c.recipientobjecttypecode, d.c.recipientobjectid, c.c.parentcustomerid)
            .select_from(
                d.outerjoin(
                    c,
                    and_(
                        d.c.recipientobjecttypecode == "contact",
                        c.c.contactid == d.c.recipientobjectid,
                    ),
                )
            )
            .where(d.c.emailactivityid.in_(ids[i : i + _IN_CHUNK]))
            .where(d.c.recipientobjectid.is_not(None))
        )
        for kind, party, parent in rows:
            found.add((kind, party))
            if parent is not None:
                found.add(("account", parent))
    return found


_SENT = (email.c.activityid, email.c.messageid, email.c.sender, email.c.emailtrackingid)


def by_message_ids(conn: Connection, message_ids: Iterable[str]) -> list[Any]:
    """Sent emails (activityid, messageid, sender, emailtrackingid) whose Message-ID is
    one of these, with or without angle brackets, in the case given or lower case."""
    # Exact spellings keep the messageid index usable; folding case in SQL would not.
    names: set[str] = set()
    for ref in message_ids:
        names |= {ref, f"<{ref}>", ref.lower(), f"<{ref.lower()}>"}
    wanted = sorted(names)
    found: list[Any] = []
    for i in range(0, len(wanted), _IN_CHUNK):
        found += conn.execute(
            select(*_SENT).where(email.c.messageid.in_(wanted[i : i + _IN_CHUNK]))
        ).all()
    return found


def by_tracking_ids(conn: Connection, tracking_ids: Iterable[uuid.UUID]) -> list[Any]:
    """Sent emails whose `emailtrackingid` (X-MailSignal-Id) is one of these."""
    wanted = sorted(set(tracking_ids), key=lambda i: i.bytes)
    found: list[Any] = []
    for i in range(0, len(wanted), _IN_CHUNK):
        found += conn.execute(
            select(*_SENT).where(email.c.emailtrackingid.in_(wanted[i : i + _IN_CHUNK]))
        ).all()
    return found


def recipients(conn: Connection, activity_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """{email: its deliveries (deliveryid, emailactivityid, emailaddress) by delivery id}."""
    wanted = sorted(set(activity_ids), key=lambda i: i.bytes)
    d = emaildelivery
    found: dict[uuid.UUID, list[Any]] = {}
    for i in range(0, len(wanted), _IN_CHUNK):
        for row in conn.execute(
            select(d.c.deliveryid, d.c.emailactivityid, d.c.emailaddress)
            .where(d.c.emailactivityid.in_(wanted[i : i + _IN_CHUNK]))
            .order_by(d.c.deliveryid)
        ):
            found.setdefault(row.emailactivityid, []).append(row)
    return found
