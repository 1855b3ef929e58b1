"""What the panel's email page and contact / lead / account pages read (issue 12).

Every query of emails or events takes its row rule from `fetchxml.access.row_filter`
(the one statement of who reads what): an email the caller may not read is not found,
and a party's recent engagement lists only events on mail the caller may read. A
non-admin sees a party's page only when they may read some mail sent to it (or, for an
account, to one of its contacts); contacts, leads and accounts are shared sales data,
but a rep has no business browsing those of mail they cannot read.

Every list is bounded (`LIMIT`); the page says when a list was cut.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, or_, select, true

from ..fetchxml import Caller
from ..fetchxml.access import row_filter
from .catalog import CATALOG
from .panelfeed import party_name, with_party
from .parties import TABLES, Party
from .rescore import counting
from .schema import (
    contact,
    email,
    emaildelivery,
    interactionforemail,
    trackedattachment,
    trackedlink,
)

Row = dict[str, Any]
EVENT_LIMIT = 2000  # events shown on one email page
DELIVERY_LIMIT = 200  # recipients shown on one email page
SCORE_EVENT_LIMIT = 10_000  # counting events read for a score-over-time chart


def _readable(caller: Caller) -> ColumnElement[bool]:
    """The email table's row rule for `caller` (true for an admin)."""
    entity = CATALOG.entity("email")
    assert entity is not None
    rule = row_filter(entity, email, caller, CATALOG)
    return rule if rule is not None else true()


# --- the email page ----------------------------------------------------------------------


