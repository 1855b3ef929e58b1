"""A long stream of hits (`import hits`), stored batch by batch as the ingest worker does.

Each batch is enriched, classified with its recipients' stored timelines, inserted and
tallied in its own transaction, so an interrupted import leaves every committed batch
whole (counters and scores included) and running the same import again adds only what
is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from ..enrich import Pipeline
from ..model import RawHit
from ..settings import Settings
from .ingest import IngestResult, store_hits


class Backfill:
    """Stores batches of hits, one transaction each, and sums what happened."""

    def __init__(self, engine: Engine, enrichment: Pipeline, settings: Settings) -> None:
        self.engine = engine
        self.enrichment = enrichment
        self.settings = settings
        self.stored = self.duplicates = self.orphans = 0

    def store(self, hits: Sequence[RawHit]) -> IngestResult:
        if not hits:
            return IngestResult(0, 0, 0)
        with self.engine.begin() as conn:
            result = store_hits(conn, hits, self.enrichment, self.settings)
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.orphans += result.orphans
        return result

    def finish(self) -> IngestResult:
        return IngestResult(self.stored, self.duplicates, self.orphans)
