"""Every party's score and roll-ups in one pass over the events (`score --recompute`).

`scores.recompute_scores` rescores party by party: two queries per contact, lead and
account, which is right for one new event and far too slow for all of them (issue #5,
bench/scores.py). This module gives the same results set-wise:

1. one query maps each delivery to its parties: the contact, lead or account it went
   to, plus a contact's account (`parentcustomerid`), as `rescore_party` reads them;
2. one streamed query (`yield_per`) reads the events that can matter, in table order;
   each event's points (scoring.py's weight x decay, the same float operations) and
   roll-up counts are added to its parties in memory;
3. every party row is written with one executemany UPDATE per table, parties without
   deliveries included (zero), as `recompute_scores` does.

Events whose verdict is machine or unknown (other than a reply that is not machine) add
0.0 points and no counts, so they are filtered out in SQL. The only difference from
`recompute_scores` is the order in which each score's terms are summed, so a score may
differ in its last bit before rounding to 6 decimals.

Memory is a few words per delivery and per party, not per event. It runs in one
transaction; a party rescored by ingest meanwhile is overwritten with the values of the
pass (the same holds for `recompute_scores` within a batch).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, select

from ..scoring import Weights
from ..settings import Settings
from .schema import contact, emaildelivery, interactionforemail
from .scores import (
    COUNTED,
    TABLES,
    Parties,
    accumulate,
    relevant_events,
    rollup_update,
    weights_of,
)


def _deliveries(conn: Connection, parties: Parties) -> dict[int, tuple[int, ...]]:
    """Delivery id -> the slots of its parties; counts tracked deliveries per party."""
    d, c = emaildelivery, contact
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
                    d.c.recipientobjecttypecode == "contact", c.c.contactid == d.c.recipientobjectid
                ),
            )
        )
        .where(d.c.recipientobjectid.is_not(None), d.c.recipientobjecttypecode.in_(list(TABLES)))
    )
    shared: dict[tuple[int, ...], tuple[int, ...]] = {}
    found: dict[int, tuple[int, ...]] = {}
    for delivery, kind, party, tracked, parent in rows:
        slots: tuple[int, ...] = (parties.of((kind, party)),)
        if parent is not None:
            slots += (parties.of(("account", parent)),)
        slots = shared.setdefault(slots, slots)
        found[delivery] = slots
        if tracked:
            for s in slots:
                parties.followed[s] += 1
    return found


def _events(
    conn: Connection,
    deliveries: dict[int, tuple[int, ...]],
    parties: Parties,
    weights: Weights,
    now: datetime,
    batch: int,
) -> int:
    """Adds every relevant event to its parties; returns how many were read."""
    ev = interactionforemail
    stmt = select(
        ev.c.deliveryid, ev.c.interactiontype, ev.c.verdict, ev.c.emailinteractiontime
    ).where(relevant_events())
    specs: dict[tuple[int, str], tuple[float, int]] = {}
    read = 0
    result = conn.execute(stmt.execution_options(yield_per=batch))
    for part in result.partitions():
        read += len(part)
        accumulate(part, deliveries, parties, weights, now, specs)
    return read


def _write(
    conn: Connection,
    parties: Parties,
    now: datetime,
    batch: int,
    progress: Callable[[int], None] | None,
) -> int:
    done = 0
    for kind, (table, key) in TABLES.items():
        stmt = rollup_update(table, key, now)
        ids = conn.execute(select(table.c[key])).scalars().all()
        rows: list[dict[str, Any]] = []
        for party in ids:
            s = parties.slot.get((kind, party))
            row: dict[str, Any] = {"b_key": party}
            if s is None:
                row.update(b_score=0.0, b_followed=0, b_last=None)
                row.update({f"b_{name}": 0 for name in COUNTED})
            else:
                row.update(
                    b_score=round(parties.score[s], 6),
                    b_followed=parties.followed[s],
                    b_last=parties.last[s],
                )
                row.update({f"b_{name}": parties.counts[i][s] for i, name in enumerate(COUNTED)})
            rows.append(row)
            if len(rows) >= batch:
                conn.execute(stmt, rows)
                done += len(rows)
                if progress:
                    progress(len(rows))
                rows = []
        if rows:
            conn.execute(stmt, rows)
            done += len(rows)
            if progress:
                progress(len(rows))
    return done


def recompute_scores_bulk(
    engine: Engine,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
    *,
    now: datetime | None = None,
    batch: int = 10_000,
) -> int:
    """Every party's score and roll-ups from its events; same contract as `recompute_scores`.

    Args:
        progress: called with the number of parties written, batch by batch (the calls
            add up to the number of contacts, leads and accounts).
        now: the instant scores are computed for (default: the current time).
        batch: rows per streamed fetch and per executemany.

    Returns:
        The number of parties written.
    """
    weights, now = weights_of(settings), now or datetime.now(UTC)
    parties = Parties()
    with engine.begin() as conn:
        deliveries = _deliveries(conn, parties)
        _events(conn, deliveries, parties, weights, now, batch)
        return _write(conn, parties, now, batch, progress)
