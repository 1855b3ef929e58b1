"""Emails and their deliveries: what was sent, to whom, and whether it was tracked.

An `email` row is one message (Dataverse's email activity, with the raw and labelled
counters); an `emaildelivery` row is one recipient's copy (its id is in every tracking
token). Recording a new email with its links, attachments and deliveries is
store/sent.py's; here are the reads the edges and services need, and the counters the
pipeline adds to or rebuilds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, text, update

from ..engagement import EMAIL_COUNTERS, EmailTally
from ..errors import NotFoundError
from .bulk import executemany, in_ids, later
from .schema import contact, email, emaildelivery, trackedlink
from .types import UtcDateTime

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


_ADD_COUNTERS = (
    update(email)
    .where(email.c.activityid == bindparam("b_id"))
    .values(
        {name: email.c[name] + bindparam(f"b_{name}") for name in EMAIL_COUNTERS}
        | {
            "lastopenedtime": later(
                email.c.lastopenedtime, bindparam("b_lastopenedtime", type_=UtcDateTime)
            ),
            "lasthumanopenedtime": later(
                email.c.lasthumanopenedtime, bindparam("b_lasthumanopenedtime", type_=UtcDateTime)
            ),
            # Nothing here takes an engaged event away (tally.py rebuilds such emails).
            "engagementverdict": case(
                (or_(bindparam("b_engaged") > 0, email.c.engagementverdict == "human"), "human"),
                (
                    or_(bindparam("b_counted") > 0, email.c.engagementverdict == "machine"),
                    "machine",
                ),
                else_=email.c.engagementverdict,
            ),
            "noiseflag": email.c.opencount + bindparam("b_opencount") > bindparam("b_threshold"),
            "modifiedon": bindparam("b_now", type_=UtcDateTime),
        }
    )
)


# PostgreSQL: one UPDATE joined to the deltas as arrays (unnest), not one UPDATE per email:
# the per-statement cost was most of a batch's tally there. Same arithmetic as above; the
# text is put together from this module's own column names, every value is bound.
_LATER = (
    "CASE WHEN v.{v} IS NOT NULL AND (e.{c} IS NULL OR e.{c} < v.{v}) THEN v.{v} ELSE e.{c} END"
)
_PG_ADD_COUNTERS = text(
    "UPDATE email AS e SET "  # noqa: S608
    + ", ".join(f"{c} = e.{c} + v.{c}" for c in EMAIL_COUNTERS)
    + ", lastopenedtime = "
    + _LATER.format(v="lo", c="lastopenedtime")
    + ", lasthumanopenedtime = "
    + _LATER.format(v="lho", c="lasthumanopenedtime")
    + ", engagementverdict = CASE WHEN v.engaged > 0 OR e.engagementverdict = 'human' "
    "THEN 'human' WHEN v.counted > 0 OR e.engagementverdict = 'machine' THEN 'machine' "
    "ELSE e.engagementverdict END"
    ", noiseflag = e.opencount + v.opencount > :threshold"
    ", modifiedon = CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:ids AS uuid[]), "
    + ", ".join(f"CAST(:{c} AS integer[])" for c in EMAIL_COUNTERS)
    + ", CAST(:lo AS timestamptz[]), CAST(:lho AS timestamptz[]), "
    "CAST(:engaged AS integer[]), CAST(:counted AS integer[])) AS v(id, "
    + ", ".join(EMAIL_COUNTERS)
    + ", lo, lho, engaged, counted) WHERE e.activityid = v.id"
    # The same ids as a filter too: the planner reads only those rows of email (an index
    # lookup on a big table, a hashed filter on a small one), not all of them for a join.
    " AND e.activityid = ANY(CAST(:ids AS uuid[]))"
)


def add_counters(
    conn: Connection, deltas: dict[uuid.UUID, EmailTally], noise_threshold: int, now: datetime
) -> None:
    """Add to emails' counters what these tallies of new and revised events add (counts
    may be negative; last-open times only move later), in SQL, so no email is read first
    and concurrent writers add up. A tally must not take an engaged event away."""
    ids = sorted(deltas, key=lambda i: i.bytes)  # one lock order for every writer
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        tallies = [deltas[i] for i in ids]
        params: dict[str, Any] = {
            name: [t.counts[n] for t in tallies] for n, name in enumerate(EMAIL_COUNTERS)
        }
        params.update(
            ids=ids,
            lo=[t.last_open for t in tallies],
            lho=[t.last_human_open for t in tallies],
            engaged=[t.engaged for t in tallies],
            counted=[t.raw for t in tallies],
            threshold=noise_threshold,
            now=now,
        )
        conn.execute(_PG_ADD_COUNTERS, params)
        return
    rows = []
    for activity_id in ids:
        delta = deltas[activity_id]
        row: dict[str, Any] = {
            f"b_{k}": n for k, n in zip(EMAIL_COUNTERS, delta.counts, strict=True)
        }
        row.update(
            b_id=activity_id,
            b_lastopenedtime=delta.last_open,
            b_lasthumanopenedtime=delta.last_human_open,
            b_engaged=delta.engaged,
            b_counted=delta.raw,
            b_threshold=noise_threshold,
            b_now=now,
        )
        rows.append(row)
    executemany(conn, _ADD_COUNTERS, rows)


def write_counters(
    conn: Connection, values: dict[uuid.UUID, dict[str, Any]], now: datetime
) -> None:
    """Set emails' counters, verdict and noise flag (`EmailTally.columns` of each)."""
    rows = [
        {"b_id": activity_id, "b_modifiedon": now, **{f"b_{k}": v for k, v in columns.items()}}
        for activity_id, columns in values.items()
    ]
    executemany(conn, _WRITE_COUNTERS, rows)


def parties_of(conn: Connection, activity_ids: Iterable[uuid.UUID]) -> set[tuple[str, uuid.UUID]]:
    """The contacts, leads and accounts these emails went to, and those contacts' accounts."""
    ids = list(set(activity_ids))
    found: set[tuple[str, uuid.UUID]] = set()
    if not ids:
        return found
    d, c = emaildelivery, contact
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
        .where(in_ids(conn, d.c.emailactivityid, ids))
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
    if not names:
        return []
    return list(conn.execute(select(*_SENT).where(in_ids(conn, email.c.messageid, sorted(names)))))


def by_tracking_ids(conn: Connection, tracking_ids: Iterable[uuid.UUID]) -> list[Any]:
    """Sent emails whose `emailtrackingid` (X-MailSignal-Id) is one of these."""
    wanted = list(set(tracking_ids))
    if not wanted:
        return []
    return list(conn.execute(select(*_SENT).where(in_ids(conn, email.c.emailtrackingid, wanted))))


def recipients(conn: Connection, activity_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """{email: its deliveries (deliveryid, emailactivityid, emailaddress) by delivery id}."""
    wanted = list(set(activity_ids))
    found: dict[uuid.UUID, list[Any]] = {}
    if not wanted:
        return found
    d = emaildelivery
    for row in conn.execute(
        select(d.c.deliveryid, d.c.emailactivityid, d.c.emailaddress)
        .where(in_ids(conn, d.c.emailactivityid, wanted))
        .order_by(d.c.deliveryid)
    ):
        found.setdefault(row.emailactivityid, []).append(row)
    return found
