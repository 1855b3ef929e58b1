from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailsignal.model import TokenKind
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
