"""Recording a sent email: its row, its tracked links and attachments, its deliveries.

What `outgoing` writes when it tracks a message, in the caller's transaction. A tracked
delivery to a contact, lead or account also adds one to the party's
`emailsfollowedcount` (and to a contact's account's), so the roll-up is right from the
moment the mail is sent. Every row is checked against its columns first (`columns.check`),
so a value one backend would refuse is an `InputError` on both. `sentmessage` and
`idempotencykey` make a message, or a request, that comes again find what it made.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Connection, CursorResult, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..instrument import FoundAttachment, find_attachments
from ..model import TrackingDecision
from .columns import check
from .files import AttachmentFiles, AttachmentMeta
from .schema import (
    contact,
    email,
    emaildelivery,
    idempotencykey,
    sentmessage,
    trackedattachment,
    trackedlink,
)
from .scores import add_followed

_UNSTORABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def insert_email(conn: Connection, values: dict[str, Any]) -> uuid.UUID:
    """A new `email` row from these column values. The caller gives the ids
    (`activityid`, `emailtrackingid`) rather than reading them back after the insert."""
    check(email, values)
    conn.execute(insert(email).values(**values))
    return uuid.UUID(str(values["activityid"]))


def message_key(sender: str, message_id: str) -> str:
    """The `sentmessage` key of a (normalised) sender's Message-ID."""
    return hashlib.sha256(f"{sender}\0{message_id}".encode("utf-8", "surrogatepass")).hexdigest()


def insert_email_once(conn: Connection, values: dict[str, Any]) -> tuple[uuid.UUID, bool]:
    """`insert_email`, unless this sender already recorded this Message-ID: then the
    email that did, and nothing is written. Returns (activityid, inserted).

    The `sentmessage` primary key decides, not a look-up first: of two transactions
    racing with one message, PostgreSQL makes the second wait for the first and then
    fail the insert (SQLite writers take turns), and the second finds the first's email.
    """
    key = message_key(values["sender"], values["messageid"])
    try:
        with conn.begin_nested():
            activity_id = insert_email(conn, values)
            conn.execute(insert(sentmessage).values(messagekey=key, emailactivityid=activity_id))
        return activity_id, True
    except IntegrityError:
        found = conn.execute(
            select(sentmessage.c.emailactivityid).where(sentmessage.c.messagekey == key)
        ).scalar()
        if found is None:  # the insert failed for some other reason
            raise
        return found, False


def sent_at_of(conn: Connection, sender: str, message_id: str) -> datetime | None:
    """When the email this sender recorded with this Message-ID was sent, if there is one."""
    found: datetime | None = conn.execute(
        select(email.c.senton)
        .join(sentmessage, sentmessage.c.emailactivityid == email.c.activityid)
        .where(sentmessage.c.messagekey == message_key(sender, message_id))
    ).scalar()
    return found


@dataclass(frozen=True, slots=True)
class Recorded:
    """What an email recorded once holds, to give its copies again."""

    tracking_id: uuid.UUID
    deliveries: dict[str, tuple[int, bool, tuple[str, ...]]]  # address: (id, tracked, why not)
    links: list[tuple[int, str]]  # (link id, url) in message order
    honeypot: int | None
    attachments: list[tuple[int, str]]  # (attachment id, sha256) in message order


def recorded(conn: Connection, activity_id: uuid.UUID) -> Recorded:
    """The deliveries, links and attachments `Outgoing.track` wrote for an email."""
    tracking_id = conn.execute(
        select(email.c.emailtrackingid).where(email.c.activityid == activity_id)
    ).scalar_one()
    d = emaildelivery.c
    deliveries = {
        str(address): (int(delivery_id), bool(tracked), tuple(reasons or ()))
        for address, delivery_id, tracked, reasons in conn.execute(
            select(d.emailaddress, d.deliveryid, d.tracked, d.untrackedreasons)
            .where(d.emailactivityid == activity_id)
            .order_by(d.deliveryid)
        )
    }
    t = trackedlink.c
    links, honeypot = [], None
    for link_id, url, is_honeypot in conn.execute(
        select(t.linkid, t.url, t.ishoneypot)
        .where(t.emailactivityid == activity_id)
        .order_by(t.position)
    ):
        if is_honeypot:
            honeypot = int(link_id)
        else:
            links.append((int(link_id), str(url)))
    a = trackedattachment.c
    attachments = [
        (int(attachment_id), str(digest))
        for attachment_id, digest in conn.execute(
            select(a.attachmentid, a.sha256)
            .where(a.emailactivityid == activity_id)
            .order_by(a.attachmentid)
        )
    ]
    return Recorded(tracking_id, deliveries, links, honeypot, attachments)


