"""The panel's activity feed and "My emails" (issue 12): what people did across the mail a
user may read, and that mail with its raw and labelled counters side by side.

Who reads which email is `fetchxml.access.row_filter`'s rule for the catalog's `email`
entity (a rep: their own; a manager: their teams' members' too; an admin: all), applied
to the email every row here comes from, so there is one statement of who reads what.

Every list is bounded (a LIMIT, paged by a cursor or a page number), and every query
starts where an index does: a rep's mail by `ownerid`, its events by `emailactivityid`,
a party's deliveries by `ix_emaildelivery_recipient`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    FromClause,
    Select,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from ..fetchxml import Caller
from ..fetchxml.access import row_filter
from ..model import EventKind, Verdict
from .catalog import CATALOG
from .schema import (
    account,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    lead,
    trackedattachment,
    trackedlink,
)

Row = dict[str, Any]
MAX_LIMIT = 50
TABS = ("all", "hottest", "email")
# The "email" tab: opens and clicks only, as HubSpot's email-activity tab.
_EMAIL_KINDS = (int(EventKind.OPEN), int(EventKind.CLICK))
_PEOPLE = (Verdict.HUMAN.value, Verdict.FORWARD.value)


def email_rule(table: FromClause, caller: Caller) -> ColumnElement[bool]:
    """The rows of `table` (the email table or an alias of it) `caller` may read."""
    entity = CATALOG.entity("email")
    if entity is None:  # pragma: no cover - the catalog always has it
        raise LookupError("the catalog has no email entity")
    rule = row_filter(entity, table, caller, CATALOG)
    return true() if rule is None else rule


def _by_a_person() -> ColumnElement[bool]:
    """An event a person caused: a reader, someone the mail was forwarded to, or a reply
    that is not an auto-reply (engagement.is_reply)."""
    ev = interactionforemail
    return or_(
        ev.c.verdict.in_(_PEOPLE),
        and_(ev.c.interactiontype == int(EventKind.REPLY), ev.c.verdict != Verdict.MACHINE.value),
    )


def party_name() -> ColumnElement[Any]:
    return func.coalesce(contact.c.fullname, lead.c.fullname, account.c.name)


def with_party(base: FromClause) -> FromClause:
    """`base` (which has emaildelivery) joined to the contact, lead or account each
    delivery resolved to; `party_name()` reads its name."""
    d = emaildelivery
    return (
        base.outerjoin(
            contact,
            and_(
                d.c.recipientobjecttypecode == "contact",
                contact.c.contactid == d.c.recipientobjectid,
            ),
        )
        .outerjoin(
            lead,
            and_(d.c.recipientobjecttypecode == "lead", lead.c.leadid == d.c.recipientobjectid),
        )
        .outerjoin(
            account,
            and_(
                d.c.recipientobjecttypecode == "account",
                account.c.accountid == d.c.recipientobjectid,
            ),
        )
    )


def feed(
    conn: Connection,
    caller: Caller,
    *,
    tab: str = "all",
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = MAX_LIMIT,
) -> Row:
    """What people did across the mail `caller` reads, newest first.

    Returns {"items": [...], "next": (time, id) of the last item when there is more,
    "machine": machine events in the same period (not listed), "unlabelled": events not
    yet labelled in it, "start"/"end": the period (None = open)}. `before` is a cursor:
    only events strictly older than it (time, then id).
    """
    if tab not in ("all", "email"):
        raise ValueError(f"unknown feed tab {tab!r}")
    limit = max(1, min(limit, MAX_LIMIT))
    ev, e, d = interactionforemail, email, emaildelivery
    joined = ev.join(e, e.c.activityid == ev.c.emailactivityid).join(
        d, d.c.deliveryid == ev.c.deliveryid
    )
    stmt: Select[Any] = (
        select(
            ev.c.interactionforemailid.label("id"),
            ev.c.interactiontype.label("kind"),
            ev.c.emailinteractiontime.label("at"),
            ev.c.verdict,
            ev.c.confidence,
            ev.c.emailaddress.label("address"),
            ev.c.interactionrepliedby.label("repliedby"),
            ev.c.interactedcomponenttext.label("component"),
            e.c.activityid,
            e.c.subject,
            e.c.senton,
            d.c.createdon.label("deliveredon"),
            d.c.recipientobjectid.label("partyid"),
            d.c.recipientobjecttypecode.label("partykind"),
            party_name().label("partyname"),
            trackedlink.c.url.label("linkurl"),
            trackedlink.c.text.label("linktext"),
            trackedattachment.c.filename,
        )
        .select_from(
            with_party(joined)
            .outerjoin(trackedlink, trackedlink.c.linkid == ev.c.linkid)
            .outerjoin(trackedattachment, trackedattachment.c.attachmentid == ev.c.attachmentid)
        )
        .where(
            email_rule(e, caller),
            ev.c.interactionforemailid.in_(_newest(conn, caller, tab, before, limit + 1)),
        )
        .order_by(ev.c.emailinteractiontime.desc(), ev.c.interactionforemailid.desc())
    )
    items = [dict(r) for r in conn.execute(stmt).mappings()]
    more = len(items) > limit
    items = items[:limit]
    start = items[-1]["at"] if more else None
    end = before[0] if before is not None else None
    folded = _folded(conn, caller, tab, start, end)
    return {
        "items": items,
        "next": (items[-1]["at"], items[-1]["id"]) if more else None,
        "machine": folded.get(Verdict.MACHINE.value, 0),
        "unlabelled": folded.get(Verdict.UNKNOWN.value, 0),
        "start": start,
        "end": end,
    }


def _newest(
    conn: Connection,
    caller: Caller,
    tab: str,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[uuid.UUID]:
    """Ids of the newest `limit` events by a person on the caller's owners' mail (all
    mail for an admin), older than `before`: per owner one range of the (ownerid,
    emailinteractiontime) index, merged, instead of every event of every email sorted.
    The caller's row rule is applied to the rows these ids name (`feed`)."""
    ev = interactionforemail

    def newest(owner: uuid.UUID | None) -> Select[Any]:
        q = select(ev.c.interactionforemailid, ev.c.emailinteractiontime).where(_by_a_person())
        if owner is not None:
            q = q.where(ev.c.ownerid == owner)
        if tab == "email":
            q = q.where(ev.c.interactiontype.in_(_EMAIL_KINDS))
        if before is not None:
            at, key = before
            q = q.where(
                or_(
                    ev.c.emailinteractiontime < at,
                    and_(ev.c.emailinteractiontime == at, ev.c.interactionforemailid < key),
                )
            )
        return q.order_by(ev.c.emailinteractiontime.desc(), ev.c.interactionforemailid.desc())

    if caller.is_admin:
        stmt = newest(None).limit(limit)
    else:
        # Each arm a subquery of its own: SQLite takes no ORDER BY/LIMIT in a bare arm.
        arms = [select(newest(o).limit(limit).subquery()) for o in sorted(caller.owners)]
        merged = union_all(*arms).subquery()
        stmt = (
            select(merged.c.interactionforemailid)
            .order_by(merged.c.emailinteractiontime.desc(), merged.c.interactionforemailid.desc())
            .limit(limit)
        )
    return [row[0] for row in conn.execute(stmt)]


