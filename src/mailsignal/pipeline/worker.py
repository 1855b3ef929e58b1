"""The ingest worker: moves hits from one journal file into the store, batch by batch.

`mailsignal serve` runs it in a child process and `mailsignal ingest --follow` on its
own; with several tracker hosts, one per host (each reads its own journal). Each batch
and the journal cursor commit together (ingest.py), and the hourly sweep applies the
time-based rules (sweep.py).
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from ..enrich import Pipeline
from ..settings import Settings
from ..store import journal_cursor
from ..store.db import analyze
from ..store.fallback import RateLimitedLog
from ..store.journal import JournalReader
from . import retention
from .enrichment import default_enrichment
from .ingest import IngestResult, store_hits
from .sweep import sweep

log = logging.getLogger(__name__)
SWEEP_SECONDS = 3600.0
IDLE_PRUNE_SECONDS = 60.0  # how often a journal with nothing new is pruned
# A batch allocates a few objects per hit, almost all freed by reference counting; the
# collector's default first threshold (700) ran it thousands of times a batch, and each
# full pass walked the lookup tables and every loaded module (half of enrich's time in
# bench/classify_pure.py).
GC_THRESHOLD = (50_000, 20, 20)


def quiet_gc() -> None:
    """Leave what is loaded by now (modules, lookup tables) out of every collection, and
    collect less often: what a long-running worker wants."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class Ingestor:
    """Moves hits from one journal file into the store, batch by batch."""

    def __init__(self, engine: Engine, settings: Settings, enrichment: Pipeline | None = None):
        self.engine = engine
        self.settings = settings
        self.enrichment = enrichment or default_enrichment(settings)
        self.reader = JournalReader(settings.journal_file)
        # Pruning is housekeeping: on a full journal disk it fails every batch until space
        # returns, and must neither fail the batch (already committed) nor flood the log.
        self._prune_failed = RateLimitedLog(
            log,
            "journal prune failed %(failures)d times (%(error)s); ingested rows stay until "
            "it succeeds",
            ("failures",),
            level=logging.WARNING,
        )
        self._idle_prune = 0.0

    def run_once(self) -> IngestResult:
        with self.engine.begin() as conn:
            cursor = journal_cursor.position(conn, self.reader.journal_id)
            batch = self.reader.read(cursor, self.settings.ingest_batch_size)
            if not batch.hits:
                if time.monotonic() >= self._idle_prune:  # an idle journal is pruned too
                    self._idle_prune = time.monotonic() + IDLE_PRUNE_SECONDS
                    self._prune(cursor)
                return IngestResult(0, 0, 0)
            result = store_hits(conn, batch.hits, self.enrichment, self.settings)
            journal_cursor.advance(conn, batch.journal_id, batch.last_seq)
        if result.orphans:
            log.warning("%d hits named deliveries that do not exist; skipped", result.orphans)
        self._prune(batch.last_seq)
        return result

    def _prune(self, upto_seq: int) -> None:
        """Drop ingested hits older than journal_retention_hours (they hold full IPs)."""
        keep = timedelta(hours=self.settings.journal_retention_hours)
        try:
            self.reader.prune(upto_seq, datetime.now(UTC) - keep)
        except sqlite3.Error as exc:
            self._prune_failed.add(str(exc), failures=1)

    def drain(self) -> int:
        """Ingest until the journal has nothing new; returns hits stored."""
        quiet_gc()
        total = 0
        while True:
            result = self.run_once()
            total += result.stored
            if result.handled == 0:
                return total

    def run_forever(self, stop: threading.Event) -> None:
        quiet_gc()
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                # Time-based rules (seven days without a click) change verdicts with no
                # new hit; an hourly sweep applies them.
                next_sweep = time.monotonic() + SWEEP_SECONDS
                try:
                    sweep(self.engine, self.settings, datetime.now(UTC), self.enrichment.facts)
                    analyze(self.engine)  # SQLite's planner statistics, as the tables grow
                except Exception:
                    log.exception("sweep failed; next try in an hour")
                try:  # what is past its retention goes (docs/privacy.md), a minute at most
                    retention.run(
                        self.engine,
                        self.settings,
                        datetime.now(UTC),
                        budget_seconds=retention.HOURLY_BUDGET_SECONDS,
                    )
                except Exception:
                    log.exception("retention run failed; next try in an hour")
            try:
                result = self.run_once()
            except Exception:  # keep the worker alive; the batch is retried next round
                log.exception("ingest batch failed; retrying")
                stop.wait(self.settings.ingest_interval_seconds * 4)
                continue
            if result.handled == 0:
                stop.wait(self.settings.ingest_interval_seconds)

    def close(self) -> None:
        self.reader.close()