def email_for(conn: Connection, activity_id: uuid.UUID, caller: Caller) -> Row | None:
    """The email if it exists and `caller` may read it, else None."""
    row = (
        conn.execute(select(email).where(email.c.activityid == activity_id, _readable(caller)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def deliveries(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    """The email's recipients (at most DELIVERY_LIMIT), in address order, each with the
    name of the contact, lead or account it resolved to (`partyname`, else None)."""
    d = emaildelivery
    rows = conn.execute(
        select(d, party_name().label("partyname"))
        .select_from(with_party(d))
        .where(d.c.emailactivityid == activity_id)
        .order_by(d.c.emailaddress)
        .limit(DELIVERY_LIMIT)
    ).mappings()
    return [dict(r) for r in rows]


def events(conn: Connection, activity_id: uuid.UUID, limit: int = EVENT_LIMIT) -> list[Row]:
    """The email's events, oldest first, with the clicked link's URL and text and the
    downloaded file's name (`linkurl`, `linktext`, `filename`). Call only for an email
    `email_for` returned: the caller may read it."""
    ev, link, att = interactionforemail, trackedlink, trackedattachment
    rows = conn.execute(
        select(
            ev.c.interactionforemailid,
            ev.c.deliveryid,
            ev.c.linkid,
            ev.c.interactiontype,
            ev.c.emailinteractiontime,
            ev.c.interactionlocation,
            ev.c.interactionuseragent,
            ev.c.interactedcomponenttext,
            ev.c.interactionrepliedby,
            ev.c.emailaddress,
            ev.c.ipaddress,
            ev.c.httpmethod,
            ev.c.ishoneypot,
            ev.c.facts,
            ev.c.verdict,
            ev.c.confidence,
            ev.c.reasons,
            link.c.url.label("linkurl"),
            link.c.text.label("linktext"),
            att.c.filename,
        )
        .select_from(
            ev.outerjoin(link, link.c.linkid == ev.c.linkid).outerjoin(
                att, att.c.attachmentid == ev.c.attachmentid
            )
        )
        .where(ev.c.emailactivityid == activity_id)
        .order_by(ev.c.emailinteractiontime, ev.c.hitid)
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def link_clicks(conn: Connection, activity_id: uuid.UUID) -> list[Row]:
    """Each tracked link of the email (honeypot excluded) with its clicks: `raw` (every
    click), `people` (labelled human) and `machines` (labelled machine)."""
    link, ev = trackedlink, interactionforemail

    rows = conn.execute(
        select(
            link.c.linkid,
            link.c.position,
            link.c.url,
            link.c.text,
            func.count(ev.c.interactionforemailid).label("raw"),
            func.count(ev.c.interactionforemailid).filter(ev.c.verdict == "human").label("people"),
            func.count(ev.c.interactionforemailid)
            .filter(ev.c.verdict == "machine")
            .label("machines"),
        )
        .select_from(
            link.outerjoin(
                # the email's events (ix_interactionforemail_email), not every event
                ev,
                and_(ev.c.emailactivityid == activity_id, ev.c.linkid == link.c.linkid),
            )
        )
        .where(link.c.emailactivityid == activity_id, link.c.ishoneypot.is_(False))
        .group_by(link.c.linkid, link.c.position, link.c.url, link.c.text)
        .order_by(link.c.position)
        .limit(200)
    ).mappings()
    return [dict(r) for r in rows]


# --- contact, lead and account pages -----------------------------------------------------


def party(conn: Connection, kind: str, party_id: uuid.UUID) -> Row | None:
    """The contact, lead or account row, with `name` and `id` added; None if unknown."""
    if kind not in TABLES:
        return None
    table, key = TABLES[kind]
    row = conn.execute(select(table).where(table.c[key] == party_id)).mappings().first()
    if row is None:
        return None
    found = dict(row)
    found["id"] = found[key]
    found["name"] = found.get("name") if kind == "account" else found.get("fullname")
    return found


def _to_party(kind: str, party_id: uuid.UUID) -> ColumnElement[bool]:
    """Deliveries to the party (for an account: to it and to its contacts)."""
    d = emaildelivery
    own = and_(d.c.recipientobjecttypecode == kind, d.c.recipientobjectid == party_id)
    if kind != "account":
        return own
    members = select(contact.c.contactid).where(contact.c.parentcustomerid == party_id)
    return or_(
        own,
        and_(d.c.recipientobjecttypecode == "contact", d.c.recipientobjectid.in_(members)),
    )


def may_see(conn: Connection, found: Party, caller: Caller) -> bool:
    """An admin sees every party; anyone else one that some mail they may read went to."""
    if caller.is_admin:
        return True
    kind, party_id = found
    d = emaildelivery
    mail = (
        select(d.c.deliveryid)
        .select_from(d.join(email, email.c.activityid == d.c.emailactivityid))
        .where(_to_party(kind, party_id), _readable(caller))
    )
    return bool(conn.execute(select(exists(mail))).scalar())


def recent_engagement(conn: Connection, found: Party, caller: Caller, limit: int = 20) -> list[Row]:
    """The latest events of people (human, forward, or a reply not labelled machine) on
    mail sent to the party that `caller` may read, newest first, with the email."""
    kind, party_id = found
    d, ev = emaildelivery, interactionforemail
    rows = conn.execute(
        select(
            ev.c.interactiontype,
            ev.c.emailinteractiontime,
            ev.c.verdict,
            ev.c.emailaddress,
            ev.c.interactedcomponenttext,
            email.c.activityid,
            email.c.subject,
            email.c.senton,
        )
        .select_from(
            d.join(ev, ev.c.deliveryid == d.c.deliveryid).join(
                email, email.c.activityid == d.c.emailactivityid
            )
        )
        .where(_to_party(kind, party_id), counting(), _readable(caller))
        .order_by(ev.c.emailinteractiontime.desc(), ev.c.hitid.desc())
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def events_by_hit(conn: Connection, hit_ids: list[str], caller: Caller) -> dict[str, Row]:
    """For the score explanation's events (by `hitid`): the email each was on and its
    subject, only where `caller` may read that email."""
    if not hit_ids:
        return {}
    ev = interactionforemail
    rows = conn.execute(
        select(ev.c.hitid, email.c.activityid, email.c.subject, ev.c.emailaddress)
        .select_from(ev.join(email, email.c.activityid == ev.c.emailactivityid))
        .where(ev.c.hitid.in_(hit_ids[:100]), _readable(caller))
    ).mappings()
    return {r["hitid"]: dict(r) for r in rows}


def scored_events(
    conn: Connection, found: Party, limit: int = SCORE_EVENT_LIMIT
) -> list[tuple[int, str, datetime, datetime]]:
    """The events that add to the party's score (the ones `rescore.explain` reads):
    (kind, verdict, time, recorded), newest first, at most `limit`."""
    kind, party_id = found
    d, ev = emaildelivery, interactionforemail
    rows = conn.execute(
        select(ev.c.interactiontype, ev.c.verdict, ev.c.emailinteractiontime, ev.c.createdon)
        .select_from(d.join(ev, ev.c.deliveryid == d.c.deliveryid))
        .where(_to_party(kind, party_id), counting())
        .order_by(ev.c.emailinteractiontime.desc())
        .limit(limit)
    )
    return [(int(k), str(v), at, rec) for k, v, at, rec in rows]


def account_contacts(conn: Connection, account_id: uuid.UUID, limit: int = 100) -> list[Row]:
    """An account's contacts, highest score first."""
    c = contact
    rows = conn.execute(
        select(
            c.c.contactid,
            c.c.fullname,
            c.c.emailaddress1,
            c.c.engagementscore,
            c.c.humanopencount,
            c.c.humanclickcount,
            c.c.replycount,
            c.c.lasthumanengagementon,
        )
        .where(c.c.parentcustomerid == account_id)
        .order_by(c.c.engagementscore.desc(), c.c.fullname)
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]
