"""When the journal cannot be written: keep every hit, say so, put it back exactly once.

The promise (docs/deployment.md): a tracking request is answered whatever happens to the
journal (a person's click still reaches its page, a pixel still answers), and a hit the
journal could not take is never lost silently. Such a hit waits, most durable first:
1. in the spool (`journal_spool_dir`, meant to be another filesystem; store/spool.py),
   fsynced before the request is answered, so even `kill -9` loses nothing;
2. in memory, up to `journal_buffer_max` hits, when no spool is set or it failed too: kept
   until the process stops (a clean stop tries the journal, then the spool, once more);
   a crash loses them;
3. nowhere, beyond that bound: the hit is lost, counted, logged at ERROR and shown by
   `/readyz`. That is the only way a hit is lost, and never quietly.

Everything is counted (`JournalHealth`, what `/readyz` reports) and logged at ERROR at
most once per `LOG_EVERY_SECONDS`, with the counts since the previous line and no IP,
user agent or token in it, so a full disk costs a few log lines, not one per request.
The writer thread calls `recover` every `RETRY_SECONDS` while anything waits: memory
first, then each spool file in its own transaction that records the file's name, so a
crash between that commit and the unlink never journals the file twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .spool import HitRow, Spool

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
LOG_EVERY_SECONDS = 30.0
_FAILED = (
    "journal write failed (%(error)s): %(failed)d hits since the last report; "
    "%(spooled)d spooled, %(buffered)d held in memory, %(lost)d LOST"
)


class RateLimitedLog:
    """At most one line per `every` seconds, carrying the counts added since the last one.

    The first event logs at once, so an outage shows at its start; the counts of the
    quiet interval go out with the next line (or at `flush(force=True)`)."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        fields: tuple[str, ...],
        every: float = LOG_EVERY_SECONDS,
        level: int = logging.ERROR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._message, self._fields = logger, message, fields
        self._every, self._level, self._clock = every, level, clock
        self._counts = dict.fromkeys(fields, 0)
        self._error = ""
        self._next = float("-inf")

    def add(self, error: str = "", **counts: int) -> None:
        for name, n in counts.items():
            self._counts[name] += n
        self._error = error or self._error
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = self._clock()
        if not any(self._counts.values()) or (now < self._next and not force):
            return
        self._logger.log(self._level, self._message, {**self._counts, "error": self._error})
        self._counts = dict.fromkeys(self._fields, 0)
        self._next = now + self._every


@dataclass(frozen=True, slots=True)
class JournalHealth:
    """One process's view of its journal writer (counts since it started)."""

    writable: bool  # this process's last journal write (or probe) succeeded
    failed: int  # hits the journal could not take when they came
    spooled: int  # hits written to the spool
    buffered: int  # hits in this process's memory now, durable nowhere
    lost: int  # hits over the memory bound with no spool to take them
    replayed: int  # hits moved into the journal from memory or the spool
    spool_files: int  # files waiting in the (shared) spool directory


class Journal(Protocol):
    """What the writer offers `Fallback`: its writes, each False or None when it failed,
    and whether the last one succeeded."""

    writable: bool

    def commit(self, rows: list[HitRow]) -> bool: ...

    def probe(self) -> bool: ...

    def commit_spooled(self, name: str, rows: list[HitRow]) -> int | None: ...

    def forget_spooled(self, name: str) -> None: ...


class Fallback:
    """Where one writer's failed batches wait, and the order they go back in."""

    def __init__(self, spool_dir: Path | None, buffer_max: int) -> None:
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        self.buffer_max = buffer_max
        self.buffer: list[HitRow] = []
        self.failed = self.spooled = self.lost = self.replayed = 0
        self.outage = False  # a write failed since the journal last took everything
        self.report = RateLimitedLog(log, _FAILED, ("failed", "spooled", "buffered", "lost"))

    def keep(self, rows: list[HitRow], error: str) -> bool:
        """After a failed commit: True when the rows are durable in the spool."""
        n = len(rows)
        self.failed += n
        self.outage = True
        if self.spool is not None and self.spool.append(rows):
            self.spooled += n
            self.report.add(error, failed=n, spooled=n)
            return True
        if self.spool is not None:
            error = f"{error}; spool: {self.spool.last_error}"
        room = max(0, self.buffer_max - len(self.buffer))
        self.buffer.extend(rows[:room])
        lost = max(0, n - room)
        self.lost += lost
        self.report.add(error, failed=n, buffered=n - lost, lost=lost)
        return False

    def waiting(self, journal: Journal) -> bool:
        """Anything to retry: the journal failed, or hits wait in memory or the spool."""
        return (
            not journal.writable
            or bool(self.buffer)
            or (self.spool is not None and self.spool.pending() > 0)
        )

    def recover(self, journal: Journal) -> None:
        """Move what waits into the journal; stop at the first failure, retry later."""
        if not journal.writable and not journal.probe():
            if self.buffer and self.spool is not None and self.spool.append(self.buffer):
                self.spooled += len(self.buffer)  # durable now, though still not journaled
                self.buffer = []
            self.report.flush()
            return
        moved = 0
        if self.buffer:
            if not journal.commit(self.buffer):
                return
            moved, self.buffer = len(self.buffer), []
        if self.spool is not None:
            self.spool.seal()  # this process's own file becomes claimable too
            for claimed in self.spool.claims():
                inserted: int | None = None
                try:
                    inserted = journal.commit_spooled(claimed.name, claimed.rows)
                finally:
                    self.spool.release(claimed, inserted is not None)
                if inserted is None:
                    break
                journal.forget_spooled(claimed.name)
                moved += inserted
                if claimed.bad_lines:  # damaged on disk: nothing to journal them from
                    self.lost += claimed.bad_lines
                    log.error(
                        "spool file %s: %d unreadable hits LOST", claimed.name, claimed.bad_lines
                    )
        self.replayed += moved
        self.report.flush(force=True)
        if self.outage or moved:
            log.warning("journal writable: %d hits that waited are journaled now", moved)
            self.outage = False

    def close(self, journal: Journal) -> None:
        """At shutdown: what is only in memory gets one last try, else it is lost."""
        if self.buffer:
            n = len(self.buffer)
            if journal.commit(self.buffer):
                self.replayed += n
            elif self.spool is not None and self.spool.append(self.buffer):
                self.spooled += n
            else:
                self.lost += n
                log.error("stopping with %d hits neither the journal nor a spool took: LOST", n)
            self.buffer = []
        if self.spool is not None:
            self.spool.seal()  # left for the next start, or another worker, to journal
        self.report.flush(force=True)

    def health(self, writable: bool) -> JournalHealth:
        return JournalHealth(
            writable=writable,
            failed=self.failed,
            spooled=self.spooled,
            buffered=len(self.buffer),
            lost=self.lost,
            replayed=self.replayed,
            spool_files=self.spool.pending() if self.spool is not None else 0,
        )
