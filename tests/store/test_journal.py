from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailsignal.model import TokenKind
from mailsignal.store import spool
from mailsignal.store.fallback import RateLimitedLog
from mailsignal.store.journal import JournalReader, JournalWriter


def _row(i: int) -> tuple[float, int, int, int | None, str, str, str, str]:
    return (time.time(), int(TokenKind.OPEN), i, None, "192.0.2.1", "ua", "GET", "{}")


def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "j.db")

    async def main() -> list[bool]:
        return await asyncio.gather(*(writer.append(_row(i)) for i in range(500)))

    assert all(asyncio.run(main()))
    writer.close()
    assert writer.rows == 500
    assert writer.batches < 500  # concurrent requests shared commits
    reader = JournalReader(tmp_path / "j.db")
    batch = reader.read(0, 1000)
    assert [h.delivery_id for h in batch.hits] == list(range(500))
    assert len({h.hit_id for h in batch.hits}) == 500
    assert batch.hits[0].hit_id.startswith(reader.journal_id + ":")


def test_cursor_reads_only_new_rows_and_seq_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    writer = JournalWriter(path)
    asyncio.run(writer.append(_row(1)))
    reader = JournalReader(path)
    first = reader.read(0, 10)
    assert reader.prune(first.last_seq, datetime.now(UTC) + timedelta(seconds=1)) == 1
    asyncio.run(writer.append(_row(2)))
    second = reader.read(first.last_seq, 10)
    assert [h.delivery_id for h in second.hits] == [2]
    assert second.last_seq > first.last_seq
    writer.close()


def test_two_writers_share_one_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    a, b = JournalWriter(path), JournalWriter(path)
    assert a.journal_id == b.journal_id

    async def main() -> None:
        await asyncio.gather(*(w.append(_row(i)) for i in range(100) for w in (a, b)))

    asyncio.run(main())
    a.close()
    b.close()
    hits = JournalReader(path).read(0, 1000).hits
    assert len(hits) == 200 and len({h.hit_id for h in hits}) == 200


# --- when the journal cannot be written (issue 10) ----------------------------------
# `PRAGMA max_page_count` caps the journal's size on the writer's own connection: SQLite
# then fails the commit with the real SQLITE_FULL ("database or disk is full") a full
# disk gives, without needing a small filesystem (tests/web/test_diskfull.py has one).
# The pragma is set from the test's thread; SQLite's serialized mode allows that.


def _cap(writer: JournalWriter, full: bool) -> None:
    pages = writer._conn.execute("PRAGMA page_count").fetchone()[0]
    writer._conn.execute(f"PRAGMA max_page_count = {pages if full else 1 << 30}")


def _big_row(i: int) -> tuple[float, int, int, int | None, str, str, str, str]:
    # big enough that a batch needs new pages, so the cap bites
    return (
        time.time(),
        int(TokenKind.OPEN),
        i,
        None,
        "192.0.2.1",
        f"ua/{i}" + "x" * 5000,
        "GET",
        "{}",
    )


def _append_all(writer: JournalWriter, ids: range) -> list[bool]:
    async def main() -> list[bool]:
        return await asyncio.gather(*(writer.append(_big_row(i)) for i in ids))

    return asyncio.run(main())


def _journaled(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT delivery FROM hit ORDER BY delivery")]


def _wait(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.05)


def _spooled(directory: Path) -> list[int]:
    return sorted(row[2] for f in directory.glob("*" + spool.SUFFIX) for row in spool.read(f))


def test_a_failed_commit_spools_then_journals_exactly_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, spool_dir = tmp_path / "j.db", tmp_path / "spool"
    writer = JournalWriter(path, spool_dir=spool_dir)
    assert all(_append_all(writer, range(0, 20)))
    _cap(writer, full=True)
    assert all(_append_all(writer, range(20, 220))), "spooled hits count as durable"
    health = writer.health()
    assert not health.writable and health.spool_files >= 1
    assert (health.failed, health.spooled, health.buffered, health.lost) == (200, 200, 0, 0)
    assert _spooled(spool_dir) == list(range(20, 220))
    assert _journaled(path) == list(range(20))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "database or disk is full" in errors[0].getMessage()
    assert not any("192.0.2.1" in r.getMessage() or "ua/" in r.getMessage() for r in errors)

    _cap(writer, full=False)  # space is back
    _wait(lambda: writer.health().replayed == 200, "replay")
    assert writer.health().spool_files == 0 and writer.health().writable
    assert _journaled(path) == list(range(220))
    assert all(_append_all(writer, range(220, 230)))
    writer.close()
    assert _journaled(path) == list(range(230))
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'spooled:%'").fetchone()[0] == 0
        )