def _folded(
    conn: Connection, caller: Caller, tab: str, start: datetime | None, end: datetime | None
) -> dict[str, int]:
    """{verdict: events} of the events the feed leaves out between `start` and `end`."""
    ev, e = interactionforemail, email
    stmt = (
        select(ev.c.verdict, func.count())
        .select_from(ev.join(e, e.c.activityid == ev.c.emailactivityid))
        .where(email_rule(e, caller), not_(_by_a_person()))
        .group_by(ev.c.verdict)
    )
    if not caller.is_admin:  # the (ownerid, time) index's ranges; the rule still decides
        stmt = stmt.where(ev.c.ownerid.in_(sorted(caller.owners)))
    if tab == "email":
        stmt = stmt.where(ev.c.interactiontype.in_(_EMAIL_KINDS))
    if start is not None:
        stmt = stmt.where(ev.c.emailinteractiontime >= start)
    if end is not None:
        stmt = stmt.where(ev.c.emailinteractiontime < end)
    return {str(verdict): int(n) for verdict, n in conn.execute(stmt)}


def _reached(caller: Caller, kind: str, key: ColumnElement[Any]) -> ColumnElement[bool]:
    """`caller`'s readable mail went to this party."""
    d, e = emaildelivery, email
    return exists(
        select(literal(1))
        .select_from(d.join(e, e.c.activityid == d.c.emailactivityid))
        .where(
            d.c.recipientobjectid == key,
            d.c.recipientobjecttypecode == kind,
            email_rule(e, caller),
        )
    )


