"""Driver-level executemany stores exactly what SQLAlchemy's own executemany stores, and
`in_ids` selects exactly what `column.in_(ids)` selects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from mailsignal.store.bulk import executemany, in_ids, insert_ignore
from mailsignal.store.schema import email, emaildelivery, ingestcursor, systemuser

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


def test_in_ids_selects_what_in_selects(engine: Engine) -> None:
    """UUID and integer keys, an empty list, ids that match nothing, and a list longer
    than SQLite's bound-parameter limit, on both backends."""
    owner = uuid.uuid4()
    activities = [uuid.uuid4() for _ in range(30)]
    with engine.begin() as conn:
        conn.execute(
            insert(systemuser).values(systemuserid=owner, fullname="R", internalemailaddress="r@x")
        )
        conn.execute(insert(email), [_email(a, owner, f"s{i}") for i, a in enumerate(activities)])
        conn.execute(
            insert(emaildelivery),
            [
                {"emailactivityid": a, "emailaddress": f"d{i}@x.test", "tracked": True}
                for i, a in enumerate(activities)
            ],
        )
        deliveries = list(conn.execute(select(emaildelivery.c.deliveryid)).scalars())
        cases: list[tuple[Any, list[Any]]] = [
            (email.c.activityid, [*activities[::3], uuid.uuid4()]),
            (email.c.activityid, []),
            (emaildelivery.c.deliveryid, [*deliveries[1::2], 10**12]),
            (emaildelivery.c.deliveryid, deliveries + list(range(10**9, 10**9 + 40_000))),
        ]
        for column, ids in cases:
            got = set(conn.execute(select(column).where(in_ids(conn, column, ids))).scalars())
            want = (
                set(conn.execute(select(column).where(column.in_(ids))).scalars())
                if len(ids) < 30_000
                else {i for i in ids if i in set(deliveries)}
            )
            assert got == want
            assert got <= set(ids)
    assert len(want) == 30  # the long list found every real id
