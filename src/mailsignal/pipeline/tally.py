"""Keep email counters and party scores in step with events, by delta where one can.

After a batch, what changed is a list of `Change`s: new events (no old verdict) and
stored events whose verdict was revised (old and new). What they add to each email and
each party is worked out here (engagement.py's arithmetic) and added in SQL, in the same
transaction: one executemany per table, no email or party read first, and two workers
adding to one row add up. A delta cannot take back a maximum (the last human open, the
last engagement) or a flag whose count is not stored (an engaged email): where a change
would, the email or party is rebuilt from all its events instead (`recount`,
`store.rescore.rescore`). `tests/pipeline/test_tally.py` holds the result equal to a full
recompute.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..engagement import EFFECTS, EmailTally, PartyTally, Weights, effective_time, weights_of
from ..settings import Settings
from ..store import emails, events, rescore, rollups, scores
from ..store import retention as retained
from ..store.events import Delivery
from ..store.parties import Party


@dataclass(frozen=True, slots=True)
class Change:
    """One event that counts differently now: `old` is the verdict it counted with (None
    for a new event), `new` the one it counts with."""

    delivery_id: int
    kind: int
    old: str | None
    new: str | None
    at: datetime  # when it happened
    scored_at: datetime  # engagement.effective_time: when its points start to age

    @classmethod
    def stored_now(cls, row: Mapping[str, Any], now: datetime) -> Change:
        """A new event row (labelled, about to be stored at `now`)."""
        at = row["emailinteractiontime"]
        return cls(
            row["deliveryid"],
            row["interactiontype"],
            None,
            row["verdict"],
            at,
            effective_time(at, now),
        )


def _takes_back(kind: int, old: str, new: str | None, what: str) -> bool:
    """Whether changing an event from `old` to `new` stops it feeding `what`."""
    if not getattr(EFFECTS[(kind, old)], what):
        return False
    return new is None or not getattr(EFFECTS[(kind, new)], what)


def _email_deltas(
    by_email: dict[uuid.UUID, list[Change]],
) -> tuple[dict[uuid.UUID, EmailTally], set[uuid.UUID]]:
    """What the changes add to each email; and the emails a delta cannot update: those
    losing an engaged event (only whether any is engaged is stored) or a human open (the
    last one may have been it)."""
    deltas: dict[uuid.UUID, EmailTally] = {}
    rebuild: set[uuid.UUID] = set()
    for activity_id, changes in by_email.items():
        delta = EmailTally()
        for ch in changes:
            if ch.old is not None:
                if _takes_back(ch.kind, ch.old, ch.new, "engaged") or _takes_back(
                    ch.kind, ch.old, ch.new, "last_human_open"
                ):
                    rebuild.add(activity_id)
                    break
                delta.add(ch.kind, ch.old, None, -1)
            if ch.new is not None:
                delta.add(ch.kind, ch.new, ch.at)
        else:
            deltas[activity_id] = delta
    return deltas, rebuild


def _party_deltas(
    by_party: dict[Party, list[Change]], weights: Weights, now: datetime
) -> tuple[dict[Party, PartyTally], set[Party]]:
    """What the changes add to each party (points as of `now`); and the parties a delta
    cannot update: those losing an event that may have been their last engagement."""
    deltas: dict[Party, PartyTally] = {}
    rebuild: set[Party] = set()
    for party, changes in by_party.items():
        delta = PartyTally(now)
        for ch in changes:
            if ch.old is not None:
                if _takes_back(ch.kind, ch.old, ch.new, "party_last"):
                    rebuild.add(party)
                    break
                delta.add(weights, ch.kind, ch.old, ch.at, ch.scored_at, -1)
            if ch.new is not None:
                delta.add(weights, ch.kind, ch.new, ch.at, ch.scored_at)
        else:
            deltas[party] = delta
    return deltas, rebuild


def roll(conn: Connection, changes: Sequence[Change], deliveries: Mapping[int, Delivery]) -> None:
    """Move the panel's roll-ups (store/rollups.py) by these changes: each event leaves
    its owner's hour, its copy's counts and its sent day's environment under the old
    verdict and joins them under the new. It depends only on verdicts, whatever
    counters `apply` or a rebuild writes, so a full recompute moves it the same way."""
    deltas = []
    for ch in changes:
        if ch.old == ch.new:
            continue
        d = deliveries[ch.delivery_id]
        for verdict, step in ((ch.old, -1), (ch.new, 1)):
            if verdict is not None:
                deltas.append(
                    rollups.Delta(ch.delivery_id, d.owner, d.sent_at, ch.at, verdict, step)
                )
    rollups.add(conn, deltas)


def apply(
    conn: Connection,
    changes: Sequence[Change],
    deliveries: Mapping[int, Delivery],
    settings: Settings,
    now: datetime,
) -> None:
    """Update the counters of the emails and the scores and roll-ups of the parties these
    changes touch (the deliveries must include every change's)."""
    by_email: dict[uuid.UUID, list[Change]] = defaultdict(list)
    by_party: dict[Party, list[Change]] = defaultdict(list)
    for ch in changes:
        if ch.old == ch.new:
            continue
        delivery = deliveries[ch.delivery_id]
        by_email[delivery.email].append(ch)
        for party in delivery.parties:
            by_party[party].append(ch)
    if by_email:
        deltas, again = _email_deltas(by_email)
        emails.add_counters(conn, deltas, settings.noise_open_threshold, now)
        recount(conn, again, settings, now)
    if by_party:
        weights = weights_of(settings)
        tallies, again_parties = _party_deltas(by_party, weights, now)
        scores.add(conn, tallies, weights, now)
        rescore.rescore(conn, again_parties, weights, now)
    # Last: the everyone-rows of the current hour are the rows every writer takes, so
    # they are held only from here to the commit.
    roll(conn, changes, deliveries)


def record(
    conn: Connection,
    rows: list[dict[str, Any]],
    deliveries: Mapping[int, Delivery],
    settings: Settings,
    now: datetime,
    revised: Sequence[Change] = (),
) -> int:
    """Store new, labelled event rows and tally them with the stored events whose verdict
    was `revised`; returns how many rows were added.

    Should another writer have stored some of these rows meanwhile (the delivery locks
    keep ingest workers apart, an import running beside them is not kept out), which
    ones is not known: the emails and their parties are then counted again from their
    events instead.
    """
    added = events.insert(conn, rows)
    if added < len(rows):
        # Which rows the other writer stored is not known; it moved the roll-ups for
        # them, so only the revisions are rolled here (an event both of us stored in
        # the same instant may be counted once too few: docs/ui.md, "Overview and its charts").
        roll(conn, revised, deliveries)
        rebuild(conn, {r["emailactivityid"] for r in rows}, settings, now)
        return added
    apply(conn, [*revised, *(Change.stored_now(r, now) for r in rows)], deliveries, settings, now)
    return added


def recount(
    conn: Connection, email_ids: Iterable[uuid.UUID], settings: Settings, now: datetime
) -> None:
    """Rebuild these emails' counters from all their events (not their parties')."""
    ids = sorted(set(email_ids), key=lambda i: i.bytes)
    if not ids:
        return
    tallies = {i: EmailTally() for i in ids}
    for activity_id, kind, verdict, n, last in events.tallies(conn, ids):
        tallies[activity_id].add(kind, verdict, last, int(n))
    # What events deleted by retention counted for (store/retention.py).
    for activity_id, kind, verdict, n, last in retained.email_tallies(conn, ids):
        tallies[activity_id].add(kind, verdict, last, int(n))
    emails.write_counters(
        conn,
        {i: t.columns(settings.noise_open_threshold) for i, t in tallies.items()},
        now,
    )


def rebuild(
    conn: Connection, email_ids: Iterable[uuid.UUID], settings: Settings, now: datetime
) -> None:
    """Rebuild these emails' counters and their parties' scores and roll-ups from all
    their events: what `classify --recompute` ends with."""
    ids = list(email_ids)
    recount(conn, ids, settings, now)
    rescore.rescore(conn, emails.parties_of(conn, ids), weights_of(settings), now)
