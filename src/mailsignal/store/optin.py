"""The opt-in gap (issue 13, opt-in rollout): users who have not opted in to engagement
tracking, and how much of their mail went out untracked for that reason.

One function serves `mailsignal users gaps` and the panel's admin page. An email counts
when it was sent in the window and at least one of its deliveries carries the reason
`instrument.prepare.decide` gives for a sender without the opt-in
(`sender.not_opted_in`), whatever other reasons it has as well (the org switch off, a
recipient's do-not-track): had the sender opted in, the others alone might not have
stopped it. Emails are counted, not recipients. Mail untracked for other reasons only
is not part of the gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, exists, func, select

from .schema import email, emaildelivery, systemuser, usersettings

Row = dict[str, Any]

# The reason string instrument.prepare.decide writes for a sender without the opt-in.
OPT_IN_REASON = "sender.not_opted_in"
MAX_DAYS = 3660


def _untracked_for_opt_in() -> Any:
    """A delivery of the email untracked (also) because its sender had not opted in.
    `untrackedreasons` is a JSON list of fixed reason strings, stored compactly on both
    backends; the quoted string matches one whole element."""
    return exists().where(
        emaildelivery.c.emailactivityid == email.c.activityid,
        cast(emaildelivery.c.untrackedreasons, String).like(f'%"{OPT_IN_REASON}"%'),
    )


def untracked_counts(
    conn: Connection, since: datetime, until: datetime, owners: list[Any] | None = None
) -> dict[Any, int]:
    """{systemuserid: emails sent in [since, until) untracked for the opt-in reason}."""
    stmt = (
        select(email.c.ownerid, func.count())
        .where(email.c.senton >= since, email.c.senton < until, _untracked_for_opt_in())
        .group_by(email.c.ownerid)
    )
    if owners is not None:
        stmt = stmt.where(email.c.ownerid.in_(owners))
    return {owner: int(n) for owner, n in conn.execute(stmt)}


def gaps(conn: Connection, since: datetime, until: datetime) -> list[Row]:
    """Every user without the opt-in (enabled or not), with `untracked`: their emails sent
    in [since, until) untracked for that reason; most untracked first, then by address."""
    people = [
        dict(r)
        for r in conn.execute(
            select(
                systemuser.c.systemuserid,
                systemuser.c.internalemailaddress,
                systemuser.c.fullname,
                systemuser.c.isdisabled,
            )
            .join(usersettings, usersettings.c.systemuserid == systemuser.c.systemuserid)
            .where(usersettings.c.emailengagementoptin.is_(False))
        ).mappings()
    ]
    counts = untracked_counts(conn, since, until, [p["systemuserid"] for p in people])
    for person in people:
        person["untracked"] = counts.get(person["systemuserid"], 0)
    people.sort(key=lambda p: (-p["untracked"], p["internalemailaddress"]))
    return people