@dataclass(frozen=True, slots=True)
class KeyUse:
    """An `Idempotency-Key` as first used: the request's hash, and the Message-ID and
    send time its email got."""

    request_hash: str
    message_id: str
    sent_at: datetime


def claim_key(
    conn: Connection,
    owner: uuid.UUID,
    key: str,
    use: KeyUse,
    now: datetime,
    expired_before: datetime,
) -> KeyUse:
    """`use` recorded under (owner, key), unless the key was used since `expired_before`:
    then that first use. Race-safe as `insert_email_once` is: the primary key decides."""
    k = idempotencykey.c
    row = {
        "requesthash": use.request_hash,
        "messageid": use.message_id,
        "senton": use.sent_at,
        "createdon": now,
    }
    try:
        with conn.begin_nested():
            conn.execute(insert(idempotencykey).values(ownerid=owner, idempotencykey=key, **row))
        return use
    except IntegrityError:
        pass
    mine = (k.ownerid == owner) & (k.idempotencykey == key)
    taken = conn.execute(
        update(idempotencykey).where(mine, k.createdon < expired_before).values(**row)
    )
    if taken.rowcount:
        return use
    first = conn.execute(select(k.requesthash, k.messageid, k.senton).where(mine)).one()
    return KeyUse(first.requesthash, first.messageid, first.senton)


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


def insert_decided(
    conn: Connection,
    activity_id: uuid.UUID,
    decisions: list[tuple[str, TrackingDecision, tuple[str, uuid.UUID, bool] | None]],
) -> dict[str, int]:
    """`insert_deliveries` for (address, tracking decision, party or None) triples, as
    `Outgoing.track` decides them; {address: delivery id}."""
    if not decisions:
        return {}
    rows = [
        {
            "emailaddress": address,
            "recipientobjectid": party[1] if party else None,
            "recipientobjecttypecode": party[0] if party else None,
            "tracked": decision.tracked,
            "untrackedreasons": list(decision.reasons),
        }
        for address, decision, party in decisions
    ]
    return insert_deliveries(conn, activity_id, rows)


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


def storable(label: str) -> str:
    """A label taken from a message (its subject, a file name) as the store keeps it:
    control characters and undecodable bytes (lone surrogates) become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", label)


def attachment_meta(found: FoundAttachment) -> AttachmentMeta:
    """What the store keeps of an attachment found in a message (and its link shows)."""
    return AttachmentMeta(
        found.sha256,
        storable(found.filename)[:255],
        storable(found.content_type)[:255],
        found.size,
    )


def store_attachments(
    conn: Connection, files: AttachmentFiles, msg: EmailMessage, activity_id: uuid.UUID
) -> dict[int, tuple[int, AttachmentMeta]]:
    """Keep each selected attachment as a file + row; {part index: (attachment id, meta)}.

    The blob and sidecar are written before the transaction commits: a rollback leaves
    an unreferenced file behind, never a row without its file.
    """
    stored: dict[int, tuple[int, AttachmentMeta]] = {}
    for found in find_attachments(msg, files.policy):
        meta = attachment_meta(found)
        path = files.put(found.data, meta.sha256)
        attachment_id = insert_attachment(
            conn,
            activity_id,
            {
                "filename": meta.filename,
                "contenttype": meta.content_type,
                "size": meta.size,
                "sha256": meta.sha256,
                "storagepath": path,
            },
        )
        files.write_meta(attachment_id, meta)
        stored[found.index] = (attachment_id, meta)
    return stored
