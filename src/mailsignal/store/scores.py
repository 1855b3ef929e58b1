"""Lead scores and roll-ups on contacts, leads and accounts, kept in step with events.

`rescore_for_emails` runs wherever counters are recounted (ingest, reply sync, sweeps,
recompute), so a score can never drift from the events it is made of. It costs a fixed
number of statements whatever the number of touched parties (`rescore_parties`: their
deliveries, those deliveries' events, one executemany per table), which is the
O(1)-queries update a single new event needs; the arithmetic is scoring.py's.
`rescore_party` (one party, with its top contributing events) serves `score --explain`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    or_,
    select,
    union_all,
    update,
)

from ..model import EventKind, Verdict
from ..scoring import Scored, Weights, decay, score
from ..settings import Settings
from .bulk import executemany
from .schema import account, contact, emaildelivery, interactionforemail, lead

TABLES: dict[str, tuple[Table, str]] = {
    "contact": (contact, "contactid"),
    "lead": (lead, "leadid"),
    "account": (account, "accountid"),
}


def weights_of(settings: Settings) -> Weights:
    return Weights(
        open=settings.score_open,
        click=settings.score_click,
        reply=settings.score_reply,
        attachment=settings.score_attachment,
        forward_fraction=settings.score_forward_fraction,
        half_life_days=settings.score_half_life_days,
    )


def parties_of_emails(
    conn: Connection, email_ids: Iterable[uuid.UUID]
) -> set[tuple[str, uuid.UUID]]:
    """The contacts/leads/accounts that received these emails, plus contacts' accounts."""
    ids = list(set(email_ids))
    if not ids:
        return set()
    found: set[tuple[str, uuid.UUID]] = set()
    for kind, party in conn.execute(
        select(emaildelivery.c.recipientobjecttypecode, emaildelivery.c.recipientobjectid)
        .distinct()
        .where(
            emaildelivery.c.emailactivityid.in_(ids), emaildelivery.c.recipientobjectid.is_not(None)
        )
    ):
        found.add((kind, party))
    contacts = [p for k, p in found if k == "contact"]
    if contacts:
        for parent in conn.execute(
            select(contact.c.parentcustomerid).where(
                contact.c.contactid.in_(contacts), contact.c.parentcustomerid.is_not(None)
            )
        ).scalars():
            found.add(("account", parent))
    return found


def _party_events(conn: Connection, kind: str, party: uuid.UUID) -> list[Any]:
    d, ev = emaildelivery, interactionforemail

    def events_of(who: ColumnElement[bool]) -> Select[Any]:
        return (
            select(
                ev.c.hitid,
                ev.c.interactiontype,
                ev.c.verdict,
                ev.c.emailinteractiontime,
                d.c.deliveryid,
                d.c.tracked,
            )
            .select_from(d.outerjoin(ev, ev.c.deliveryid == d.c.deliveryid))
            .where(who)
        )

    own = events_of((d.c.recipientobjecttypecode == kind) & (d.c.recipientobjectid == party))
    if kind != "account":
        return list(conn.execute(own))
    # UNION ALL of two index lookups, not one OR: on PostgreSQL the OR ... IN (subquery)
    # form was planned as a hash join over every event (2.5-3.3 s at 10M events).
    members = select(contact.c.contactid).where(contact.c.parentcustomerid == party)
    via_contacts = events_of(
        (d.c.recipientobjecttypecode == "contact") & d.c.recipientobjectid.in_(members)
    )
    return list(conn.execute(union_all(own, via_contacts)))


def rescore_party(
    conn: Connection, kind: str, party: uuid.UUID, weights: Weights, now: datetime
) -> tuple[float, list[Scored]]:
    rows = _party_events(conn, kind, party)
    events = [
        (r.hitid, EventKind(r.interactiontype), Verdict(r.verdict), r.emailinteractiontime)
        for r in rows
        if r.hitid is not None
    ]
    total, top = score(weights, events, now)
    counts: dict[str, Any] = defaultdict(int)
    counts["emailsfollowedcount"] = len({r.deliveryid for r in rows if r.tracked})
    last: datetime | None = None
    for _key, ekind, verdict, at in events:
        if ekind is EventKind.REPLY and verdict is not Verdict.MACHINE:
            counts["replycount"] += 1
        elif verdict is Verdict.HUMAN:
            column = {
                EventKind.OPEN: "humanopencount",
                EventKind.CLICK: "humanclickcount",
                EventKind.ATTACHMENT: "humandownloadcount",
            }.get(ekind)
            if column:
                counts[column] += 1
        else:
            continue
        last = at if last is None or at > last else last
    table, key = TABLES[kind]
    conn.execute(
        update(table)
        .where(table.c[key] == party)
        .values(
            engagementscore=round(total, 6),
            engagementscoreupdatedon=now,
            humanopencount=counts["humanopencount"],
            humanclickcount=counts["humanclickcount"],
            replycount=counts["replycount"],
            humandownloadcount=counts["humandownloadcount"],
            emailsfollowedcount=counts["emailsfollowedcount"],
            lasthumanengagementon=last,
        )
    )
    return total, top