def test_without_a_spool_hits_wait_in_memory_and_overflow_is_counted_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    writer = JournalWriter(path, buffer_max=5)
    asyncio.run(writer.append(_big_row(0)))
    _cap(writer, full=True)
    assert _append_all(writer, range(1, 9)) == [False] * 8  # answered, but not durable
    health = writer.health()
    assert (health.writable, health.buffered, health.lost) == (False, 5, 3)
    assert any("3 LOST" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    _cap(writer, full=False)
    _wait(lambda: writer.health().buffered == 0 and writer.health().writable, "buffer flush")
    writer.close()
    assert len(_journaled(path)) == 6 and writer.health().lost == 3


def test_a_crash_between_journaling_a_spool_file_and_deleting_it(tmp_path: Path) -> None:
    """The process dies right after the commit that journaled a spool file (its unlink
    never runs); the next writer must find the file's name and only delete the file."""
    path, spool_dir = tmp_path / "j.db", tmp_path / "spool"
    left = spool.Spool(spool_dir)
    assert left.append([_row(i) for i in range(50)])
    left.seal()
    crash = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "os.unlink = lambda *a, **k: os._exit(9)  # dies between the commit and the unlink\n"
        "from mailsignal.store.journal import JournalWriter\n"
        "JournalWriter(Path(sys.argv[1]), spool_dir=Path(sys.argv[2]))\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", crash, str(path), str(spool_dir)], timeout=60, check=False
    )
    assert done.returncode == 9
    assert _journaled(path) == list(range(50)), "the commit went through before the crash"
    assert len(list(spool_dir.glob("*" + spool.SUFFIX))) == 1, "the file outlived the crash"

    writer = JournalWriter(path, spool_dir=spool_dir)  # a restart replays at once
    _wait(lambda: writer.health().spool_files == 0, "the leftover file deleted")
    writer.close()
    assert _journaled(path) == list(range(50)), "journaled once, not twice"
    assert writer.health().replayed == 0
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'spooled:%'").fetchone()[0] == 0
        )


def test_writers_sharing_a_spool_journal_each_file_once(tmp_path: Path) -> None:
    """What several server workers left behind, replayed by several starting at once."""
    path, spool_dir = tmp_path / "j.db", tmp_path / "spool"
    for f in range(8):
        left = spool.Spool(spool_dir)
        assert left.append([_row(f * 100 + i) for i in range(100)])
        left.seal()
    ctx = multiprocessing.get_context("spawn")
    others = [ctx.Process(target=_replay_in_child, args=(path, spool_dir)) for _ in range(2)]
    for proc in others:
        proc.start()
    writers = [JournalWriter(path, spool_dir=spool_dir) for _ in range(2)]
    for proc in others:
        proc.join(60)
        assert proc.exitcode == 0
    _wait(lambda: not list(spool_dir.glob("*" + spool.SUFFIX)), "every file journaled")
    for writer in writers:
        writer.close()
    assert _journaled(path) == list(range(800))


def _replay_in_child(path: Path, spool_dir: Path) -> None:
    writer = JournalWriter(path, spool_dir=spool_dir)
    time.sleep(0.5)
    writer.close()


def test_the_owner_of_a_spool_file_keeps_it_from_claimers(tmp_path: Path) -> None:
    mine, theirs = spool.Spool(tmp_path), spool.Spool(tmp_path)
    assert mine.append([_row(1)])
    assert list(theirs.claims()) == [], "locked by its writer while it may still append"
    mine.seal()
    [claimed] = list(theirs.claims())
    assert [r[2] for r in claimed.rows] == [1]
    assert list(spool.Spool(tmp_path).claims()) == [], "locked by its claimer"
    theirs.release(claimed, journaled=True)
    assert mine.pending() == 0


def test_a_torn_last_line_is_an_unanswered_write() -> None:
    whole = json.dumps(list(_row(1))).encode() + b"\n"
    rows, bad = spool.parse(whole + whole[:20])
    assert (len(rows), bad) == (1, 0)
    assert spool.parse(whole + b"not json\n" + whole)[1] == 1


def test_journal_and_spool_files_are_private(tmp_path: Path) -> None:
    path, spool_dir = tmp_path / "new" / "j.db", tmp_path / "spool"
    spool_dir.mkdir()
    spool_dir.chmod(0o755)  # made by hand, too open: tightened
    writer = JournalWriter(path, spool_dir=spool_dir)
    asyncio.run(writer.append(_row(1)))
    assert writer.fallback.spool is not None and writer.fallback.spool.append([_row(2)])
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), *spool_dir.glob("*.spool")]
    modes = {f.name: f.stat().st_mode & 0o777 for f in files}
    writer.close()
    assert set(modes.values()) == {0o600}, modes
    assert (path.parent.stat().st_mode & 0o777, spool_dir.stat().st_mode & 0o777) == (0o700, 0o700)


def test_an_older_readable_journal_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    JournalReader(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_rate_limited_log_says_how_many_since_its_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(
        logging.getLogger("test.ratelog"),
        "%(failed)d failed (%(error)s)",
        ("failed",),
        every=30.0,
        clock=lambda: now[0],
    )
    limited.add("disk full", failed=1)  # the first one at once
    for t in (1.0, 10.0, 29.0):
        now[0] = t
        limited.add(failed=2)
    now[0] = 31.0
    limited.add(failed=1)  # the quiet interval's count rides along
    limited.flush()  # nothing new: no line
    now[0] = 40.0
    limited.add("io error", failed=4)
    limited.flush(force=True)
    assert [r.getMessage() for r in caplog.records if r.name == "test.ratelog"] == [
        "1 failed (disk full)",
        "7 failed (disk full)",
        "4 failed (io error)",
    ]
