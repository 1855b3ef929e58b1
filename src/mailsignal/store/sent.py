"""Recording a sent email: its row, its tracked links and attachments, its deliveries.

What `outgoing` writes when it tracks a message, in the caller's transaction. A tracked
delivery to a contact, lead or account also adds one to the party's
`emailsfollowedcount` (and to a contact's account's), so the roll-up is right from the
moment the mail is sent. Every row is checked against its columns first (`columns.check`),
so a value one backend would refuse is an `InputError` on both.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, CursorResult, insert, select

from .columns import check
from .schema import contact, email, emaildelivery, trackedattachment, trackedlink
from .scores import add_followed


def insert_email(conn: Connection, values: dict[str, Any]) -> uuid.UUID:
    """A new `email` row from these column values. The caller gives the ids
    (`activityid`, `emailtrackingid`) rather than reading them back after the insert."""
    check(email, values)
    conn.execute(insert(email).values(**values))
    return uuid.UUID(str(values["activityid"]))


def insert_links(
    conn: Connection, activity_id: uuid.UUID, links: list[tuple[str, str]]
) -> dict[int, int]:
    """The email's tracked links, (url, anchor text) in message order; {position: link id}.

    One statement for all links (a sales email has dozens). RETURNING the position (unique
    per email) ties each id to its link in whatever order the rows come: asking for
    parameter order would make SQLite insert them one by one.
    """
    if not links:
        return {}
    rows = [
        {"emailactivityid": activity_id, "position": n, "url": url, "text": text[:200]}
        for n, (url, text) in enumerate(links)
    ]
    check(trackedlink, *rows)
    inserted = conn.execute(
        insert(trackedlink).returning(trackedlink.c.linkid, trackedlink.c.position), rows
    )
    return {int(position): int(link_id) for link_id, position in inserted}


def insert_honeypot(conn: Connection, activity_id: uuid.UUID, position: int) -> int:
    """The email's invisible honeypot link (after its real links); returns its id."""
    result = conn.execute(
        insert(trackedlink).values(
            emailactivityid=activity_id, position=position, url="", ishoneypot=True
        )
    )
    return _inserted_id(result)


def insert_attachment(conn: Connection, activity_id: uuid.UUID, values: dict[str, Any]) -> int:
    """A `trackedattachment` row (filename, contenttype, size, sha256, storagepath)."""
    check(trackedattachment, values)
    result = conn.execute(insert(trackedattachment).values(emailactivityid=activity_id, **values))
    return _inserted_id(result)


def insert_deliveries(
    conn: Connection, activity_id: uuid.UUID, rows: list[dict[str, Any]]
) -> dict[str, int]:
    """The email's deliveries (emailaddress, recipientobjectid, recipientobjecttypecode,
    tracked, untrackedreasons); {address: delivery id}. Each tracked delivery to a party
    adds one to its `emailsfollowedcount` (and its account's, for a contact)."""
    check(emaildelivery, *rows)
    inserted = conn.execute(
        insert(emaildelivery).returning(emaildelivery.c.deliveryid, emaildelivery.c.emailaddress),
        [{"emailactivityid": activity_id, **row} for row in rows],
    )
    ids = {str(address): int(delivery_id) for delivery_id, address in inserted}
    followed: dict[tuple[str, uuid.UUID], int] = defaultdict(int)
    contacts = [
        r["recipientobjectid"]
        for r in rows
        if r["tracked"] and r["recipientobjecttypecode"] == "contact"
    ]
    parents = _parents(conn, contacts)
    for row in rows:
        party = row["recipientobjectid"]
        if row["tracked"] and party is not None:
            followed[(row["recipientobjecttypecode"], party)] += 1
            if party in parents:
                followed[("account", parents[party])] += 1
    add_followed(conn, followed)
    return ids


def _parents(conn: Connection, contact_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    if not contact_ids:
        return {}
    rows = conn.execute(
        select(contact.c.contactid, contact.c.parentcustomerid).where(
            contact.c.contactid.in_(contact_ids), contact.c.parentcustomerid.is_not(None)
        )
    )
    return {child: parent for child, parent in rows}


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
