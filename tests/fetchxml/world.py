"""The fixed world FetchXML tests query, on SQLite and PostgreSQL (conftest.py builds it).

NOW is Wednesday 2026-03-11 12:30 UTC: 05:30 Wednesday in Los Angeles (PDT since
Sunday 8 March) and 01:30 *Thursday* 12 March in Auckland (NZDT, UTC+13). The times
below sit on either side of those midnights, of the Sunday week boundary, of the
month and of the year, so the same query answers differently per time zone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert

from mailsignal.fetchxml import Caller
from mailsignal.store import schema

NOW = datetime(2026, 3, 11, 12, 30, tzinfo=UTC)


def uid(prefix: str, n: int) -> uuid.UUID:
    """Readable fixed ids: uid("e", 3) = e0000000-0000-0000-0000-000000000003."""
    return uuid.UUID(prefix.ljust(8, "0") + f"-0000-0000-0000-{n:012d}")


def t(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


ADMIN, REP_LA, REP_AKL = uid("5e", 1), uid("5e", 2), uid("5e", 3)
USERS = {
    # name: (id, fullname, role, time zone)
    "admin": (ADMIN, "Avery Admin", "admin", "UTC"),
    "rep_la": (REP_LA, "Lee Los Angeles", "rep", "America/Los_Angeles"),
    "rep_akl": (REP_AKL, "Kiri Auckland", "rep", "Pacific/Auckland"),
}
ACCOUNTS = [(uid("a", 1), "Northwind Traders"), (uid("a", 2), "Contoso [EU] Ltd")]
CONTACTS = [
    # id, fullname, email, parent account, followemail
    (uid("c", 1), "Ada Lovelace", "ada@northwind.test", uid("a", 1), True),
    (uid("c", 2), "Grace Hopper", "grace@contoso.test", uid("a", 2), True),
    (uid("c", 3), "Alan Turing", None, None, False),
]
LEADS = [(uid("1ead", 1), "Katherine Johnson", "NASA"), (uid("1ead", 2), "Dorothy Vaughan", None)]
C1, C2, L1, L2, A1, A2 = (
    uid("c", 1),
    uid("c", 2),
    uid("1ead", 1),
    uid("1ead", 2),
    uid("a", 1),
    uid("a", 2),
)
# n, owner, subject, outgoing, senton, opens, last opened, regarding (id, type), clicks
EMAILS: list[tuple[Any, ...]] = [
    (
        1,
        REP_LA,
        "Pricing follow-up",
        True,
        "2026-03-02T15:00",
        5,
        "2026-03-10T18:00",
        (C1, "contact"),
        2,
    ),
    (
        2,
        REP_LA,
        "Quarterly review",
        True,
        "2026-03-08T00:30",
        1,
        "2026-03-11T06:00",
        (C2, "contact"),
        0,
    ),
    (
        3,
        REP_LA,
        "Re: 100% discount?",
        True,
        "2026-03-07T23:00",
        25,
        "2026-03-11T09:00",
        (L1, "lead"),
        4,
    ),
    (
        4,
        REP_LA,
        "Contract_v2 attached",
        True,
        "2026-03-11T08:00",
        3,
        "2026-03-11T12:00",
        (A1, "account"),
        1,
    ),
    (5, REP_LA, "Inbound question", False, "2026-03-01T10:00", 0, None, (C1, "contact"), 0),
    (6, REP_LA, "Future-dated open", True, "2026-02-20T12:00", 2, "2026-03-11T13:00", None, 0),
    (
        7,
        REP_AKL,
        "Kia ora from Auckland",
        True,
        "2026-03-11T11:30",
        4,
        "2026-03-12T08:00",
        (C2, "contact"),
        1,
    ),
    (
        8,
        REP_AKL,
        "[EXT] Renewal",
        True,
        "2026-01-15T09:00",
        12,
        "2026-02-28T23:30",
        (A2, "account"),
        3,
    ),
    (
        9,
        REP_AKL,
        "Old newsletter",
        True,
        "2025-12-31T23:00",
        2,
        "2025-06-01T12:00",
        (L2, "lead"),
        0,
    ),
    (10, ADMIN, "Admin broadcast", True, "2026-03-09T12:00", 7, "2026-03-05T12:00", None, 0),
]
# n, email n, type (0 open 1 click 2 attachment 3 reply), time, verdict
INTERACTIONS = [
    (1, 1, 0, "2026-03-10T18:00", "human"),
    (2, 1, 1, "2026-03-10T18:05", "human"),
    (3, 2, 0, "2026-03-11T06:00", "machine"),
    (4, 4, 2, "2026-03-11T12:00", "human"),
    (5, 7, 0, "2026-03-12T08:00", "human"),
    (6, 8, 0, "2026-02-28T23:30", "machine"),
    (7, 8, 3, "2026-03-01T00:00", "human"),
    (8, 10, 0, "2026-03-05T12:00", "unknown"),
]


def populate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(schema.organization).values(organizationid=uid("0", 1), name="MailSignal Demo")
        )
        for key, (user_id, fullname, role, zone) in USERS.items():
            conn.execute(
                insert(schema.systemuser).values(
                    systemuserid=user_id,
                    fullname=fullname,
                    accessrole=role,
                    internalemailaddress=f"{key}@northwind.test",
                )
            )
            conn.execute(
                insert(schema.usersettings).values(
                    systemuserid=user_id, timezonename=zone, emailengagementoptin=role == "rep"
                )
            )
        for account_id, name in ACCOUNTS:
            conn.execute(insert(schema.account).values(accountid=account_id, name=name))
        for contact_id, name, address, parent, follow in CONTACTS:
            conn.execute(
                insert(schema.contact).values(
                    contactid=contact_id,
                    fullname=name,
                    emailaddress1=address,
                    parentcustomerid=parent,
                    followemail=follow,
                )
            )
        for lead_id, name, company in LEADS:
            conn.execute(
                insert(schema.lead).values(leadid=lead_id, fullname=name, companyname=company)
            )
        for n, owner, subject, out, sent, opens, last, regarding, clicks in EMAILS:
            conn.execute(
                insert(schema.email).values(
                    activityid=uid("e", n),
                    ownerid=owner,
                    subject=subject,
                    directioncode=out,
                    senton=t(sent),
                    opencount=opens,
                    lastopenedtime=t(last) if last else None,
                    regardingobjectid=regarding[0] if regarding else None,
                    regardingobjecttypecode=regarding[1] if regarding else None,
                    linksclickedcount=clicks,
                    sender="rep@northwind.test",
                    createdon=t(sent),
                    modifiedon=t(sent),
                )
            )
            conn.execute(
                insert(schema.emaildelivery).values(
                    deliveryid=n,
                    emailactivityid=uid("e", n),
                    emailaddress=f"to{n}@example.test",
                    tracked=True,
                )
            )
        for n, email_n, kind, when, verdict in INTERACTIONS:
            conn.execute(
                insert(schema.interactionforemail).values(
                    interactionforemailid=uid("f", n),
                    emailactivityid=uid("e", email_n),
                    deliveryid=email_n,
                    interactiontype=kind,
                    emailinteractiontime=t(when),
                    emailaddress=f"to{email_n}@example.test",
                    verdict=verdict,
                    hitid=f"h{n}",
                )
            )


def caller(name: str, zone: str | None = None) -> Caller:
    user_id, _, role, stored = USERS[name]
    return Caller(user_id, role == "admin", zone or stored)
