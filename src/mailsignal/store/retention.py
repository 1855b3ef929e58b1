"""Retention's SQL (issue 13): expired recipient timelines folded into `retainedtally` and
deleted; the folds read back by every rebuild of counters and scores; attachment files
past their retention.

A recipient copy's events go together, once every one of them is older than the
retention of its kind: rules compare a timeline's events with each other (a click
confirms an open, a second network makes a forward), so deleting part of a timeline
could change the verdicts of what remains at the next reclassification. What they
counted for is kept per copy, kind and verdict (`Fold`), and `email_tallies` /
`party_folds` hand it to pipeline/tally.recount and store/rescore.py.

Score points are folded exactly: an event of worth w scored at s is worth
w * 0.5^((asof - s) / h) at `asof`; a fold keeps sum(0.5^((last - s) / h)) over its
events (`decaysum`, each term at most 1) with `last` the latest s, so its worth at `asof`
is w * decaysum * 0.5^((asof - last) / h). Should `score_half_life_days` change later,
the fold is rescaled as a single event would be (decaysum ** (h_old / h_new)): exact for
one event, close for several; events past the default 395 days of retention are worth
2^-28 of their points at a 14-day half-life anyway. Counts and latest times are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from ..engagement import EFFECTS, SECONDS_PER_DAY, PartyTally, Weights, effective_time, points
from ..model import EventKind
from .bulk import in_ids
from .schema import interactionforemail, retainedtally, trackedattachment, utcnow

REPLY = int(EventKind.REPLY)


@dataclass(slots=True)
class Fold:
    """What some deleted events of one copy, kind and verdict counted for."""

    email: uuid.UUID
    count: int
    last: datetime
    last_scored: datetime
    decaysum: float
    half_life_days: float

    def add(self, other: Fold) -> None:
        """Fold `other` in (under this fold's half-life)."""
        mine = self.rescaled(self.half_life_days)
        theirs = other.rescaled(self.half_life_days)
        last = max(self.last_scored, other.last_scored)
        self.decaysum = _aged(mine, self.last_scored, last, self.half_life_days) + _aged(
            theirs, other.last_scored, last, self.half_life_days
        )
        self.last_scored = last
        self.count += other.count
        self.last = max(self.last, other.last)

    def rescaled(self, half_life_days: float) -> float:
        """`decaysum` as if folded under `half_life_days`."""
        if half_life_days == self.half_life_days or self.decaysum <= 0:
            return self.decaysum
        return float(self.decaysum ** (self.half_life_days / half_life_days))


def _aged(mass: float, since: datetime, until: datetime, half_life_days: float) -> float:
    age = (until - since).total_seconds()
    return mass * 0.5 ** (age / (half_life_days * SECONDS_PER_DAY)) if age > 0 else mass


Key = tuple[int, int, str]  # (deliveryid, interactiontype, verdict)


def fold_events(rows: Iterable[Any], half_life_days: float) -> dict[Key, Fold]:
    """Folds of event rows (deliveryid, emailactivityid, interactiontype, verdict,
    emailinteractiontime, createdon)."""
    groups: dict[Key, list[Any]] = {}
    for row in rows:
        groups.setdefault((row[0], int(row[2]), str(row[3])), []).append(row)
    out: dict[Key, Fold] = {}
    for key, members in groups.items():
        scored = [effective_time(r[4], r[5]) for r in members]
        last_scored = max(scored)
        out[key] = Fold(
            members[0][1],
            len(members),
            max(r[4] for r in members),
            last_scored,
            sum(_aged(1.0, s, last_scored, half_life_days) for s in scored),
            half_life_days,
        )
    return out


# --- finding and deleting expired timelines ----------------------------------------------


@dataclass(slots=True)
class Position:
    """Where a scan of old events got to: the time of the last event seen, and the hit
    ids seen at that very time (events sharing a time are not skipped nor seen twice)."""

    at: datetime
    seen: set[str]


def old_events(
    conn: Connection, before: datetime, after: Position | None, limit: int
) -> tuple[list[int], Position | None]:
    """The deliveries of up to `limit` events older than `before`, oldest first, after
    `after`; and the position after them (None when there were none). Ordered by the
    time index alone: a sort over every old event, once per batch, is what this avoids."""
    ev = interactionforemail
    stmt = select(ev.c.emailinteractiontime, ev.c.hitid, ev.c.deliveryid).where(
        ev.c.emailinteractiontime < before
    )
    if after is not None:
        stmt = stmt.where(
            or_(
                ev.c.emailinteractiontime > after.at,
                and_(ev.c.emailinteractiontime == after.at, ev.c.hitid.not_in(after.seen)),
            )
            if after.seen
            else ev.c.emailinteractiontime > after.at
        )
    rows = list(conn.execute(stmt.order_by(ev.c.emailinteractiontime).limit(limit)))
    if not rows:
        return [], None
    last = rows[-1][0]
    seen = {hit for at, hit, _d in rows if at == last}
    if after is not None and after.at == last:
        seen |= after.seen
    return sorted({delivery for _at, _hit, delivery in rows}), Position(last, seen)


def timelines(conn: Connection, delivery_ids: Sequence[int]) -> list[Any]:
    """Every event of these copies: (deliveryid, emailactivityid, interactiontype, verdict,
    emailinteractiontime, createdon)."""
    ev = interactionforemail
    return list(
        conn.execute(
            select(
                ev.c.deliveryid,
                ev.c.emailactivityid,
                ev.c.interactiontype,
                ev.c.verdict,
                ev.c.emailinteractiontime,
                ev.c.createdon,
            ).where(in_ids(conn, ev.c.deliveryid, delivery_ids))
        )
    )


def _read_folds(conn: Connection, delivery_ids: Iterable[int]) -> dict[Key, Fold]:
    r = retainedtally
    rows = conn.execute(select(r).where(in_ids(conn, r.c.deliveryid, list(delivery_ids))))
    return {
        (row.deliveryid, row.interactiontype, row.verdict): Fold(
            row.emailactivityid,
            row.eventcount,
            row.lasteventon,
            row.lastscoredon,
            row.decaysum,
            row.halflifedays,
        )
        for row in rows
    }


def retire(conn: Connection, delivery_ids: Sequence[int], folds: dict[Key, Fold]) -> int:
    """Add `folds` to what these copies' deleted events counted for, and delete every
    event of these copies; returns how many events went."""
    if not delivery_ids:
        return 0
    kept = _read_folds(conn, delivery_ids)
    for key, fold in folds.items():
        if key in kept:
            kept[key].add(fold)
        else:
            kept[key] = fold
    r = retainedtally
    conn.execute(delete(r).where(in_ids(conn, r.c.deliveryid, list(delivery_ids))))
    now = utcnow()
    if kept:
        conn.execute(
            insert(r),
            [
                {
                    "deliveryid": d,
                    "interactiontype": k,
                    "verdict": v,
                    "emailactivityid": f.email,
                    "eventcount": f.count,
                    "lasteventon": f.last,
                    "lastscoredon": f.last_scored,
                    "decaysum": f.decaysum,
                    "halflifedays": f.half_life_days,
                    "updatedon": now,
                }
                for (d, k, v), f in kept.items()
            ],
        )
    ev = interactionforemail
    result = conn.execute(delete(ev).where(in_ids(conn, ev.c.deliveryid, list(delivery_ids))))
    return int(result.rowcount)


# --- what the rebuilds add in -------------------------------------------------------------


def email_tallies(conn: Connection, email_ids: Sequence[uuid.UUID]) -> list[Any]:
    """(email, kind, verdict, count, latest time) of these emails' deleted events, as
    store.events.tallies gives them for stored ones."""
    r = retainedtally
    return list(
        conn.execute(
            select(
                r.c.emailactivityid,
                r.c.interactiontype,
                r.c.verdict,
                func.sum(r.c.eventcount),
                func.max(r.c.lasteventon),
            )
            .where(in_ids(conn, r.c.emailactivityid, email_ids))
            .group_by(r.c.emailactivityid, r.c.interactiontype, r.c.verdict)
        )
    )


_FOLD_COLUMNS = (
    retainedtally.c.deliveryid,
    retainedtally.c.interactiontype,
    retainedtally.c.verdict,
    retainedtally.c.eventcount,
    retainedtally.c.lasteventon,
    retainedtally.c.lastscoredon,
    retainedtally.c.decaysum,
    retainedtally.c.halflifedays,
)


def party_folds(conn: Connection, delivery_ids: Iterable[int] | None = None) -> Iterable[Any]:
    """Folds of these copies (all when None) that can add points or counts to a party."""
    stmt = select(*_FOLD_COLUMNS)
    if delivery_ids is not None:
        stmt = stmt.where(in_ids(conn, retainedtally.c.deliveryid, list(delivery_ids)))
    return conn.execute(stmt)


def add_fold(tallies: Iterable[PartyTally], weights: Weights, row: Any) -> None:
    """Add one `party_folds` row to these party tallies, as PartyTally.add adds events."""
    _delivery, kind, verdict, n, last, last_scored, decaysum, half_life = row
    worth = points(weights)[(kind, verdict)]
    fx = EFFECTS[(kind, verdict)]
    if not worth and fx.party < 0:
        return
    mass = Fold(uuid.UUID(int=0), n, last, last_scored, decaysum, half_life).rescaled(
        weights.half_life_days
    )
    for tally in tallies:
        if worth:
            tally.score += worth * _aged(mass, last_scored, tally.asof, weights.half_life_days)
        if fx.party >= 0:
            tally.counts[fx.party] += n
            if fx.party_last and (tally.last is None or last > tally.last):
                tally.last = last


def forget(conn: Connection, delivery_ids: Sequence[int]) -> int:
    """Delete these copies' folds (erasure of the copies themselves)."""
    r = retainedtally
    result = conn.execute(delete(r).where(in_ids(conn, r.c.deliveryid, list(delivery_ids))))
    return int(result.rowcount)


# --- attachment files ---------------------------------------------------------------------


def expired_attachments(conn: Connection, before: datetime, limit: int) -> list[tuple[int, str]]:
    """Up to `limit` attachments recorded before `before` whose file is still kept:
    (attachmentid, sha256)."""
    a = trackedattachment
    stmt = (
        select(a.c.attachmentid, a.c.sha256)
        .where(a.c.createdon < before, a.c.storagepath != "")
        .order_by(a.c.attachmentid)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in conn.execute(stmt)]


def blobs_in_use(conn: Connection, sha256s: Iterable[str], before: datetime) -> set[str]:
    """Which of these blobs a newer attachment (recorded at or after `before`) still uses."""
    a = trackedattachment
    stmt = select(a.c.sha256).where(
        in_ids(conn, a.c.sha256, sorted(set(sha256s))),
        a.c.createdon >= before,
        a.c.storagepath != "",
    )
    return set(conn.execute(stmt).scalars())


def mark_files_removed(conn: Connection, attachment_ids: Sequence[int]) -> None:
    """Record that these attachments' files are gone (`storagepath` = "")."""
    a = trackedattachment
    conn.execute(
        update(a).where(in_ids(conn, a.c.attachmentid, list(attachment_ids))).values(storagepath="")
    )
