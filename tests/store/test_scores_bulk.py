"""The set-wise recompute gives what rescoring party by party gives (store/scores_bulk.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from mailsignal.model import EventKind, Verdict
from mailsignal.settings import Settings
from mailsignal.store.schema import (
    account,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    lead,
    systemuser,
)
from mailsignal.store.scores import TABLES, rescore_parties, rescore_party, weights_of
from mailsignal.store.scores_bulk import recompute_scores_bulk

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROLLUPS = (
    "engagementscore",
    "emailsfollowedcount",
    "humanopencount",
    "humanclickcount",
    "replycount",
    "humandownloadcount",
    "lasthumanengagementon",
    "engagementscoreupdatedon",
)


def _party_rows(conn: Connection, table: Any, key: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping) for r in conn.execute(select(table.c[key], *[table.c[c] for c in ROLLUPS]))
    ]


def _seed(conn: Connection, rng: random.Random) -> None:
    """A small, messy dataset: every kind of party, shared and orphan deliveries."""
    rep = uuid.uuid4()
    conn.execute(
        insert(systemuser).values(systemuserid=rep, fullname="Rep", internalemailaddress="r@x.test")
    )
    accounts = [uuid.uuid4() for _ in range(6)]
    conn.execute(
        insert(account), [{"accountid": a, "name": f"A{i}"} for i, a in enumerate(accounts)]
    )
    contacts = [uuid.uuid4() for _ in range(25)]
    conn.execute(
        insert(contact),
        [
            {
                "contactid": c,
                "fullname": f"C{i}",
                "emailaddress1": f"c{i}@x.test",
                # Some without an account; account 5 has no contacts and no deliveries.
                "parentcustomerid": rng.choice([None, *accounts[:4]]),
            }
            for i, c in enumerate(contacts)
        ],
    )
    leads = [uuid.uuid4() for _ in range(8)]
    conn.execute(insert(lead), [{"leadid": p, "fullname": f"L{i}"} for i, p in enumerate(leads)])
    # Stale values the recompute must overwrite, also on parties without deliveries.
    for table, _key in TABLES.values():
        conn.execute(
            update(table).values(
                engagementscore=99.0, humanopencount=7, replycount=3, lasthumanengagementon=NOW
            )
        )
    recipients: list[tuple[str | None, uuid.UUID | None]] = (
        [("contact", c) for c in contacts[:20]]  # 5 contacts get nothing
        + [("lead", p) for p in leads[:6]]
        + [("account", a) for a in accounts[:3]]  # straight to an account too
        + [(None, None), ("systemuser", rep)]  # not a party
    )
    kinds, verdicts = list(EventKind), list(Verdict)
    hit = 0
    for n in range(60):
        activity = uuid.uuid4()
        sent = NOW - timedelta(days=rng.uniform(0, 60))
        conn.execute(
            insert(email).values(
                activityid=activity, subject=f"S{n}", sender="r@x.test", ownerid=rep, senton=sent
            )
        )
        for r in range(rng.randint(1, 3)):
            kind, party = rng.choice(recipients)
            delivery = conn.execute(
                insert(emaildelivery)
                .values(
                    emailactivityid=activity,
                    emailaddress=f"d{n}.{r}@x.test",
                    recipientobjectid=party,
                    recipientobjecttypecode=kind,
                    tracked=rng.random() < 0.85,
                )
                .returning(emaildelivery.c.deliveryid)
            ).scalar_one()
            for _ in range(rng.choice([0, 0, 1, 2, 5, 12])):
                hit += 1
                at = sent + timedelta(seconds=rng.uniform(0, 10 * 86400))
                conn.execute(
                    insert(interactionforemail).values(
                        emailactivityid=activity,
                        deliveryid=delivery,
                        interactiontype=int(rng.choice(kinds)),
                        verdict=rng.choice(verdicts).value,
                        # A few in the future (clock skew) count fully.
                        emailinteractiontime=min(at, NOW + timedelta(hours=2)),
                        emailaddress=f"d{n}.{r}@x.test",
                        hitid=f"h{hit}",
                    )
                )


@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_recompute_equals_rescoring_each_party(
    engine: Engine, settings: Settings, seed: int
) -> None:
    with engine.begin() as conn:
        _seed(conn, random.Random(seed))
    weights = weights_of(settings)
    with engine.connect() as conn:
        expected: dict[str, list[dict[str, Any]]] = {}
        for kind, (table, key) in TABLES.items():
            for party in conn.execute(select(table.c[key])).scalars().all():
                rescore_party(conn, kind, party, weights, NOW)
            expected[kind] = _party_rows(conn, table, key)
        conn.rollback()  # back to the stale values

    seen: list[int] = []
    done = recompute_scores_bulk(engine, settings, seen.append, now=NOW, batch=7)

    assert done == sum(seen) == sum(len(rows) for rows in expected.values()) == 39
    with engine.connect() as conn:
        for kind, (table, key) in TABLES.items():
            got = {r[key]: r for r in _party_rows(conn, table, key)}
            assert got.keys() == {r[key] for r in expected[kind]}
            for want in expected[kind]:
                row = got[want[key]]
                # The terms are summed in another order: the last rounded digit may move.
                assert row["engagementscore"] == pytest.approx(want["engagementscore"], abs=2e-6)
                assert {c: row[c] for c in ROLLUPS[1:]} == {c: want[c] for c in ROLLUPS[1:]}
    # The data is not trivial: scores, every counter and parties without events occur.
    flat = [r for rows in expected.values() for r in rows]
    assert any(r["engagementscore"] > 0 for r in flat)
    assert any(r["engagementscore"] == 0 and r["lasthumanengagementon"] is None for r in flat)
    for column in ("humanopencount", "humanclickcount", "replycount", "humandownloadcount"):
        assert any(r[column] > 0 for r in flat), column
    assert any(r["emailsfollowedcount"] > 0 for r in expected["account"])


@pytest.mark.parametrize("seed", [3, 4])
def test_rescoring_a_set_of_parties_equals_rescoring_each(
    engine: Engine, settings: Settings, seed: int
) -> None:
    """`rescore_parties` (what ingest runs per batch) writes what `rescore_party` writes,
    for the parties asked about and for no others."""
    with engine.begin() as conn:
        _seed(conn, random.Random(seed))
    weights = weights_of(settings)
    with engine.connect() as conn:
        everyone = [
            (kind, party)
            for kind, (table, key) in TABLES.items()
            for party in conn.execute(select(table.c[key])).scalars().all()
        ]
        before = {kind: _party_rows(conn, table, key) for kind, (table, key) in TABLES.items()}
        for kind, party in everyone:
            rescore_party(conn, kind, party, weights, NOW)
        expected = {kind: _party_rows(conn, table, key) for kind, (table, key) in TABLES.items()}
        conn.rollback()
    chosen = set(random.Random(seed).sample(everyone, len(everyone) // 2))
    with engine.begin() as conn:
        assert rescore_parties(conn, chosen, weights, NOW) == len(chosen)
    with engine.connect() as conn:
        for kind, (table, key) in TABLES.items():
            got = {r[key]: r for r in _party_rows(conn, table, key)}
            old = {r[key]: r for r in before[kind]}
            for want in expected[kind]:
                row = got[want[key]]
                if (kind, want[key]) not in chosen:
                    assert row == old[want[key]]  # untouched
                    continue
                assert row["engagementscore"] == pytest.approx(want["engagementscore"], abs=2e-6)
                assert {c: row[c] for c in ROLLUPS[1:]} == {c: want[c] for c in ROLLUPS[1:]}
    assert any(kind == "account" for kind, _p in chosen)
