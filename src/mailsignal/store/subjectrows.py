"""Every stored row about one recipient address, read for the right of access (issue 13,
pipeline/rights.export): parties, the copies sent to it, their events, the replies it
sent, what retention folded of their events, and the do-not-track entry.

Addresses are compared in their stored spelling (addresses.normalise_address: parties'
`emailaddress1` by lower(), as outgoing mail finds them; deliveries and events hold the
lower-cased address). Deliveries and events are streamed (`yield_per`), so a recipient
with a million hits is read in bounded memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select

from ..model import EventKind
from .schema import (
    account,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    lead,
    metadata,
    retainedtally,
)

Row = dict[str, Any]
PARTIES: dict[str, tuple[Table, str]] = {
    "contact": (contact, "contactid"),
    "lead": (lead, "leadid"),
    "account": (account, "accountid"),
}
STREAM = 500  # rows fetched at a time


def parties(conn: Connection, address: str) -> dict[str, list[Row]]:
    """{kind: rows} of the contacts, leads and accounts whose emailaddress1 is `address`."""
    out: dict[str, list[Row]] = {}
    for kind, (table, key) in PARTIES.items():
        stmt = (
            select(table).where(func.lower(table.c.emailaddress1) == address).order_by(table.c[key])
        )
        out[kind] = [dict(r) for r in conn.execute(stmt).mappings()]
    return out


def _copies(address: str) -> Any:
    d = emaildelivery
    return select(d.c.deliveryid).where(d.c.emailaddress == address)


def deliveries(conn: Connection, address: str) -> Iterator[Row]:
    """The copies sent to `address`, oldest first, with their email's subject, sender,
    send time and Message-ID."""
    d, e = emaildelivery, email
    stmt = (
        select(d, e.c.subject, e.c.sender, e.c.senton, e.c.messageid, e.c.ownerid)
        .select_from(d.join(e, e.c.activityid == d.c.emailactivityid))
        .where(d.c.emailaddress == address)
        .order_by(d.c.deliveryid)
        .execution_options(yield_per=STREAM)
    )
    for row in conn.execute(stmt).mappings():
        yield dict(row)


def events(conn: Connection, address: str) -> Iterator[Row]:
    """Every event of the copies sent to `address` (opens, clicks, downloads, replies),
    with their network facts, verdicts and reasons, oldest first."""
    i = interactionforemail
    stmt = (
        select(i)
        .where(i.c.deliveryid.in_(_copies(address)))
        .order_by(i.c.deliveryid, i.c.emailinteractiontime, i.c.interactionforemailid)
        .execution_options(yield_per=STREAM)
    )
    for row in conn.execute(stmt).mappings():
        yield dict(row)


def _reply_filter(address: str) -> Any:
    i = interactionforemail
    return or_(
        func.lower(i.c.interactionrepliedby) == address,
        (i.c.interactiontype == int(EventKind.REPLY)) & i.c.deliveryid.in_(_copies(address)),
    )


def replies(conn: Connection, address: str) -> Iterator[Row]:
    """Reply records: replies sent from `address` (to any copy), and replies recorded
    on the copies sent to it."""
    i = interactionforemail
    stmt = (
        select(i)
        .where(_reply_filter(address))
        .order_by(i.c.emailinteractiontime, i.c.interactionforemailid)
        .execution_options(yield_per=STREAM)
    )
    for row in conn.execute(stmt).mappings():
        yield dict(row)


def retained(conn: Connection, address: str) -> list[Row]:
    """What retention kept of the deleted events of the copies sent to `address`."""
    r = retainedtally
    stmt = (
        select(r)
        .where(r.c.deliveryid.in_(_copies(address)))
        .order_by(r.c.deliveryid, r.c.interactiontype, r.c.verdict)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]


def consent(conn: Connection, address: str, address_hash: str) -> list[Row] | None:
    """The consent history (store/consent.py's `consentrecord`, oldest first): the rows
    naming the address's keyed hash (or the address). None when this version's schema
    has no consent table."""
    table = metadata.tables.get("consentrecord")
    if table is None:
        return None
    terms = []
    if "addresshash" in table.c:
        terms.append(table.c.addresshash == address_hash)
    if "emailaddress" in table.c:
        terms.append(func.lower(table.c.emailaddress) == address)
    if not terms:
        return None
    stmt = select(table).where(or_(*terms)).order_by(*table.primary_key.columns)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def delivery_ids(conn: Connection, address: str, after: int, limit: int) -> list[int]:
    """Up to `limit` ids of copies sent to `address` above `after`, ascending."""
    d = emaildelivery
    stmt = (
        select(d.c.deliveryid)
        .where(d.c.emailaddress == address, d.c.deliveryid > after)
        .order_by(d.c.deliveryid)
        .limit(limit)
    )
    return [int(r[0]) for r in conn.execute(stmt)]


def party_ids(conn: Connection, address: str) -> dict[str, list[uuid.UUID]]:
    """{kind: ids} of the parties with this address."""
    out: dict[str, list[uuid.UUID]] = {}
    for kind, (table, key) in PARTIES.items():
        stmt = select(table.c[key]).where(func.lower(table.c.emailaddress1) == address)
        out[kind] = [r[0] for r in conn.execute(stmt)]
    return out
