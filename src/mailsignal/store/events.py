"""Events (`interactionforemail`): one row per open, click, download or reply.

Events are written by the pipeline (pipeline/), which owns when; this module owns how:
the rows a timeline is classified from, the verdicts revised, the lists people read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, Text, and_, bindparam, cast, func, select, update

from ..model import EventKind
from .bulk import copy_rows, executemany, in_ids, insert_ignore
from .schema import (
    contact,
    email,
    emaildelivery,
    interactionforemail,
    trackedattachment,
    trackedlink,
)

Row = dict[str, Any]
EXPORT_COLUMNS = (
    "interactionforemailid",
    "emailactivityid",
    "deliveryid",
    "emailaddress",
    "interactiontype",
    "emailinteractiontime",
    "ipaddress",
    "interactionuseragent",
    "httpmethod",
    "interactedcomponenttext",
    "interactionlocation",
    "verdict",
    "confidence",
    "reasons",
    "classifierversion",
    "hitid",
    "externalid",
)


def of_email(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    """Every event of one email (machine ones too), in time order."""
    ev = interactionforemail
    rows = conn.execute(
        select(ev)
        .where(ev.c.emailactivityid == activity_id)
        .order_by(ev.c.emailinteractiontime, ev.c.hitid)
    ).mappings()
    return [dict(r) for r in rows]


def stream(conn: Connection, since: datetime | None = None, batch: int = 2000) -> Iterator[Row]:
    """Every event in time order with the exported columns, `batch` rows at a time."""
    ev = interactionforemail
    stmt = select(*(ev.c[name] for name in EXPORT_COLUMNS)).order_by(
        ev.c.emailinteractiontime, ev.c.hitid
    )
    if since is not None:
        stmt = stmt.where(ev.c.emailinteractiontime >= since)
    for row in conn.execution_options(yield_per=batch).execute(stmt).mappings():
        yield dict(row)


# --- what the pipeline reads and writes --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recipient's copy as the pipeline needs it: its email, its address, the parties
    its events count for (the recipient, and a contact's account), and what the
    classifier needs to know of the email (when it was sent, how many links it has)."""

    email: uuid.UUID
    address: str
    parties: tuple[tuple[str, uuid.UUID], ...]
    sent_at: datetime | None
    link_count: int
    owner: uuid.UUID | None = None  # the email's owner: whose hours its events count in
    environment: str | None = None  # emaildelivery.mailenvironment as stored


_LINKS = (
    select(func.count())
    .where(trackedlink.c.emailactivityid == emaildelivery.c.emailactivityid)
    .where(trackedlink.c.ishoneypot.is_(False))
    .correlate(emaildelivery)
    .scalar_subquery()
)


def deliveries(conn: Connection, ids: Iterable[int], *, lock: bool = False) -> dict[int, Delivery]:
    """These deliveries by id, in one statement. `lock` takes their rows for the
    transaction (PostgreSQL `FOR UPDATE`, in id order), so two ingest workers never
    classify one recipient's timeline at the same time; SQLite has one writer anyway."""
    d, c = emaildelivery, contact
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    stmt = (
        select(
            d.c.deliveryid,
            d.c.emailactivityid,
            d.c.emailaddress,
            d.c.recipientobjecttypecode,
            d.c.recipientobjectid,
            c.c.parentcustomerid,
            email.c.senton,
            _LINKS,
            email.c.ownerid,
            d.c.mailenvironment,
        )
        .select_from(
            d.join(email, email.c.activityid == d.c.emailactivityid).outerjoin(
                c,
                and_(
                    d.c.recipientobjecttypecode == "contact", c.c.contactid == d.c.recipientobjectid
                ),
            )
        )
        .where(in_ids(conn, d.c.deliveryid, wanted))
        .order_by(d.c.deliveryid)
    )
    if lock:
        stmt = stmt.with_for_update(of=d)
    found: dict[int, Delivery] = {}
    for (
        delivery,
        activity,
        address,
        kind,
        party,
        parent,
        sent_at,
        links,
        owner,
        environment,
    ) in conn.execute(stmt):
        parties: tuple[tuple[str, uuid.UUID], ...] = ()
        if party is not None and kind is not None:
            parties = ((kind, party),)
            if parent is not None:
                parties += (("account", parent),)
        found[delivery] = Delivery(
            activity, address, parties, sent_at, int(links), owner, environment
        )
    return found


