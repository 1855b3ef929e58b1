"""One batch of hits into the store: enrich, classify the timelines, insert, tally.

Exactly-once by construction: every hit has a unique `hitid` (journal id + sequence, or
the external id of an import) and is inserted with ON CONFLICT DO NOTHING, and the
journal cursor moves in the same transaction as the events (worker.py). A crash between
the two therefore re-reads a batch whose rows are already stored and adds nothing.

The steps, in one transaction:

1. name what the hits point at: deliveries (locked, so two workers never classify one
   recipient at once), links, attachments; a hit naming nothing we sent is an orphan;
2. enrich each hit and build its row;
3. classify every touched recipient timeline with the new hits in it (timelines.py),
   which labels the new rows and revises stored verdicts that changed;
4. insert the new rows;
5. tally: counters, scores and roll-ups move by what was added and revised (tally.py).

Steps 4 and 5 are `tally.record`, which reply sync (replies.py) uses too. Aggregate open
hits (issue 13) name no recipient and skip all of it: aggregate.py adds them to their
email's count first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..enrich import Pipeline
from ..model import RawHit, TokenKind
from ..settings import Settings
from ..store import events
from . import aggregate, donottrack, tally
from .minimise import ip_policy
from .rows import hit_row
from .timelines import reclassify


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    duplicates: int
    orphans: int  # hits whose delivery no longer exists (erased) or never did
    dropped: int = 0  # hits not stored: do-not-track or the org switch off (donottrack.py)
    aggregated: int = 0  # aggregate open hits added to their email's count (aggregate.py)

    @property
    def handled(self) -> int:
        """The batch's hits, whatever became of them (0: the batch was empty)."""
        return self.stored + self.duplicates + self.orphans + self.dropped + self.aggregated


def store_hits(
    conn: Connection,
    hits: Sequence[RawHit],
    enrichment: Pipeline,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> IngestResult:
    """Enrich, classify, store and count a batch of hits in the caller's transaction."""
    if not hits:
        return IngestResult(0, 0, 0)
    now = now or datetime.now(UTC)
    hits, anonymous = aggregate.split(hits)  # aggregate opens: counted per email, no more
    counted = aggregate.count_hits(conn, anonymous, settings, now)
    deliveries = events.deliveries(conn, {h.delivery_id for h in hits}, lock=True)
    hits, dropped = donottrack.drop_hits(conn, hits, deliveries, settings, now)
    dropped += counted.dropped
    orphans = counted.orphans
    # An attachment hit's link id names a trackedattachment row, not a trackedlink.
    links, files = events.targets(
        conn,
        {h.link_id for h in hits if h.link_id is not None and h.kind is not TokenKind.ATTACHMENT},
        {h.link_id for h in hits if h.link_id is not None and h.kind is TokenKind.ATTACHMENT},
    )
    rows: list[dict[str, Any]] = []
    ip = ip_policy(settings)  # enrichers see the full address; the row keeps ip_storage's
    for hit in hits:
        delivery = deliveries.get(hit.delivery_id)
        target = None
        if hit.link_id is not None:
            target = (files if hit.kind is TokenKind.ATTACHMENT else links).get(hit.link_id)
        if delivery is None or (
            hit.link_id is not None and (target is None or target.emailactivityid != delivery.email)
        ):
            orphans += 1
            continue
        facts = enrichment.enrich(hit)
        rows.append(hit_row(hit, facts, delivery.email, delivery.address, target, now, ip))
    candidates = len(rows)
    touched = {r["deliveryid"] for r in rows}
    _rewritten, changes = reclassify(
        conn,
        {i: deliveries[i] for i in touched},
        settings,
        new_rows=rows,
        now=now,
        facts=enrichment.facts,
    )
    added = tally.record(conn, rows, deliveries, settings, now, revised=changes)
    return IngestResult(added, candidates - added, orphans, dropped, counted.counted)
