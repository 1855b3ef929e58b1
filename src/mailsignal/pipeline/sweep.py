"""Classify stored events again: the periodic sweep and `classify --recompute`.

Time-based rules (no click after seven days) change a verdict with no new event, and a
new classifier version or changed `disabled_rules` changes every verdict: both re-run
the timeline classifier over stored events (the raw facts are kept with each event, so
nothing needs re-enriching). The sweep tallies what changed by delta, as ingest does;
the full recompute rebuilds every touched email's counters and its parties' scores from
all their events, so it also repairs anything that drifted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from ..classify import VERSION
from ..model import STANDARD_FACTS, FactRegistry
from ..settings import Settings
from ..store import events
from . import tally
from .timelines import reclassify

CHUNK = 500


def _run(
    engine: Engine,
    settings: Settings,
    delivery_ids: list[int],
    progress: Callable[[int], None] | None,
    *,
    full: bool,
    facts: FactRegistry,
) -> tuple[int, int]:
    """(events with a new verdict or new reasons, events with a new verdict)."""
    rewritten_total = verdicts = 0
    for start in range(0, len(delivery_ids), CHUNK):
        chunk = delivery_ids[start : start + CHUNK]
        now = datetime.now(UTC)
        with engine.begin() as conn:
            deliveries = events.deliveries(conn, chunk, lock=True)
            rewritten, revised = reclassify(conn, deliveries, settings, now=now, facts=facts)
            rewritten_total += rewritten
            verdicts += len(revised)
            if full:
                tally.roll(conn, revised, deliveries)
                tally.rebuild(conn, {d.email for d in deliveries.values()}, settings, now)
            else:
                tally.apply(conn, revised, deliveries, settings, now)
        if progress:
            progress(len(chunk))
    return rewritten_total, verdicts


def deliveries_with_events(engine: Engine, *, stale_only: bool = False) -> list[int]:
    with engine.connect() as conn:
        return events.deliveries_with_events(conn, stale_version=VERSION if stale_only else None)


def recompute_all(
    engine: Engine,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
    facts: FactRegistry = STANDARD_FACTS,
) -> tuple[int, int]:
    """Classify every stored event again and rebuild what counts them; returns how many
    stored events got new reasons (their verdict, confidence, version or fired rules),
    and how many of those a new verdict (human, machine, forward...). `facts`:
    `Pipeline.facts` of the enrichment that wrote the stored facts."""
    ids = deliveries_with_events(engine)
    return _run(engine, settings, ids, progress, full=True, facts=facts)


def sweep(
    engine: Engine, settings: Settings, now: datetime, facts: FactRegistry = STANDARD_FACTS
) -> int:
    """Re-run deliveries whose seven-day window just closed, and any classified by an
    older classifier version. Cheap enough to run every hour from the ingest worker.
    Returns how many events got a new verdict."""
    with engine.connect() as conn:
        aged = events.deliveries_sent_between(
            conn, now - timedelta(days=8), now - timedelta(days=7)
        )
    ids = sorted(set(aged) | set(deliveries_with_events(engine, stale_only=True)))
    return _run(engine, settings, ids, None, full=False, facts=facts)[1]