# Roll-up columns, in the order of the counters kept per party.
COUNTED = ("humanopencount", "humanclickcount", "replycount", "humandownloadcount")
_HUMAN_COLUMN = {EventKind.OPEN: 0, EventKind.CLICK: 1, EventKind.ATTACHMENT: 3}
_REPLY = 2
Party = tuple[str, uuid.UUID]


class Parties:
    """Per-party accumulators, indexed by a slot number."""

    def __init__(self) -> None:
        self.slot: dict[Party, int] = {}
        self.score: list[float] = []
        self.counts: list[list[int]] = [[] for _ in COUNTED]
        self.followed: list[int] = []
        self.last: list[datetime | None] = []

    def of(self, party: Party) -> int:
        found = self.slot.get(party)
        if found is None:
            found = self.slot[party] = len(self.score)
            self.score.append(0.0)
            for column in self.counts:
                column.append(0)
            self.followed.append(0)
            self.last.append(None)
        return found


def _spec(weights: Weights, kind: int, verdict: str) -> tuple[float, int]:
    """(points weight, counter index or -1) of an event, as `rescore_party` counts it."""
    ekind, ever = EventKind(kind), Verdict(verdict)
    if ekind is EventKind.REPLY and ever is not Verdict.MACHINE:
        column = _REPLY
    elif ever is Verdict.HUMAN:
        column = _HUMAN_COLUMN.get(ekind, -1)
    else:
        column = -1
    return weights.weight(ekind, ever), column


def relevant_events() -> ColumnElement[bool]:
    """Events that can add points or counts: human or forward, or a reply not labelled
    machine. Machine and unknown events add 0.0 points and no counts."""
    ev = interactionforemail
    return or_(
        ev.c.verdict.in_((Verdict.HUMAN.value, Verdict.FORWARD.value)),
        and_(ev.c.interactiontype == int(EventKind.REPLY), ev.c.verdict != Verdict.MACHINE.value),
    )


def accumulate(
    rows: Iterable[Any],
    deliveries: dict[int, tuple[int, ...]],
    parties: Parties,
    weights: Weights,
    now: datetime,
    specs: dict[tuple[int, str], tuple[float, int]],
) -> None:
    """Adds (deliveryid, interactiontype, verdict, time) rows to their parties' sums."""
    score, counts, last = parties.score, parties.counts, parties.last
    for delivery, kind, verdict, at in rows:
        slots = deliveries.get(delivery)
        if slots is None:
            continue
        spec = specs.get((kind, verdict))
        if spec is None:
            spec = specs[(kind, verdict)] = _spec(weights, kind, verdict)
        weight, column = spec
        if weight:
            # scoring.contribution: weight x decay(age), the same float operations.
            points = weight * decay(weights, (now - at).total_seconds())
            for s in slots:
                score[s] += points
        if column >= 0:
            counter = counts[column]
            for s in slots:
                counter[s] += 1
                seen = last[s]
                if seen is None or at > seen:
                    last[s] = at


def rollup_update(table: Table, key: str, now: datetime) -> Any:
    """UPDATE of one party row's score and roll-ups, from b_key, b_score, b_followed,
    b_last and b_<counted> parameters (shared by ingest's and the bulk recompute)."""
    return (
        update(table)
        .where(table.c[key] == bindparam("b_key"))
        .values(
            engagementscore=bindparam("b_score"),
            engagementscoreupdatedon=now,
            emailsfollowedcount=bindparam("b_followed"),
            lasthumanengagementon=bindparam("b_last"),
            **{name: bindparam(f"b_{name}") for name in COUNTED},
        )
    )


