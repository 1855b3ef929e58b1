"""Party scores and roll-ups rebuilt from events (store/scores.py) equal a reference
worked out in the test from the rules in docs/scoring.md (store/rescore.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from mailsignal.engagement import Weights, weights_of
from mailsignal.model import EventKind, Verdict
from mailsignal.settings import Settings
from mailsignal.store import rescore
from mailsignal.store.parties import TABLES
from mailsignal.store.schema import (
    account,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    lead,
    systemuser,
)

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


Party = tuple[str, uuid.UUID]


class Reference:
    """Each party's expected score and roll-ups, summed as the seed writes the events."""

    def __init__(self) -> None:
        self.score: dict[Party, float] = {}
        self.rows: dict[Party, dict[str, Any]] = {}

    def party(self, party: Party) -> dict[str, Any]:
        self.score.setdefault(party, 0.0)
        return self.rows.setdefault(
            party,
            {
                "emailsfollowedcount": 0,
                "humanopencount": 0,
                "humanclickcount": 0,
                "replycount": 0,
                "humandownloadcount": 0,
                "lasthumanengagementon": None,
            },
        )

    def event(
        self, owners: list[Party], kind: EventKind, verdict: Verdict, at: datetime, w: Weights
    ) -> None:
        # docs/scoring.md: points for human (forward at a fraction), aged from the event's
        # time (or when it was recorded, if earlier: the seed records everything at NOW).
        base = {EventKind.OPEN: w.open, EventKind.CLICK: w.click}.get(kind)
        base = base if base is not None else (w.reply if kind is EventKind.REPLY else w.attachment)
        factor = {Verdict.HUMAN: 1.0, Verdict.FORWARD: w.forward_fraction}.get(verdict, 0.0)
        age = max(0.0, (NOW - min(at, NOW)).total_seconds())
        points = base * factor * 0.5 ** (age / (w.half_life_days * 86400))
        column = None
        if kind is EventKind.REPLY and verdict is not Verdict.MACHINE:
            column = "replycount"
        elif verdict is Verdict.HUMAN:
            column = {
                EventKind.OPEN: "humanopencount",
                EventKind.CLICK: "humanclickcount",
                EventKind.ATTACHMENT: "humandownloadcount",
            }[kind]
        for owner in owners:
            row = self.party(owner)
            self.score[owner] += points
            if column:
                row[column] += 1
                last = row["lasthumanengagementon"]
                row["lasthumanengagementon"] = at if last is None or at > last else last


def _seed(conn: Connection, rng: random.Random, w: Weights) -> Reference:
    """A small, messy dataset: every kind of party, shared and orphan deliveries."""
    ref = Reference()
    rep = uuid.uuid4()
    conn.execute(
        insert(systemuser).values(systemuserid=rep, fullname="Rep", internalemailaddress="r@x.test")
    )
    accounts = [uuid.uuid4() for _ in range(6)]
    conn.execute(
        insert(account), [{"accountid": a, "name": f"A{i}"} for i, a in enumerate(accounts)]
    )
    contacts = [uuid.uuid4() for _ in range(25)]
    # Some without an account; account 5 has no contacts and no deliveries.
    parent = {c: rng.choice([None, *accounts[:4]]) for c in contacts}
    conn.execute(
        insert(contact),
        [
            {
                "contactid": c,
                "fullname": f"C{i}",
                "emailaddress1": f"c{i}@x.test",
                "parentcustomerid": parent[c],
            }
            for i, c in enumerate(contacts)
        ],
    )
    leads = [uuid.uuid4() for _ in range(8)]
    conn.execute(insert(lead), [{"leadid": p, "fullname": f"L{i}"} for i, p in enumerate(leads)])
    for a in accounts:
        ref.party(("account", a))
    for c in contacts:
        ref.party(("contact", c))
    for p in leads:
        ref.party(("lead", p))
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
            tracked = rng.random() < 0.85
            owners: list[Party] = []
            if kind in TABLES and party is not None:
                owners.append((kind, party))
                if kind == "contact" and parent[party] is not None:
                    owners.append(("account", parent[party]))
            for owner in owners:
                ref.party(owner)["emailsfollowedcount"] += tracked
            delivery = conn.execute(
                insert(emaildelivery)
                .values(
                    emailactivityid=activity,
                    emailaddress=f"d{n}.{r}@x.test",
                    recipientobjectid=party,
                    recipientobjecttypecode=kind,
                    tracked=tracked,
                )
                .returning(emaildelivery.c.deliveryid)
            ).scalar_one()
            for _ in range(rng.choice([0, 0, 1, 2, 5, 12])):
                hit += 1
                at = min(
                    sent + timedelta(seconds=rng.uniform(0, 10 * 86400)), NOW + timedelta(hours=2)
                )
                event_kind, verdict = rng.choice(kinds), rng.choice(verdicts)
                ref.event(owners, event_kind, verdict, at, w)
                conn.execute(
                    insert(interactionforemail).values(
                        emailactivityid=activity,
                        deliveryid=delivery,
                        interactiontype=int(event_kind),
                        verdict=verdict.value,
                        # A few in the future (clock skew): recorded at NOW, they age
                        # from NOW.
                        emailinteractiontime=at,
                        createdon=NOW,
                        emailaddress=f"d{n}.{r}@x.test",
                        hitid=f"h{hit}",
                    )
                )
    return ref