def targets(
    conn: Connection, link_ids: set[int], attachment_ids: set[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    """What a batch of hits names besides deliveries: links (email, url, honeypot) and
    attachments (email, file name), each keyed by id."""
    link, file = trackedlink, trackedattachment
    links: dict[int, Any] = {}
    files: dict[int, Any] = {}
    if link_ids:
        links = {
            row[0]: row
            for row in conn.execute(
                select(link.c.linkid, link.c.emailactivityid, link.c.url, link.c.ishoneypot).where(
                    in_ids(conn, link.c.linkid, link_ids)
                )
            )
        }
    if attachment_ids:
        files = {
            row[0]: row
            for row in conn.execute(
                select(file.c.attachmentid, file.c.emailactivityid, file.c.filename).where(
                    in_ids(conn, file.c.attachmentid, attachment_ids)
                )
            )
        }
    return links, files


def stored_timelines(conn: Connection, delivery_ids: list[int]) -> Iterator[Any]:
    """Every stored hit event (not replies) of these deliveries, by delivery then time,
    with what the classifier reads and the stored verdict (`reasons` as JSON text)."""
    ev = interactionforemail
    return iter(
        conn.execute(
            select(
                ev.c.deliveryid,
                ev.c.hitid,
                ev.c.interactiontype,
                ev.c.emailinteractiontime,
                ev.c.ipaddress,
                ev.c.interactionuseragent,
                ev.c.httpmethod,
                ev.c.facts,
                ev.c.linkid,
                ev.c.ishoneypot,
                ev.c.headers,
                ev.c.verdict,
                ev.c.confidence,
                # As stored, unparsed: compared with the new reasons' `json_text`.
                cast(ev.c.reasons, Text).label("reasons"),
                ev.c.classifierversion,
                ev.c.createdon,
            )
            .where(in_ids(conn, ev.c.deliveryid, delivery_ids))
            .where(ev.c.interactiontype != int(EventKind.REPLY))
            .order_by(ev.c.deliveryid, ev.c.emailinteractiontime, ev.c.hitid)
        )
    )


def insert(conn: Connection, rows: list[Row]) -> int:
    """Insert event rows, skipping any whose `hitid` is stored already; returns rows added.

    On PostgreSQL a batch goes in with COPY, twice the speed of the pipelined INSERTs
    (bench/classify.py's anchors), under a savepoint: COPY cannot skip a duplicate, so if
    another writer stored one of these hits meanwhile, the batch goes again as INSERT ...
    ON CONFLICT DO NOTHING.
    """
    if not rows:
        return 0
    rows = _with_owner(conn, rows)
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                return copy_rows(conn, interactionforemail, rows)
        except UniqueViolation:
            pass
    return insert_ignore(conn, interactionforemail, rows, "hitid")


def _with_owner(conn: Connection, rows: list[Row]) -> list[Row]:
    """`rows` with their email's owner (`ownerid`, for the panel's feed): one look-up per
    batch for the few emails it touches."""
    wanted = {r["emailactivityid"] for r in rows if "ownerid" not in r}
    if not wanted:
        return rows
    owners = dict(
        conn.execute(
            select(email.c.activityid, email.c.ownerid).where(
                in_ids(conn, email.c.activityid, wanted)
            )
        ).all()
    )
    return [
        r if "ownerid" in r else {**r, "ownerid": owners.get(r["emailactivityid"])} for r in rows
    ]


_REVISE = (
    update(interactionforemail)
    .where(interactionforemail.c.hitid == bindparam("b_hitid"))
    .values(
        verdict=bindparam("b_verdict"),
        confidence=bindparam("b_confidence"),
        reasons=bindparam("b_reasons"),
        classifierversion=bindparam("b_version"),
    )
)


def revise(conn: Connection, changes: list[Row]) -> None:
    """New verdicts for stored events: rows of b_hitid, b_verdict, b_confidence,
    b_reasons (a dict, or `db.json_text`), b_version."""
    executemany(conn, _REVISE, changes)


def tallies(conn: Connection, email_ids: list[uuid.UUID]) -> Iterator[Any]:
    """(email, kind, verdict, count, latest time) of these emails' events."""
    ev = interactionforemail
    return iter(
        conn.execute(
            select(
                ev.c.emailactivityid,
                ev.c.interactiontype,
                ev.c.verdict,
                func.count(),
                func.max(ev.c.emailinteractiontime),
            )
            .where(in_ids(conn, ev.c.emailactivityid, email_ids))
            .group_by(ev.c.emailactivityid, ev.c.interactiontype, ev.c.verdict)
        )
    )


def stored_hit_ids(conn: Connection, keys: list[str]) -> set[str]:
    """Which of these hit ids are stored already."""
    if not keys:
        return set()
    stored = interactionforemail.c.hitid
    return set(conn.execute(select(stored).where(in_ids(conn, stored, keys))).scalars())


def deliveries_with_events(conn: Connection, *, stale_version: str | None = None) -> list[int]:
    """Deliveries that have events (only those classified by another version than
    `stale_version`, when given), ascending."""
    ev = interactionforemail
    stmt = select(ev.c.deliveryid).distinct()
    if stale_version is not None:
        stmt = stmt.where(ev.c.classifierversion != stale_version)
    return sorted(conn.execute(stmt).scalars().all())


def deliveries_sent_between(conn: Connection, start: datetime, end: datetime) -> list[int]:
    """Deliveries with events whose email was sent in [start, end)."""
    return list(
        conn.execute(
            select(emaildelivery.c.deliveryid)
            .join(email, email.c.activityid == emaildelivery.c.emailactivityid)
            .where(email.c.senton >= start, email.c.senton < end)
            .where(
                select(func.count())
                .where(interactionforemail.c.deliveryid == emaildelivery.c.deliveryid)
                .scalar_subquery()
                > 0
            )
        ).scalars()
    )