_CHUNK = 5000  # ids per IN list: far below SQLite's and PostgreSQL's bind limits


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def rescore_parties(conn: Connection, found: set[Party], weights: Weights, now: datetime) -> int:
    """`rescore_party` for many parties at once, in a fixed number of statements.

    Each party's deliveries (an account's include its contacts'), then the events of
    those deliveries that can matter, are read with IN lists; scores and roll-ups are
    summed in memory (as `recompute_scores_bulk` does) and written with one executemany
    per table. Ingest rescores thousands of parties a batch: one round of queries per
    party was most of a batch's recount.
    """
    if not found:
        return 0
    d = emaildelivery
    parties = Parties()
    for each in sorted(found, key=lambda p: (p[0], p[1].bytes)):
        parties.of(each)
    members: dict[int, set[int]] = defaultdict(set)  # delivery -> slots
    by_kind: dict[str, list[uuid.UUID]] = defaultdict(list)
    for kind, party in found:
        by_kind[kind].append(party)
    tracked: dict[int, bool] = {}
    for kind, ids in by_kind.items():
        for chunk in _chunks(ids):
            for delivery, party, is_tracked in conn.execute(
                select(d.c.deliveryid, d.c.recipientobjectid, d.c.tracked).where(
                    d.c.recipientobjectid.in_(chunk), d.c.recipientobjecttypecode == kind
                )
            ):
                members[delivery].add(parties.slot[(kind, party)])
                tracked[delivery] = bool(is_tracked)
    for chunk in _chunks(by_kind.get("account", [])):
        for delivery, parent, is_tracked in conn.execute(
            select(d.c.deliveryid, contact.c.parentcustomerid, d.c.tracked)
            .select_from(
                d.join(
                    contact,
                    (d.c.recipientobjecttypecode == "contact")
                    & (d.c.recipientobjectid == contact.c.contactid),
                )
            )
            .where(contact.c.parentcustomerid.in_(chunk))
        ):
            members[delivery].add(parties.slot[("account", parent)])
            tracked[delivery] = bool(is_tracked)
    deliveries = {delivery: tuple(slots) for delivery, slots in members.items()}
    for delivery, slots in deliveries.items():
        if tracked[delivery]:
            for s in slots:
                parties.followed[s] += 1
    ev = interactionforemail
    specs: dict[tuple[int, str], tuple[float, int]] = {}
    for chunk in _chunks(sorted(deliveries)):
        rows = conn.execute(
            select(ev.c.deliveryid, ev.c.interactiontype, ev.c.verdict, ev.c.emailinteractiontime)
            .where(ev.c.deliveryid.in_(chunk))
            .where(relevant_events())
        )
        accumulate(rows, deliveries, parties, weights, now, specs)
    for kind, (table, key) in TABLES.items():
        rows_out = [
            {
                "b_key": party,
                "b_score": round(parties.score[s], 6),
                "b_followed": parties.followed[s],
                "b_last": parties.last[s],
                **{f"b_{name}": parties.counts[i][s] for i, name in enumerate(COUNTED)},
            }
            for (pkind, party), s in parties.slot.items()
            if pkind == kind
        ]
        if rows_out:
            executemany(conn, rollup_update(table, key, now), rows_out)
    return len(found)


def rescore_for_emails(
    conn: Connection,
    email_ids: Iterable[uuid.UUID],
    settings: Settings,
    now: datetime | None = None,
) -> int:
    weights, now = weights_of(settings), now or datetime.now(UTC)
    return rescore_parties(conn, parties_of_emails(conn, email_ids), weights, now)


def recompute_scores(
    engine: Engine, settings: Settings, progress: Callable[[int], None] | None = None
) -> int:
    """Every party's score and roll-ups from its events (after changing weights)."""
    weights, now, done = weights_of(settings), datetime.now(UTC), 0
    for kind, (table, key) in TABLES.items():
        with engine.connect() as conn:
            ids = conn.execute(select(table.c[key])).scalars().all()
        for start in range(0, len(ids), 500):
            with engine.begin() as conn:
                for party in ids[start : start + 500]:
                    rescore_party(conn, kind, party, weights, now)
            done += len(ids[start : start + 500])
            if progress:
                progress(len(ids[start : start + 500]))
    return done


def explain(
    conn: Connection, kind: str, party: uuid.UUID, settings: Settings, now: datetime | None = None
) -> tuple[float, list[Scored]]:
    """The score as of now and its top contributing events (read-only)."""
    weights = weights_of(settings)
    rows = _party_events(conn, kind, party)
    events = [
        (r.hitid, EventKind(r.interactiontype), Verdict(r.verdict), r.emailinteractiontime)
        for r in rows
        if r.hitid is not None
    ]
    return score(weights, events, now or datetime.now(UTC))