def _check(conn: Connection, ref: Reference, only: set[Party] | None = None) -> None:
    for kind, (table, key) in TABLES.items():
        for row in _party_rows(conn, table, key):
            party = (kind, row[key])
            if only is not None and party not in only:
                continue
            assert row["engagementscore"] == pytest.approx(ref.score[party], rel=1e-9, abs=1e-9)
            assert {c: row[c] for c in ROLLUPS[1:-1]} == ref.rows[party], party
            assert row["engagementscoreupdatedon"] == NOW


@pytest.mark.parametrize("seed", [1, 2])
def test_recompute_all_equals_the_reference(engine: Engine, settings: Settings, seed: int) -> None:
    weights = weights_of(settings)
    with engine.begin() as conn:
        ref = _seed(conn, random.Random(seed), weights)
    seen: list[int] = []
    done = rescore.recompute_all(engine, weights, NOW, seen.append, batch=7)
    assert done == sum(seen) == len(ref.rows) == 39
    with engine.connect() as conn:
        _check(conn, ref)
    # The data is not trivial: scores, every counter and parties without events occur.
    assert any(v > 0 for v in ref.score.values())
    flat = list(ref.rows.values())
    assert any(r["lasthumanengagementon"] is None for r in flat)
    for column in ("humanopencount", "humanclickcount", "replycount", "humandownloadcount"):
        assert any(r[column] > 0 for r in flat), column
    assert any(r["emailsfollowedcount"] > 0 for p, r in ref.rows.items() if p[0] == "account")


@pytest.mark.parametrize("seed", [3, 4])
def test_rescoring_some_parties_touches_only_them(
    engine: Engine, settings: Settings, seed: int
) -> None:
    weights = weights_of(settings)
    with engine.begin() as conn:
        ref = _seed(conn, random.Random(seed), weights)
    with engine.connect() as conn:
        before = {kind: _party_rows(conn, table, key) for kind, (table, key) in TABLES.items()}
    chosen = set(random.Random(seed).sample(sorted(ref.rows), len(ref.rows) // 2))
    with engine.begin() as conn:
        assert rescore.rescore(conn, chosen, weights, NOW) == len(chosen)
    with engine.connect() as conn:
        _check(conn, ref, chosen)
        for kind, (table, key) in TABLES.items():
            old = {r[key]: r for r in before[kind]}
            for row in _party_rows(conn, table, key):
                if (kind, row[key]) not in chosen:
                    assert row == old[row[key]]  # untouched
    assert any(kind == "account" for kind, _p in chosen)


def test_explain_gives_the_score_and_its_top_events(engine: Engine, settings: Settings) -> None:
    weights = weights_of(settings)
    with engine.begin() as conn:
        ref = _seed(conn, random.Random(5), weights)
    with engine.connect() as conn:
        for party, expected in ref.score.items():
            total, top = rescore.explain(conn, party, weights, NOW)
            assert total == pytest.approx(expected, rel=1e-9, abs=1e-9)
            assert [t.points for t in top] == sorted((t.points for t in top), reverse=True)
            assert len(top) <= 5 and all(t.points > 0 for t in top)