def hottest(conn: Connection, caller: Caller, *, limit: int = MAX_LIMIT) -> list[Row]:
    """Contacts, leads and accounts with a score, highest first, that `caller`'s readable
    mail reached (an account: directly or through its contacts); at most `limit`."""
    limit = max(1, min(limit, MAX_LIMIT))
    found: list[Row] = []
    for kind, table, key, name in (
        ("contact", contact, contact.c.contactid, contact.c.fullname),
        ("lead", lead, lead.c.leadid, lead.c.fullname),
        ("account", account, account.c.accountid, account.c.name),
    ):
        stmt = (
            select(
                key.label("id"),
                name.label("name"),
                table.c.emailaddress1.label("address"),
                table.c.engagementscore.label("score"),
                table.c.lasthumanengagementon.label("lastengaged"),
                table.c.humanopencount,
                table.c.humanclickcount,
                table.c.replycount,
                table.c.humandownloadcount,
            )
            .where(table.c.engagementscore > 0)
            .order_by(table.c.engagementscore.desc(), key)
            .limit(limit)
        )
        if not caller.is_admin:
            reach = _reached(caller, kind, key)
            if kind == "account":
                via = select(contact.c.contactid).where(contact.c.parentcustomerid == key)
                reach = or_(reach, _reached_any_contact(caller, via))
            stmt = stmt.where(reach)
        found += [{**r, "kind": kind} for r in conn.execute(stmt).mappings()]
    found.sort(key=lambda r: (-float(r["score"]), str(r["name"] or "")))
    return found[:limit]


def _reached_any_contact(caller: Caller, contacts: Select[Any]) -> ColumnElement[bool]:
    d, e = emaildelivery, email
    return exists(
        select(literal(1))
        .select_from(d.join(e, e.c.activityid == d.c.emailactivityid))
        .where(
            d.c.recipientobjecttypecode == "contact",
            d.c.recipientobjectid.in_(contacts.scalar_subquery()),
            email_rule(e, caller),
        )
    )


_EMAIL_COLUMNS = (
    "activityid",
    "subject",
    "senton",
    "sender",
    "torecipients",
    "ownerid",
    "opencount",
    "humanopencount",
    "machineopencount",
    "forwardopencount",
    "linksclickedcount",
    "humanlinksclickedcount",
    "machinelinksclickedcount",
    "attachmentopencount",
    "humanattachmentopencount",
    "replycount",
    "noiseflag",
    "engagementverdict",
    "lasthumanopenedtime",
)


def sent_mail(
    conn: Connection,
    caller: Caller,
    *,
    since: datetime | None = None,
    engaged: bool = False,
    noise: bool = False,
    unopened_before: datetime | None = None,
    search: str | None = None,
    page: int = 1,
    per_page: int = MAX_LIMIT,
) -> Row:
    """The sent mail `caller` reads, newest first: {"rows": [...], "more": bool}.

    `since`: sent at or after; `engaged`: a person engaged (engagementverdict human);
    `noise`: noise-flagged; `unopened_before`: sent before this and no person opened it;
    `search`: in the subject or the recipients, case-insensitive, wildcards taken
    literally; `page` counts from 1, `per_page` at most 50.
    """
    per_page = max(1, min(per_page, MAX_LIMIT))
    page = max(1, page)
    e = email
    depth = page * per_page + 1  # rows up to the end of the page, and one to tell "more"

    def listed(who: Caller) -> Any:
        stmt = (
            select(*(e.c[name] for name in _EMAIL_COLUMNS))
            .where(email_rule(e, who), e.c.directioncode == true())
            .order_by(e.c.senton.desc(), e.c.activityid.desc())
            .limit(depth)
        )
        if since is not None:
            stmt = stmt.where(e.c.senton >= since)
        if engaged:
            stmt = stmt.where(e.c.engagementverdict == Verdict.HUMAN.value)
        if noise:
            stmt = stmt.where(e.c.noiseflag == true())
        if unopened_before is not None:
            stmt = stmt.where(e.c.senton < unopened_before, e.c.humanopencount == 0)
        if search:
            needle = search.lower()
            stmt = stmt.where(
                or_(
                    func.lower(e.c.subject).contains(needle, autoescape=True),
                    func.lower(e.c.torecipients).contains(needle, autoescape=True),
                )
            )
        return stmt

    if caller.is_admin or not caller.team:
        stmt = listed(caller).offset((page - 1) * per_page).limit(per_page + 1)
    else:
        # A manager: each owner's newest `depth` (the ix_email_owner_senton range each),
        # merged; `ownerid IN (...)` would sort all of the team's mail (bench/ui.py). The
        # union of each owner's rule is the caller's rule (fetchxml/access.py).
        # Each arm is a subquery of its own: SQLite takes no ORDER BY/LIMIT in a bare arm.
        arms = [
            select(listed(Caller(owner, False, caller.time_zone)).subquery())
            for owner in sorted(caller.owners)
        ]
        merged = union_all(*arms).subquery()
        stmt = (
            select(merged)
            .order_by(merged.c.senton.desc(), merged.c.activityid.desc())
            .offset((page - 1) * per_page)
            .limit(per_page + 1)
        )
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    return {"rows": rows[:per_page], "more": len(rows) > per_page}
