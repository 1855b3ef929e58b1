"""The file side of erasure (store/erasure.py, issue 13): the hit journal loses exactly
the erased copies' rows, overwritten, its WAL emptied; spool files are rewritten
without them, and a file its writer still holds is left and counted busy."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

from mailsignal.store import erasure
from mailsignal.store.journal import JournalWriter
from mailsignal.store.spool import Spool, read


def _row(delivery: int, ip: str) -> tuple[float, int, int, None, str, str, str, str]:
    return (time.time(), 0, delivery, None, ip, "Mozilla/5.0", "GET", "{}")


def test_journal_loses_only_the_erased_copies_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = JournalWriter(path)
    try:
        assert writer.commit(
            [_row(7, "198.51.100.77"), _row(8, "203.0.113.9"), _row(7, "198.51.100.77")]
        )
    finally:
        writer.close()
    assert erasure.journal_hits(path, [7, 99]) == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT delivery, ip FROM hit").fetchall() == [(8, "203.0.113.9")]
    for name in ("journal.db", "journal.db-wal"):
        file = tmp_path / name
        assert not file.exists() or b"198.51.100.77" not in file.read_bytes()
    assert erasure.journal_hits(tmp_path / "missing.db", [7]) == 0


def test_spool_files_are_rewritten_unless_their_writer_holds_them(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    sealed = Spool(directory)
    assert sealed.append([_row(7, "198.51.100.77"), _row(8, "203.0.113.9")])
    sealed.seal()
    [done] = directory.glob("*.spool")
    held = Spool(directory)  # a writer still appending: its file stays locked
    assert held.append([_row(7, "198.51.100.77")])
    try:
        assert erasure.spooled_hits(directory, [7]) == (1, 1)
        assert [r[2] for r in read(done)] == [8]
        assert os.stat(done).st_mode & 0o777 == 0o600
        # The rewritten file can still be claimed as the journal's replay claims it.
        fd = os.open(done, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    finally:
        held.seal()
    assert erasure.spooled_hits(directory, [7]) == (1, 0)
    assert erasure.spooled_hits(None, [7]) == (0, 0)


def test_aggregate_opens_are_not_a_copys_rows(tmp_path: Path) -> None:
    """Issue 13: an aggregate open's `delivery` is an email's pixel id, whatever copy id
    it equals; erasing copy 7 keeps the aggregate hit of pixel 7 (it names no one)."""
    aggregate = (time.time(), 7, 7, None, "", "", "GET", "{}")  # TokenKind.AGGREGATE_OPEN
    path = tmp_path / "journal.db"
    writer = JournalWriter(path)
    try:
        assert writer.commit([_row(7, "198.51.100.77"), aggregate])
    finally:
        writer.close()
    assert erasure.journal_hits(path, [7]) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT kind, delivery, ip FROM hit").fetchall() == [(7, 7, "")]
    directory = tmp_path / "spool"
    spool = Spool(directory)
    assert spool.append([_row(7, "198.51.100.77"), aggregate])
    spool.seal()
    assert erasure.spooled_hits(directory, [7]) == (1, 0)
    [done] = directory.glob("*.spool")
    assert [(r[1], r[2]) for r in read(done)] == [(7, 7)]
