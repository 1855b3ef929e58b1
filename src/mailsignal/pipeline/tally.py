"""Keep email counters and party scores in step with events, by delta where one can.

After a batch, what changed is a list of `Change`s: new events (no old verdict) and
stored events whose verdict was revised (old and new). Each email and each party it
touches is updated from its stored values plus those changes, in the same transaction,
a fixed number of statements per batch whatever the number of emails and parties; the
arithmetic is engagement.py's. A delta cannot take back a maximum (the last human open)
or a flag whose count is not stored (an engaged email): where a change would, the email
or party is rebuilt from all its events instead (`recount`, `store.scores.rescore`).
`tests/pipeline/test_tally.py` holds the result equal to a full recompute.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from ..engagement import EFFECTS, EMAIL_COUNTERS, EmailTally, PartyTally, weights_of
from ..settings import Settings
from ..store import emails, events, scores
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


def _takes_back(kind: int, old: str, new: str | None, what: str) -> bool:
    """Whether changing an event from `old` to `new` stops it feeding `what`."""
    if not getattr(EFFECTS[(kind, old)], what):
        return False
    return new is None or not getattr(EFFECTS[(kind, new)], what)


def _email(stored: Mapping[str, object]) -> EmailTally:
    return EmailTally(
        [int(stored[name]) for name in EMAIL_COUNTERS],  # type: ignore[call-overload]
        # Only whether any event makes the email engaged is stored: one stands for all,
        # and taking an engaged event away rebuilds the email instead.
        1 if stored["engagementverdict"] == "human" else 0,
        stored["lastopenedtime"],  # type: ignore[arg-type]
        stored["lasthumanopenedtime"],  # type: ignore[arg-type]
    )


def _apply_emails(
    conn: Connection,
    by_email: dict[uuid.UUID, list[Change]],
    settings: Settings,
    now: datetime,
) -> None:
    stored = emails.counters(conn, by_email, lock=True)
    values: dict[uuid.UUID, dict[str, object]] = {}
    rebuild: list[uuid.UUID] = []
    for activity_id, changes in by_email.items():
        if activity_id not in stored:
            continue  # erased meanwhile
        tally = _email(stored[activity_id])
        for ch in changes:
            if ch.old is not None:
                if _takes_back(ch.kind, ch.old, ch.new, "engaged") or (
                    _takes_back(ch.kind, ch.old, ch.new, "last_human_open")
                    and tally.last_human_open is not None
                    and ch.at >= tally.last_human_open
                ):
                    rebuild.append(activity_id)
                    break
                tally.add(ch.kind, ch.old, None, -1)
            if ch.new is not None:
                tally.add(ch.kind, ch.new, ch.at)
        else:
            values[activity_id] = tally.columns(settings.noise_open_threshold)
    if values:
        emails.write_counters(conn, values, now)
    recount(conn, rebuild, settings, now)


def _apply_parties(
    conn: Connection,
    by_party: dict[Party, list[Change]],
    settings: Settings,
    now: datetime,
) -> None:
    weights = weights_of(settings)
    stored = scores.state(conn, by_party, now, weights)
    tallies: dict[Party, PartyTally] = {}
    rebuild: set[Party] = set()
    for party, changes in by_party.items():
        if party not in stored:
            continue  # erased meanwhile
        tally, _since = stored[party]
        for ch in changes:
            if ch.old is not None:
                if (
                    _takes_back(ch.kind, ch.old, ch.new, "party_last")
                    and tally.last is not None
                    and ch.at >= tally.last
                ):
                    rebuild.add(party)
                    break
                tally.add(weights, ch.kind, ch.old, ch.at, ch.scored_at, -1)
            if ch.new is not None:
                tally.add(weights, ch.kind, ch.new, ch.at, ch.scored_at)
        else:
            tallies[party] = tally
    if tallies:
        scores.write(conn, tallies, now)
    scores.rescore(conn, rebuild, weights, now)


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
        _apply_emails(conn, by_email, settings, now)
    if by_party:
        _apply_parties(conn, by_party, settings, now)


def recount(
    conn: Connection, email_ids: Iterable[uuid.UUID], settings: Settings, now: datetime
) -> None:
    """Rebuild these emails' counters from all their events (not their parties')."""
    ids = sorted(set(email_ids), key=lambda i: i.bytes)
    if not ids:
        return
    tallies = {i: EmailTally() for i in ids}
    for start in range(0, len(ids), 500):
        for activity_id, kind, verdict, n, last in events.tallies(conn, ids[start : start + 500]):
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
    scores.rescore(conn, emails.parties_of(conn, ids), weights_of(settings), now)
