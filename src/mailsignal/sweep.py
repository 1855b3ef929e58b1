"""Re-classification outside the ingest path: the periodic sweep and full recompute.

Time-based rules (no click after seven days) change a verdict with no new event, and a
new classifier version or changed `disabled_rules` changes every verdict: both re-run the
timeline classifier over stored events (the raw facts are kept with each event, so
nothing needs re-enriching) and recount the touched emails.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from .classify import VERSION
from .ingest import reclassify, recount
from .settings import Settings
from .store.schema import email, emaildelivery, interactionforemail

CHUNK = 500


def _run(
    engine: Engine,
    settings: Settings,
    delivery_ids: list[int],
    progress: Callable[[int], None] | None,
) -> int:
    changed = 0
    for start in range(0, len(delivery_ids), CHUNK):
        chunk = delivery_ids[start : start + CHUNK]
        with engine.begin() as conn:
            changed += reclassify(conn, chunk, settings)
            emails = (
                conn.execute(
                    select(emaildelivery.c.emailactivityid)
                    .distinct()
                    .where(emaildelivery.c.deliveryid.in_(chunk))
                )
                .scalars()
                .all()
            )
            recount(conn, emails, settings)
        if progress:
            progress(len(chunk))
    return changed


def deliveries_with_events(engine: Engine, *, stale_only: bool = False) -> list[int]:
    ev = interactionforemail
    stmt = select(ev.c.deliveryid).distinct()
    if stale_only:
        stmt = stmt.where(ev.c.classifierversion != VERSION)
    with engine.connect() as conn:
        return sorted(conn.execute(stmt).scalars().all())


def recompute_all(
    engine: Engine, settings: Settings, progress: Callable[[int], None] | None = None
) -> int:
    """Classify every stored event again; returns how many verdicts changed."""
    return _run(engine, settings, deliveries_with_events(engine), progress)


def sweep(engine: Engine, settings: Settings, now: datetime) -> int:
    """Re-run deliveries whose seven-day window just closed, and any classified by an
    older classifier version. Cheap enough to run every hour from the ingest worker."""
    with engine.connect() as conn:
        aged = (
            conn.execute(
                select(emaildelivery.c.deliveryid)
                .join(email, email.c.activityid == emaildelivery.c.emailactivityid)
                .where(
                    email.c.senton >= now - timedelta(days=8),
                    email.c.senton < now - timedelta(days=7),
                )
                .where(
                    select(func.count())
                    .where(interactionforemail.c.deliveryid == emaildelivery.c.deliveryid)
                    .scalar_subquery()
                    > 0
                )
            )
            .scalars()
            .all()
        )
    ids = sorted(set(aged) | set(deliveries_with_events(engine, stale_only=True)))
    return _run(engine, settings, ids, None)
