"""Lead scores and roll-ups rebuilt from the events: some parties, all, or explained.

- `rescore`: some parties rebuilt from all their events, set-wise (their deliveries, an
  account's through its contacts too, then those deliveries' events that can count);
  what the pipeline falls back to when a delta cannot take a value back;
- `recompute_all`: every party in one streamed pass over the events (`score --recompute`);
- `explain`: one party's score as of now and its top contributing events.

Events that cannot add points or counts (machine or unknown, unless a reply that is not
machine) are filtered out in SQL: engagement.py gives them 0.0 points and no counts.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    or_,
    select,
    union_all,
    update,
)

from ..engagement import PARTY_COUNTERS, PartyTally, Scored, Weights, effective_time, score
from ..model import EventKind, Verdict
from .bulk import executemany, in_ids
from .parties import TABLES, Party
from .retention import add_fold, party_folds
from .schema import contact, emaildelivery, interactionforemail

_CHUNK = 5000  # parties written per executemany by recompute_all (and per progress call)
_ROLLUPS = (*PARTY_COUNTERS, "emailsfollowedcount", "lasthumanengagementon")


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def counting() -> ColumnElement[bool]:
    """Events that can add points or counts: human or forward, or a reply not labelled
    machine."""
    ev = interactionforemail
    return or_(
        ev.c.verdict.in_((Verdict.HUMAN.value, Verdict.FORWARD.value)),
        and_(ev.c.interactiontype == int(EventKind.REPLY), ev.c.verdict != Verdict.MACHINE.value),
    )


def _update(kind: str, now: datetime) -> Any:
    table, key = TABLES[kind]
    return (
        update(table)
        .where(table.c[key] == bindparam("b_key"))
        .values(
            engagementscore=bindparam("b_score"),
            engagementscoreupdatedon=now,
            **{name: bindparam(f"b_{name}") for name in _ROLLUPS},
        )
    )


def _row(party_id: uuid.UUID, tally: PartyTally) -> dict[str, Any]:
    row: dict[str, Any] = {
        "b_key": party_id,
        "b_score": tally.score,
        "b_emailsfollowedcount": tally.followed,
        "b_lasthumanengagementon": tally.last,
    }
    row.update({f"b_{name}": n for name, n in zip(PARTY_COUNTERS, tally.counts, strict=True)})
    return row


def write(conn: Connection, tallies: dict[Party, PartyTally], now: datetime) -> None:
    """Store these parties' scores (valid at `now`) and roll-ups, one executemany per table."""
    for kind in TABLES:
        rows = [_row(party, t) for (k, party), t in tallies.items() if k == kind]
        if rows:
            executemany(conn, _update(kind, now), rows)


def _members(conn: Connection, found: set[Party]) -> tuple[dict[int, list[Party]], set[int]]:
    """Each delivery of these parties (an account's own and its contacts'), with the
    parties it counts for; and which of them were tracked."""
    d = emaildelivery
    members: dict[int, list[Party]] = defaultdict(list)
    tracked: set[int] = set()
    by_kind: dict[str, list[uuid.UUID]] = defaultdict(list)
    for kind, party in found:
        by_kind[kind].append(party)
    for kind, ids in by_kind.items():
        for delivery, party, is_tracked in conn.execute(
            select(d.c.deliveryid, d.c.recipientobjectid, d.c.tracked).where(
                in_ids(conn, d.c.recipientobjectid, ids), d.c.recipientobjecttypecode == kind
            )
        ):
            members[delivery].append((kind, party))
            if is_tracked:
                tracked.add(delivery)
    if by_kind.get("account"):
        for delivery, parent, is_tracked in conn.execute(
            select(d.c.deliveryid, contact.c.parentcustomerid, d.c.tracked)
            .select_from(
                d.join(
                    contact,
                    (d.c.recipientobjecttypecode == "contact")
                    & (d.c.recipientobjectid == contact.c.contactid),
                )
            )
            .where(in_ids(conn, contact.c.parentcustomerid, by_kind["account"]))
        ):
            members[delivery].append(("account", parent))
            if is_tracked:
                tracked.add(delivery)
    return members, tracked


_EVENT_COLUMNS = (
    interactionforemail.c.deliveryid,
    interactionforemail.c.interactiontype,
    interactionforemail.c.verdict,
    interactionforemail.c.emailinteractiontime,
    interactionforemail.c.createdon,
)


def _add(tallies: list[PartyTally], weights: Weights, rows: Iterable[Any]) -> None:
    for _delivery, kind, verdict, at, recorded in rows:
        scored_at = effective_time(at, recorded)
        for tally in tallies:
            tally.add(weights, kind, verdict, at, scored_at)


