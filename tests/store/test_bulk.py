"""Driver-level executemany stores exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from mailsignal.store.bulk import executemany, insert_ignore
from mailsignal.store.schema import email, ingestcursor, systemuser

WHEN = datetime(2026, 11, 3, 9, 30, 15, 123456, tzinfo=UTC)


def _email(activity: uuid.UUID, owner: uuid.UUID, subject: str) -> dict[str, Any]:
    return {"activityid": activity, "subject": subject, "sender": "rep@x.test", "ownerid": owner}


def test_insert_ignore_counts_only_rows_it_added(engine: Engine) -> None:
    """Rows added, not rows offered, on both backends (a concurrent ingestor may have
    stored the same hit a moment earlier)."""
    with engine.begin() as conn:
        first = [{"journalid": "j-a", "lastseq": 1}, {"journalid": "j-b", "lastseq": 2}]
        assert insert_ignore(conn, ingestcursor, first, "journalid") == 2
        again = [{"journalid": "j-a", "lastseq": 9}, {"journalid": "j-c", "lastseq": 3}]
        assert insert_ignore(conn, ingestcursor, again, "journalid") == 1
        assert insert_ignore(conn, ingestcursor, [], "journalid") == 0
        rows = dict(conn.execute(select(ingestcursor.c.journalid, ingestcursor.c.lastseq)).all())
    assert rows == {"j-a": 1, "j-b": 2, "j-c": 3}


def test_values_match_sqlalchemys_own_executemany(engine: Engine) -> None:
    """UUIDs, aware datetimes and Python-side defaults (ids, timestamps, onupdate) come
    out of the driver path as they come out of `conn.execute(stmt, rows)`."""
    owner = uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            insert(systemuser),
            [{"systemuserid": owner, "fullname": "Rep", "internalemailaddress": "r@x.test"}],
        )
        conn.execute(insert(email), [_email(a, owner, "by SQLAlchemy")])
        assert executemany(conn, insert(email), [_email(b, owner, "by the driver")]) == 1
        changes = [{"b_id": i, "b_open": 3, "b_when": WHEN} for i in (a, b)]
        stmt = (
            update(email)
            .where(email.c.activityid == bindparam("b_id"))
            .values(
                opencount=bindparam("b_open"),
                lastopenedtime=bindparam("b_when"),
                engagementverdict="human",
            )
        )
        conn.execute(stmt, changes[:1])
        assert executemany(conn, stmt, changes[1:]) == 1
        got = {r.activityid: r for r in conn.execute(select(email))}
    ours, theirs = got[b]._asdict(), got[a]._asdict()
    assert ours["lastopenedtime"] == theirs["lastopenedtime"] == WHEN
    assert ours["opencount"] == theirs["opencount"] == 3
    assert ours["modifiedon"] > ours["createdon"]  # onupdate applied
    assert ours["engagementverdict"] == "human"
    assert isinstance(ours["emailtrackingid"], uuid.UUID) and ours["emailtrackingid"].version == 7
    assert ours["createdon"].tzinfo is not None
    differ = {"activityid", "subject", "emailtrackingid", "conversationtrackingid"}
    differ |= {"createdon", "modifiedon"}
    assert {k: v for k, v in ours.items() if k not in differ} == {
        k: v for k, v in theirs.items() if k not in differ
    }
