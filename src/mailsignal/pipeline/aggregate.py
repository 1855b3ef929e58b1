"""Ingest's side of the aggregate open measure (issue 13, store/aggregate.py).

An aggregate open hit names an email's aggregate pixel, never a recipient, so it goes
nowhere near the per-recipient path: no delivery, enrichment, classification, event or
score. Each batch's hits are counted per pixel and added to the pixels' open counts;
nothing of the request is kept (the tracker journaled no address, user agent or header
for them in the first place). The screening needs no recipient either: with the org
switch off, or `aggregate_opens` turned off since the mail went out, the hits are
dropped and counted per day like every dropped hit (`org.monitoring_disabled`,
`org.aggregate_off`). Machine opens (Apple Mail Privacy Protection, security scanners)
cannot be told apart without per-recipient data: the count is raw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from ..model import RawHit, TokenKind
from ..settings import Settings
from ..store import aggregate, donottrack, users

AGGREGATE_OFF = "org.aggregate_off"  # the setting aggregate_opens is off


@dataclass(frozen=True, slots=True)
class AggregateResult:
    counted: int
    dropped: int
    orphans: int  # hits naming a pixel that does not exist


def split(hits: Sequence[RawHit]) -> tuple[list[RawHit], list[RawHit]]:
    """(the per-recipient hits, the aggregate open hits) of a batch."""
    kind = TokenKind.AGGREGATE_OPEN
    return [h for h in hits if h.kind is not kind], [h for h in hits if h.kind is kind]


def count_hits(
    conn: Connection, hits: Sequence[RawHit], settings: Settings, now: datetime
) -> AggregateResult:
    """Add aggregate open hits to their pixels' counts, or drop them (module docstring)."""
    if not hits:
        return AggregateResult(0, 0, 0)
    reason = None
    if not settings.aggregate_opens:
        reason = AGGREGATE_OFF
    elif not users.get_org(conn)["isemailmonitoringallowed"]:
        reason = donottrack.ORG_OFF
    if reason is not None:
        donottrack.count_dropped(conn, now, {reason: len(hits)})
        return AggregateResult(0, len(hits), 0)
    counted, orphans = aggregate.add(conn, Counter(h.delivery_id for h in hits))
    return AggregateResult(counted, 0, orphans)