def rescore(conn: Connection, found: set[Party], weights: Weights, now: datetime) -> int:
    """Rebuild these parties' scores and roll-ups from all their events; returns how many."""
    if not found:
        return 0
    members, tracked = _members(conn, found)
    tallies = {party: PartyTally(now) for party in found}
    for delivery, parties in members.items():
        if delivery in tracked:
            for party in parties:
                tallies[party].followed += 1
    if members:
        rows = conn.execute(
            select(*_EVENT_COLUMNS)
            .where(in_ids(conn, interactionforemail.c.deliveryid, members))
            .where(counting())
        )
        for row in rows:
            _add([tallies[p] for p in members[row[0]]], weights, (row,))
        # What events deleted by retention counted for (store/retention.py).
        for fold in party_folds(conn, members):
            add_fold([tallies[p] for p in members[fold[0]]], weights, fold)
    write(conn, tallies, now)
    return len(found)


def recompute_all(
    engine: Engine,
    weights: Weights,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    *,
    batch: int = 10_000,
) -> int:
    """Every party's score and roll-ups from its events, in one transaction and one
    streamed pass over the events; parties without deliveries are written as zero.

    Memory is a tally per party and a few words per delivery, not per event. `progress`
    is called with the number of parties written, batch by batch. Returns that number.
    """
    d, c = emaildelivery, contact
    with engine.begin() as conn:
        tallies: dict[Party, PartyTally] = {}
        members: dict[int, list[PartyTally]] = {}
        rows = conn.execute(
            select(
                d.c.deliveryid,
                d.c.recipientobjecttypecode,
                d.c.recipientobjectid,
                d.c.tracked,
                c.c.parentcustomerid,
            )
            .select_from(
                d.outerjoin(
                    c,
                    and_(
                        d.c.recipientobjecttypecode == "contact",
                        c.c.contactid == d.c.recipientobjectid,
                    ),
                )
            )
            .where(
                d.c.recipientobjectid.is_not(None), d.c.recipientobjecttypecode.in_(list(TABLES))
            )
        )
        for delivery, kind, party, is_tracked, parent in rows:
            owners = [(kind, party)] + ([("account", parent)] if parent is not None else [])
            slots = [tallies.setdefault(o, PartyTally(now)) for o in owners]
            members[delivery] = slots
            if is_tracked:
                for tally in slots:
                    tally.followed += 1
        result = conn.execute(
            select(*_EVENT_COLUMNS).where(counting()).execution_options(yield_per=batch)
        )
        for part in result.partitions():
            for row in part:
                counted = members.get(row[0])
                if counted:
                    _add(counted, weights, (row,))
        for fold in party_folds(conn):  # what events deleted by retention counted for
            counted = members.get(fold[0])
            if counted:
                add_fold(counted, weights, fold)
        done = 0
        for kind, (table, key) in TABLES.items():
            ids = conn.execute(select(table.c[key])).scalars().all()
            for chunk in _chunks(list(ids)):
                out = {(kind, p): tallies.get((kind, p)) or PartyTally(now) for p in chunk}
                write(conn, out, now)
                done += len(chunk)
                if progress:
                    progress(len(chunk))
        return done


def explain(
    conn: Connection, party: Party, weights: Weights, now: datetime
) -> tuple[float, list[Scored]]:
    """The party's score as of `now` and its top contributing events (read-only)."""
    d, ev = emaildelivery, interactionforemail
    kind, party_id = party

    def events_of(who: ColumnElement[bool]) -> Select[Any]:
        return (
            select(
                ev.c.hitid,
                ev.c.interactiontype,
                ev.c.verdict,
                ev.c.emailinteractiontime,
                ev.c.createdon,
            )
            .select_from(d.join(ev, ev.c.deliveryid == d.c.deliveryid))
            .where(who)
            .where(counting())
        )

    own = events_of((d.c.recipientobjecttypecode == kind) & (d.c.recipientobjectid == party_id))
    stmt: Any = own
    if kind == "account":
        # UNION ALL of two index lookups, not one OR: on PostgreSQL the OR ... IN (subquery)
        # form was planned as a hash join over every event (2.5-3.3 s at 10M events).
        members = select(contact.c.contactid).where(contact.c.parentcustomerid == party_id)
        stmt = union_all(
            own,
            events_of(
                (d.c.recipientobjecttypecode == "contact") & d.c.recipientobjectid.in_(members)
            ),
        )
    events = [
        (key, EventKind(k), Verdict(v), effective_time(at, recorded))
        for key, k, v, at, recorded in conn.execute(stmt)
    ]
    total, best = score(weights, events, now)
    copies, _tracked = _members(conn, {party})
    if copies:  # points of events deleted by retention (store/retention.py)
        folded = PartyTally(now)
        for fold in party_folds(conn, copies):
            add_fold([folded], weights, fold)
        total += folded.score
    return total, best
