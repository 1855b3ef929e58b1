"""The overview (`GET /overview`): a viewer's month in two charts (issue 12).

- Events per day across the mail the viewer may read, people's under machines', days
  in the viewer's time zone: how much of the raw traffic was ever a person.
- Machine share by the recipients' mail environment (environments.py): mail into a
  Microsoft 365 tenant or behind Proofpoint is mostly fetched by machines; mail to a
  Gmail address mostly by people.

Both read roll-ups kept at ingest (store/rollups.py), not the events, so the page costs
the same at 10M events as at 10 (bench/ui.py). `period` is 7, 30 or 90 days; a manager
or an admin may narrow it to one `sender`, as on “Emails”. A manager also sees their
team rep by rep, each row leading to that rep's overview.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...environments import name as environment_name
from ...fetchxml import Caller
from ...store import rollups
from . import base, charts
from .emails import senders_of

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]

PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days"}


def _days(
    hours: list[tuple[datetime, str, int]], first: date, last: date, zone: Any
) -> list[tuple[date, int, int]]:
    """(local day, by people, by machines) for every day from `first` to `last`."""
    people: dict[date, int] = defaultdict(int)
    machines: dict[date, int] = defaultdict(int)
    for at, verdict, n in hours:
        day = at.astimezone(zone).date()
        if verdict in rollups.PEOPLE:
            people[day] += n
        elif verdict == rollups.MACHINES:
            machines[day] += n
    span = (last - first).days + 1
    days = [first + timedelta(days=i) for i in range(span)]
    return [(d, people[d], machines[d]) for d in days]


@router.get("/overview", response_class=HTMLResponse)
def overview_page(
    request: Request, who: Viewer, period: str | None = None, sender: str | None = None
) -> HTMLResponse:
    chosen = period or "30"
    with base.engine(request).connect() as conn:
        senders = senders_of(conn, who.caller)
    chosen_sender = (sender or "").strip().lower()
    if chosen not in PERIODS or (chosen_sender and chosen_sender not in senders):
        message = (
            "“period” must be 7, 30 or 90."
            if chosen not in PERIODS
            else "“sender” must be one of the people whose mail you may read."
        )
        return base.render(
            request, "error.html", who, 400, heading="That filter does not work", message=message
        )
    zone = who.zone
    today = datetime.now(UTC).astimezone(zone).date()
    first = today - timedelta(days=int(chosen) - 1)
    # The first local midnight, as the UTC hour that holds it (zones off the hour count
    # their first half hour in the day before: docs/ui.md).
    since = datetime.combine(first, time(), zone).astimezone(UTC).replace(minute=0)
    reader = who.caller
    if chosen_sender:  # one of the caller's owners: a narrower rule, never a wider one
        reader = Caller(senders[chosen_sender][0], False, who.caller.time_zone)
    with base.engine(request).connect() as conn:
        hours = rollups.per_hour(conn, reader, since)
        environments = rollups.by_environment(conn, reader, first)
        # A manager's team, rep by rep (an admin narrows with the Sender filter instead:
        # every owner's month is too many rows to sum on each view).
        team = (
            rollups.per_owner(conn, who.caller.owners, since)
            if who.caller.team and not who.caller.is_admin and not chosen_sender
            else {}
        )
    days = _days(hours, first, today, zone)
    people = sum(p for _d, p, _m in days)
    machines = sum(m for _d, _p, m in days)
    labelled = rollups.PEOPLE | {rollups.MACHINES}
    unlabelled = sum(n for _at, verdict, n in hours if verdict not in labelled)
    ranked = sorted(
        ((environment_name(env), p, m) for env, p, m in environments),
        key=lambda r: (-(r[1] + r[2]), r[0]),
    )
    per_day = charts.stacked_bars(
        days,
        title=f"Events per day, {PERIODS[chosen].lower()}",
        desc=(
            "Opens, clicks, downloads and replies on your mail each day, in your time zone: "
            "people's at the bottom of each bar, machines' (security scanners, privacy "
            "proxies) on top."
        ),
        ident="per-day",
        empty="No events in this period, so there is nothing to chart.",
    )
    share = charts.share_bars(
        ranked,
        title="Machine share by recipient mail environment",
        desc=(
            "For the copies sent in this period (days in UTC), grouped by what the "
            "recipient's mail sits behind (a consumer provider, or the gateway or proxy "
            "seen fetching it): the share of their events made by machines."
        ),
        ident="environments",
        empty="No copy sent in this period has events yet.",
        group_name="Mail environment",
    )
    reps = [
        {
            "name": name,
            "address": address,
            "people": team[user_id][0],
            "machines": team[user_id][1],
            "share": (
                f"{team[user_id][1] / sum(team[user_id]):.0%}" if sum(team[user_id]) else "–"
            ),
        }
        for address, (user_id, name) in senders.items()
        if user_id in team
    ]
    return base.render(
        request,
        "overview.html",
        who,
        periods=PERIODS,
        period=chosen,
        senders=senders,
        sender=chosen_sender,
        people=people,
        machines=machines,
        unlabelled=unlabelled,
        per_day=per_day,
        share=share,
        reps=reps,
    )
