"""How far each journal has been ingested (`ingestcursor`), moved in the batch's transaction.

The cursor and the batch's events commit together, so a crash between reading a batch
and storing it re-reads a batch whose rows either all exist or none do.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from .bulk import insert_ignore
from .schema import ingestcursor


def position(conn: Connection, journal_id: str) -> int:
    """The last sequence number of this journal already stored (0 when none)."""
    value = conn.execute(
        select(ingestcursor.c.lastseq).where(ingestcursor.c.journalid == journal_id)
    ).scalar()
    return int(value or 0)


def advance(conn: Connection, journal_id: str, last_seq: int) -> None:
    insert_ignore(conn, ingestcursor, [{"journalid": journal_id, "lastseq": 0}], "journalid")
    conn.execute(
        update(ingestcursor).where(ingestcursor.c.journalid == journal_id).values(lastseq=last_seq)
    )
