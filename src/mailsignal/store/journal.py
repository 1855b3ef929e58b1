"""The hit journal: an append-only SQLite file written with group commit.

Why a journal apart from the store: the tracking endpoints must answer only after a hit
is durable, must stay fast, and must keep working while the main database (SQLite or a
remote PostgreSQL) is slow or down. A local SQLite file in WAL mode with
`synchronous=FULL` gives a durable append in one fsync; group commit (one transaction
for every request that arrived while the previous commit was running, as databases do
for their own logs) makes that fsync cost per batch, not per request.

One writer thread per process owns the connection. Request handlers hand it a row and
an asyncio future; the thread drains the queue, commits the batch, then resolves all
the batch's futures with one `call_soon_threadsafe` per event loop. Several processes
may share one journal file: SQLite serialises their commits and, because `seq` is
AUTOINCREMENT and assigned inside the write lock, commit order is `seq` order and a
pruned `seq` is never reused, so the ingest cursor (`seq > last`) never skips a row.

When a commit fails (a full disk, a failing one), the request is still answered and the
batch's rows go to store/fallback.py: the spool on another path, else memory, and back
into the journal exactly once when it can be written again. Nothing of that costs the
success path anything but a clock read per batch. The journal file and its -wal/-shm
are created 0600 in a 0700 directory: they hold IP addresses and user agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from ..model import RawHit, TokenKind
from .fallback import RETRY_SECONDS, Fallback, JournalHealth, RateLimitedLog
from .spool import HitRow

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    kind INTEGER NOT NULL,
    delivery INTEGER NOT NULL,
    link INTEGER,
    ip TEXT NOT NULL,
    ua TEXT NOT NULL,
    method TEXT NOT NULL,
    headers TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
CHECKPOINT_SECONDS = 1.0
# meta key that records a spool file journaled (see commit_spooled)
_SPOOLED = "spooled:"
# One multi-row INSERT per batch, not executemany: CPython's sqlite3 releases the GIL
# around every sqlite3_step, and with executemany that is once per row; each release
# hands the GIL to the busy event loop and waits up to the switch interval to get it
# back. One statement means one step, so one hand-off per batch. 2000 rows x 8 columns
# stays under SQLite's 32766 bound-parameter limit.
_MAX_ROWS_PER_STATEMENT = 2000


@functools.lru_cache(maxsize=128)
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?)"] * rows)
    # Only placeholders are formatted in; every value is bound.
    return f"INSERT INTO hit (t, kind, delivery, link, ip, ua, method, headers) VALUES {values}"  # noqa: S608


def _insert(conn: sqlite3.Connection, rows: list[HitRow]) -> None:
    for start in range(0, len(rows), _MAX_ROWS_PER_STATEMENT):
        chunk = rows[start : start + _MAX_ROWS_PER_STATEMENT]
        conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])


def _private(path: Path) -> None:
    """Create the journal 0600 before SQLite does (SQLite gives its -wal and -shm the
    database file's mode), and tighten one an older version left readable."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(f"{path}{suffix}", 0o600)
    finally:
        os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    _private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('journal_id', ?)", (uuid.uuid4().hex,))
    return conn


def journal_id(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()
    return str(row[0])


class _Stop:
    pass


_STOP = _Stop()
_T = TypeVar("_T")
_Item = tuple[HitRow, asyncio.Future[bool], asyncio.AbstractEventLoop]


def _resolve(futures: list[asyncio.Future[bool]], ok: bool) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(ok)


class JournalWriter:
    """Group-committing appender; `await append(row)` returns once the row is durable.

    `spool_dir` and `buffer_max` say where rows wait when the journal cannot take them
    (store/fallback.py); `health()` is what `/readyz` reports."""

    def __init__(
        self,
        path: Path,
        batch_max: int = 2048,
        spool_dir: Path | None = None,
        buffer_max: int = 100_000,
    ) -> None:
        self.path = path
        self.batch_max = batch_max
        self._queue: queue.SimpleQueue[_Item | _Stop] = queue.SimpleQueue()
        self._conn = _connect(path)
        self.journal_id = journal_id(self._conn)
        self.batches = 0
        self.rows = 0
        self.writable = True
        self.fallback = Fallback(spool_dir, buffer_max)
        self._error = ""
        self._next_tick = 0.0
        # Checkpoints (copying the WAL into the database file) run on their own thread and
        # connection, not inside a commit that requests are waiting on: an automatic
        # checkpoint in the writer showed up as 30+ ms p99 stalls on the pixel benchmark.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="journal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path)
        # On a full disk this fails every second, for as long as the disk stays full.
        failed = RateLimitedLog(
            log,
            "journal checkpoint failed %(failures)d times (%(error)s)",
            ("failures",),
            level=logging.WARNING,
        )
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    failed.add(str(exc), failures=1)
                else:
                    failed.flush(force=True)  # the failures of the last quiet interval
        finally:
            conn.close()

    async def append(self, row: HitRow) -> bool:
        """Queue a row and wait until it is journaled or spooled (True). False: it could
        be neither, so it waits in memory or was lost (counted and logged by the writer)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._queue.put((row, fut, loop))
        return await fut

    def health(self) -> JournalHealth:
        return self.fallback.health(self.writable)

    def _run(self) -> None:
        self._tick()  # journal what an earlier run left in the spool
        while True:
            try:
                first = self._queue.get(timeout=RETRY_SECONDS)
            except queue.Empty:
                self._tick()
                continue
            if isinstance(first, _Stop):
                break
            batch: list[_Item] = [first]
            stop = False
            while len(batch) < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = True
                    break
                batch.append(item)
            rows = [item[0] for item in batch]
            ok = self.commit(rows) or self.fallback.keep(rows, self._error)
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = defaultdict(list)
            for _row, fut, loop in batch:
                by_loop[loop].append(fut)
            for loop, futures in by_loop.items():
                # RuntimeError: the loop closed while we wrote, so nobody is waiting.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, futures, ok)
            if stop:
                break
            if time.monotonic() >= self._next_tick:
                self._tick()
        self.fallback.close(self)
        self._conn.close()

    def _tick(self) -> None:
        self._next_tick = time.monotonic() + RETRY_SECONDS
        try:
            if self.fallback.waiting(self):
                self.fallback.recover(self)
        except Exception:  # the thread must survive anything, or every request would hang
            log.exception("journal recovery failed; retrying")

    # --- the writes, each in one transaction; `writable` follows their outcome --------

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> tuple[bool, _T | None]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
        except Exception as exc:  # the thread must survive anything, or every request would hang
            # SQLite's message says it ("database or disk is full"); anything else is a bug
            self._error = str(exc) if isinstance(exc, sqlite3.Error) else repr(exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.writable = False
            return False, None
        self.writable = True
        return True, result

    def commit(self, rows: list[HitRow]) -> bool:
        if not self._write(functools.partial(_insert, rows=rows))[0]:
            return False
        self.batches += 1
        self.rows += len(rows)
        return True

    def probe(self) -> bool:
        """A one-row write: is the journal writable again?"""
        return self._write(_probe)[0]

    def commit_spooled(self, name: str, rows: list[HitRow]) -> int | None:
        """Journal a spool file's rows with its name, unless the name is already there (a
        crash came between that commit and the file's unlink). Rows inserted, or None."""
        ok, inserted = self._write(functools.partial(_insert_spooled, name=name, rows=rows))
        return inserted if ok else None

    def forget_spooled(self, name: str) -> None:
        """Drop a journaled file's name once the file is gone (a leftover is harmless)."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("DELETE FROM meta WHERE key = ?", (_SPOOLED + name,))

    def close(self) -> None:
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._checkpointer.join(timeout=10)


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(time.time()),))


def _insert_spooled(conn: sqlite3.Connection, name: str, rows: list[HitRow]) -> int:
    key = _SPOOLED + name
    if conn.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone() is not None:
        return 0
    _insert(conn, rows)
    conn.execute("INSERT INTO meta VALUES (?, ?)", (key, str(time.time())))
    return len(rows)


@dataclass(frozen=True, slots=True)
class JournalBatch:
    journal_id: str
    hits: list[RawHit]
    last_seq: int


class JournalReader:
    """What the ingest worker uses: read rows after a cursor, prune ingested rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = _connect(path)
        # Pruned rows hold full IP addresses: overwrite them, do not leave them in free
        # pages (docs/privacy.md, "Minimisation"). Only the reader deletes rows.
        self._conn.execute("PRAGMA secure_delete=ON")
        self.journal_id = journal_id(self._conn)

    def read(self, after_seq: int, limit: int) -> JournalBatch:
        rows = self._conn.execute(
            "SELECT seq, t, kind, delivery, link, ip, ua, method, headers FROM hit "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        hits = [self._to_hit(row) for row in rows]
        return JournalBatch(self.journal_id, hits, rows[-1][0] if rows else after_seq)

    def _to_hit(self, row: tuple[int, float, int, int, int | None, str, str, str, str]) -> RawHit:
        seq, t, kind, delivery, link, ip, ua, method, headers = row
        return RawHit(
            hit_id=f"{self.journal_id}:{seq}",
            received_at=datetime.fromtimestamp(t, UTC),
            kind=TokenKind(kind),
            delivery_id=delivery,
            link_id=link,
            ip=ip,
            user_agent=ua,
            method=method,
            headers=json.loads(headers),
        )

    def pending(self, after_seq: int) -> int:
        row = self._conn.execute("SELECT count(*) FROM hit WHERE seq > ?", (after_seq,)).fetchone()
        return int(row[0])

    def prune(self, upto_seq: int, before: datetime) -> int:
        """Delete ingested rows older than `before`; returns how many went.

        The ingest worker calls this after every batch and, when the journal is idle, at
        least once a minute (worker.Ingestor), with `before` = now -
        `journal_retention_hours`: a hit's full address leaves the journal within that
        retention plus a minute of being ingested."""
        cur = self._conn.execute(
            "DELETE FROM hit WHERE seq <= ? AND t < ?", (upto_seq, before.timestamp())
        )
        return cur.rowcount

    def close(self) -> None:
        self._conn.close()
