"""Roll-ups the panel's charts read (issue 12), kept by delta like the email counters.

- `engagementhour`: events per (owner, UTC hour, verdict);
- `environmentday`: events by people and by machines per (owner, UTC day the copy was
  sent, the recipient's mail environment);
- `emaildelivery.personevents` / `machineevents` / `mailenvironment`: one copy's, so
  that when its environment changes its events move from the old one to the new.

Each owner's rows have twins under `EVERYONE` (the nil UUID), the sum over every owner,
so an admin's month is a few thousand rows too, not every owner's. pipeline/tally.py and
pipeline/timelines.py call `add` and `move_environments` in the events' transaction;
additions are upserts (`events = events + delta`), so two writers add up, nothing is
read first, and rows are taken in key order.

    add(conn, changes)                 add event deltas
    move_environments(conn, moves)     copies whose environment changed
    per_hour(conn, caller, since)      (hour, verdict, events) of a viewer's mail
    by_environment(conn, caller, day)  (environment, people, machines) of their copies
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..fetchxml.access import Caller
from .bulk import executemany, in_ids
from .schema import email, emaildelivery, engagementhour, environmentday

EVERYONE = uuid.UUID(int=0)  # the owner whose rows sum every owner's
PEOPLE = frozenset({"human", "forward"})
MACHINES = "machine"


@dataclass(frozen=True, slots=True)
class Delta:
    """One event leaving (`step` -1) or joining (+1) a verdict on one copy."""

    delivery_id: int
    owner: uuid.UUID | None
    sent_at: datetime | None
    at: datetime
    verdict: str
    step: int


def _upsert(conn: Connection, table: Any, keys: list[str], counters: list[str]) -> Any:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.c[name] + stmt.excluded[name] for name in counters},
    )


def _sorted(rows: dict[tuple[Any, ...], Any]) -> list[tuple[tuple[Any, ...], Any]]:
    return sorted(rows.items(), key=lambda kv: (kv[0][0].bytes, *kv[0][1:]))


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


_ADD_COPY = (
    update(emaildelivery)
    .where(emaildelivery.c.deliveryid == bindparam("b_id"))
    .values(
        personevents=emaildelivery.c.personevents + bindparam("b_people"),
        machineevents=emaildelivery.c.machineevents + bindparam("b_machines"),
    )
)
_SET_ENVIRONMENT = (
    update(emaildelivery)
    .where(emaildelivery.c.deliveryid == bindparam("b_id"))
    .values(mailenvironment=bindparam("b_env"))
)


def _add_days(conn: Connection, days: dict[tuple[Any, ...], list[int]]) -> None:
    rows = [
        {"ownerid": o, "sentday": d, "environment": e, "personevents": p, "machineevents": m}
        for (o, d, e), (p, m) in _sorted(days)
        if p or m
    ]
    if rows:
        stmt = _upsert(
            conn,
            environmentday,
            ["ownerid", "sentday", "environment"],
            ["personevents", "machineevents"],
        )
        executemany(conn, stmt, rows)


def add(conn: Connection, deltas: Iterable[Delta]) -> None:
    """Add these event deltas to owners' hours, copies' counts and their sent days'
    environments (a copy's environment as stored now: `move_environments` first)."""
    hours: dict[tuple[Any, ...], int] = defaultdict(int)
    copies: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    placed: dict[int, tuple[uuid.UUID, date]] = {}
    for d in deltas:
        hour = d.at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if d.owner is not None:
            hours[(d.owner, hour, d.verdict)] += d.step
            hours[(EVERYONE, hour, d.verdict)] += d.step
        column = 0 if d.verdict in PEOPLE else 1 if d.verdict == MACHINES else None
        if column is not None:
            copies[d.delivery_id][column] += d.step
            if d.owner is not None and d.sent_at is not None:
                placed[d.delivery_id] = (d.owner, _day(d.sent_at))
    rows = [
        {"ownerid": o, "hourstart": h, "verdict": v, "events": n}
        for (o, h, v), n in _sorted(hours)
        if n
    ]
    if rows:
        stmt = _upsert(conn, engagementhour, ["ownerid", "hourstart", "verdict"], ["events"])
        executemany(conn, stmt, rows)
    changed = {k: v for k, v in copies.items() if v[0] or v[1]}
    if not changed:
        return
    executemany(
        conn,
        _ADD_COPY,
        [{"b_id": k, "b_people": p, "b_machines": m} for k, (p, m) in sorted(changed.items())],
    )
    environments = dict(
        conn.execute(
            select(emaildelivery.c.deliveryid, emaildelivery.c.mailenvironment).where(
                in_ids(conn, emaildelivery.c.deliveryid, placed)
            )
        ).all()
    )
    days: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for delivery, (owner, day) in placed.items():
        env = environments.get(delivery) or ""
        people, machines = changed.get(delivery, (0, 0))
        for who in (owner, EVERYONE):
            days[(who, day, env)][0] += people
            days[(who, day, env)][1] += machines
    _add_days(conn, days)


def move_environments(conn: Connection, moves: Mapping[int, str | None]) -> None:
    """Set these copies' environments (delivery id -> key or None), moving the events
    already counted on each from its old environment's sent day to the new one's."""
    if not moves:
        return
    d = emaildelivery
    days: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for delivery, old, people, machines, owner, sent in conn.execute(
        select(
            d.c.deliveryid,
            d.c.mailenvironment,
            d.c.personevents,
            d.c.machineevents,
            email.c.ownerid,
            email.c.senton,
        )
        .select_from(d.join(email, email.c.activityid == d.c.emailactivityid))
        .where(in_ids(conn, d.c.deliveryid, moves))
    ):
        if not (people or machines) or sent is None:
            continue
        day = _day(sent)
        for who in (owner, EVERYONE):
            for env, step in ((old or "", -1), (moves[delivery] or "", 1)):
                days[(who, day, env)][0] += step * people
                days[(who, day, env)][1] += step * machines
    _add_days(conn, days)
    executemany(
        conn,
        _SET_ENVIRONMENT,
        [{"b_id": k, "b_env": v} for k, v in sorted(moves.items())],
    )


def _owners(caller: Caller) -> list[uuid.UUID]:
    return [EVERYONE] if caller.is_admin else sorted(caller.owners)


def per_hour(conn: Connection, caller: Caller, since: datetime) -> list[tuple[datetime, str, int]]:
    """(hour start, verdict, events) of the mail `caller` may read, from `since`."""
    h = engagementhour
    stmt = (
        select(h.c.hourstart, h.c.verdict, func.sum(h.c.events))
        .where(h.c.ownerid.in_(_owners(caller)), h.c.hourstart >= since)
        .group_by(h.c.hourstart, h.c.verdict)
    )
    return [(at, verdict, int(n)) for at, verdict, n in conn.execute(stmt)]


def by_environment(
    conn: Connection, caller: Caller, first_day: date
) -> list[tuple[str | None, int, int]]:
    """(environment or None, events by people, by machines) on the copies of the mail
    `caller` may read sent from `first_day` (UTC) on."""
    e = environmentday
    stmt = (
        select(e.c.environment, func.sum(e.c.personevents), func.sum(e.c.machineevents))
        .where(e.c.ownerid.in_(_owners(caller)), e.c.sentday >= first_day)
        .group_by(e.c.environment)
    )
    return [
        (env or None, int(p or 0), int(m or 0))
        for env, p, m in conn.execute(stmt)
        if (p or 0) + (m or 0) > 0
    ]


def per_owner(
    conn: Connection, owners: Iterable[uuid.UUID], since: datetime
) -> dict[uuid.UUID, tuple[int, int]]:
    """{owner: (events by people, by machines)} from `since`, for these owners (a
    manager's team: a few owners' hours, not everyone's)."""
    h = engagementhour
    wanted = sorted(set(owners) - {EVERYONE})
    if not wanted:
        return {}
    found: dict[uuid.UUID, list[int]] = {o: [0, 0] for o in wanted}
    for owner, verdict, n in conn.execute(
        select(h.c.ownerid, h.c.verdict, func.sum(h.c.events))
        .where(h.c.ownerid.in_(wanted), h.c.hourstart >= since)
        .group_by(h.c.ownerid, h.c.verdict)
    ):
        if verdict in PEOPLE:
            found[owner][0] += int(n)
        elif verdict == MACHINES:
            found[owner][1] += int(n)
    return {o: (p, m) for o, (p, m) in found.items()}
