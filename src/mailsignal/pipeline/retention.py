"""Retention (issue 13, docs/privacy.md "Retention"): what is older than its setting goes.

- events (`event_retention_days`) and reply events (`reply_retention_days`): a recipient
  copy's events are deleted together once each is older than the retention of its kind
  (store/retention.py says why), what they counted for folded into `retainedtally` in
  the same transaction, so counters, scores and roll-ups keep their values and every
  later rebuild adds the folds in;
- outbound copies the relay set aside (`outbound/failed/`, `outbound_retention_days`);
- tracked attachment files (`attachment_retention_days`, counted from when the email was
  recorded): the file and its sidecar go, the `trackedattachment` row stays with its
  `storagepath` emptied, and the download link answers 404.

Work is done in batches of one short transaction each (never one statement over every
old row), so a first run over years of events neither holds locks for long nor builds a
huge transaction; `budget_seconds` bounds one run (the worker's hourly run stops after
it and goes on at the next). Each run logs its counts, which hold no personal data, and a
run that deleted anything is recorded in the audit trail (`retention.run`, actor system).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ..engagement import weights_of
from ..settings import Settings
from ..store import audit, events
from ..store import retention as stored
from ..store.files import AttachmentFiles, remove_older

log = logging.getLogger(__name__)
BATCH = 500  # old events looked at (and copies retired at most) per transaction
HOURLY_BUDGET_SECONDS = 60.0  # the worker's run stops after this and goes on next hour


@dataclass(slots=True)
class RetentionRun:
    """What one run deleted (no personal data: counts only)."""

    events: int = 0  # events deleted, replies included
    replies: int = 0  # of which reply events
    copies: int = 0  # recipient copies whose events all went
    outbound_files: int = 0
    attachments: int = 0  # attachments whose files went
    attachment_files: int = 0
    complete: bool = True  # False: the time budget ran out; the next run goes on

    @property
    def deleted(self) -> int:
        return self.events + self.outbound_files + self.attachment_files


def _days(value: int | None) -> timedelta | None:
    return timedelta(days=value) if value else None


def _cutoff(now: datetime, days: int | None) -> datetime | None:
    keep = _days(days)
    return None if keep is None else now - keep


def run(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    budget_seconds: float | None = None,
    batch: int = BATCH,
    actor: str = "system",
) -> RetentionRun:
    """Apply every retention setting as of `now`; returns the counts (also logged, and
    in the audit trail as done by `actor` when anything was deleted)."""
    result = RetentionRun()
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    _events(engine, settings, now, result, deadline, batch)
    outbound = _cutoff(now, settings.outbound_retention_days)
    if outbound is not None:
        result.outbound_files = remove_older(
            settings.data_dir / "outbound" / "failed", outbound.timestamp()
        )
    _attachments(engine, settings, now, result, batch)
    if result.deleted:
        log.info("retention: %s", asdict(result))
        with engine.begin() as conn:
            audit.record(conn, "retention.run", actor=actor, details=asdict(result), at=now)
    return result


def _events(
    engine: Engine,
    settings: Settings,
    now: datetime,
    result: RetentionRun,
    deadline: float | None,
    batch: int,
) -> None:
    hits = _cutoff(now, settings.event_retention_days)
    replies = _cutoff(now, settings.reply_retention_days)
    known = [c for c in (hits, replies) if c is not None]
    if not known:
        return
    half_life = weights_of(settings).half_life_days

    def expired(row: Any) -> bool:
        cutoff = replies if row[2] == stored.REPLY else hits
        return cutoff is not None and row[4] < cutoff

    position: stored.Position | None = None
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            result.complete = False
            return
        with engine.begin() as conn:
            ids, position = stored.old_events(conn, max(known), position, batch)
            if position is None:
                return
            events.deliveries(conn, ids, lock=True)  # ingest may be adding to them
            by_copy: dict[int, list[Any]] = defaultdict(list)
            for row in stored.timelines(conn, ids):  # read after the lock
                by_copy[row[0]].append(row)
            gone = [d for d in ids if by_copy[d] and all(map(expired, by_copy[d]))]
            rows = [row for d in gone for row in by_copy[d]]
            result.events += stored.retire(conn, gone, stored.fold_events(rows, half_life))
            result.replies += sum(1 for row in rows if row[2] == stored.REPLY)
            result.copies += len(gone)


def _attachments(
    engine: Engine, settings: Settings, now: datetime, result: RetentionRun, batch: int
) -> None:
    before = _cutoff(now, settings.attachment_retention_days)
    if before is None:
        return
    files = AttachmentFiles(settings.attachment_dir)
    while True:
        with engine.begin() as conn:
            expired = stored.expired_attachments(conn, before, batch)
            if not expired:
                return
            shared = stored.blobs_in_use(conn, (sha for _id, sha in expired), before)
            blobs_done: set[str] = set()
            for attachment_id, sha256 in expired:
                # A blob another expired attachment of this batch shares goes once.
                blob = None if sha256 in shared or sha256 in blobs_done else sha256
                blobs_done.add(sha256)
                result.attachment_files += files.remove(attachment_id, blob)
            stored.mark_files_removed(conn, [attachment_id for attachment_id, _ in expired])
            result.attachments += len(expired)
