"""Counters and scores kept by delta, batch after batch, equal a full recompute (issue 9).

Random recipient timelines (opens and clicks from people, Apple's relay, a mail gateway,
at random times, some before the send time and some after the batch that stores them,
bursts that turn earlier verdicts around) go through the real ingest path in random
batches, with a sweep in between now and then (verdicts revised with no new event).
Then every email's counters are recounted and every party rescored from all their
events: nothing may differ, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from helpers import (
    APPLE_RELAY_IP,
    CHROME,
    EOP_IP,
    OUTLOOK,
    SAFE_LINKS,
    assert_rollups_match_events,
    track_html,
)
from mailsignal.engagement import EMAIL_COUNTERS, PARTY_COUNTERS, decay, weights_of
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline import tally
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.pipeline.timelines import reclassify
from mailsignal.settings import Settings
from mailsignal.store import emails, events, parties, rescore, users
from mailsignal.store.parties import TABLES
from mailsignal.store.schema import email as email_table
from mailsignal.tokens import Signer

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AGENTS = [
    ("198.51.100.23", OUTLOOK),
    ("203.0.113.40", CHROME),
    (APPLE_RELAY_IP, "Mozilla/5.0"),
    (EOP_IP, SAFE_LINKS),
    ("198.51.100.99", CHROME),  # another person: a forward
]
_counter = itertools.count()

hit = st.tuples(
    st.sampled_from([0, 0, 0, 1, 2, 3]),  # which recipient (of 4 copies over 2 emails)
    st.sampled_from([TokenKind.OPEN, TokenKind.CLICK]),
    st.integers(0, 1),  # which link
    # Seconds after sending: around a few moments (at delivery, a minute on, hours and days
    # later, before the send time), so that bursts, sweeps over the links and many
    # addresses at once turn verdicts of earlier batches around.
    st.builds(
        int.__add__,
        st.sampled_from([-200, 3, 3600, 3600, 9 * 86400]),
        st.integers(0, 12),
    ),
    st.integers(0, len(AGENTS) - 1),
    st.sampled_from(["GET", "GET", "HEAD"]),
)
plan = st.tuples(
    st.lists(hit, min_size=1, max_size=24),
    st.lists(st.integers(1, 6), min_size=1, max_size=6),  # batch sizes, cycled
    st.lists(st.booleans(), min_size=1, max_size=6),  # sweep after this batch?
)


def _world(engine: Engine, settings_: Settings) -> tuple[list[Any], list[str]]:
    """A rep, an account with two contacts, a lead; two tracked emails, four copies (one
    to an address that is no party). Fresh addresses each time, so examples never meet."""
    keys, current = load_keyring(settings_.secret_file)
    signer = Signer(keys, current)
    n = next(_counter)
    people = [f"c{n}a@contoso.test", f"c{n}b@contoso.test", f"l{n}@fabrikam.test", f"x{n}@x.test"]
    with engine.begin() as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            users.add(conn, "Rep", "rep@northwind.test", opt_in=True)
        account = parties.add(conn, "account", f"Contoso {n}", None)
        parties.add(conn, "contact", "A", people[0], parent=account)
        parties.add(conn, "contact", "B", people[1], parent=account)
        parties.add(conn, "lead", "L", people[2])
        sent = [
            track_html(conn, signer, people[:2], sent_at=SENT),
            track_html(conn, signer, people[2:], sent_at=SENT + timedelta(hours=1)),
        ]
    copies = [(e, c) for e in sent for c in e.copies]
    return copies, people


def _raw(copies: list[Any], links: dict[Any, dict[int, int]], spec: Any, key: str) -> RawHit:
    who, kind, link, seconds, agent, method = spec
    tracked, copy = copies[who]
    ip, ua = AGENTS[agent]
    return RawHit(
        hit_id=key,
        received_at=SENT + timedelta(seconds=seconds),
        kind=kind,
        delivery_id=copy.delivery_id,
        link_id=links[tracked.activity_id][link] if kind is TokenKind.CLICK else None,
        ip=ip,
        user_agent=ua,
        method=method,
    )


def _email_columns(engine: Engine, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    names = [*EMAIL_COUNTERS, "lastopenedtime", "lasthumanopenedtime", "engagementverdict"]
    cols = [email_table.c[name] for name in ("activityid", *names, "noiseflag")]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(email_table.c.activityid.in_(ids))).mappings()
        return {r["activityid"]: {k: r[k] for k in r if k != "activityid"} for r in rows}


def _party_rows(engine: Engine, found: set[tuple[str, uuid.UUID]]) -> dict[Any, dict[str, Any]]:
    out = {}
    with engine.connect() as conn:
        for kind, party in found:
            table, key = TABLES[kind]
            row = conn.execute(select(table).where(table.c[key] == party)).mappings().one()
            out[(kind, party)] = dict(row)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan)
def test_incremental_equals_recompute(engine: Engine, settings: Settings, case: Any) -> None:
    hits, sizes, sweeps = case
    copies, _people = _world(engine, settings)
    enrichment = default_enrichment(settings)
    with engine.connect() as conn:
        links = {e.activity_id: emails.link_ids(conn, e.activity_id) for e, _c in copies}
        found = set(emails.parties_of(conn, links))
    raw = [_raw(copies, links, spec, f"p{next(_counter)}") for spec in hits]
    now = SENT + timedelta(minutes=5)
    start = 0
    for size, sweep in zip(itertools.cycle(sizes), itertools.cycle(sweeps), strict=False):
        if start >= len(raw):
            break
        batch = raw[start : start + size]
        start += size
        now += timedelta(hours=7)
        with engine.begin() as conn:
            store_hits(conn, batch, enrichment, settings, now=now)
        if sweep:  # what the hourly sweep does: time-based rules change verdicts
            now += timedelta(days=2)
            with engine.begin() as conn:
                delivered = events.deliveries(conn, [c.delivery_id for _e, c in copies], lock=True)
                _n, revised = reclassify(conn, delivered, settings, now=now)
                tally.apply(conn, revised, delivered, settings, now)

    ids = list(links)
    kept = _email_columns(engine, ids)
    kept_parties = _party_rows(engine, found)
    weights = weights_of(settings)
    later = now + timedelta(days=1)
    with engine.begin() as conn:
        tally.recount(conn, ids, settings, later)
        rescore.rescore(conn, found, weights, later)
    assert _email_columns(engine, ids) == kept
    assert_rollups_match_events(engine)
    for party, fresh in _party_rows(engine, found).items():
        old = kept_parties[party]
        since = old["engagementscoreupdatedon"]
        aged = old["engagementscore"] * (
            decay(weights, (later - since).total_seconds()) if since else 1.0
        )
        assert abs(fresh["engagementscore"] - aged) <= 1e-9 * max(1.0, aged), party
        for name in (*PARTY_COUNTERS, "emailsfollowedcount", "lasthumanengagementon"):
            assert fresh[name] == old[name], (party, name)
    # Every example has parties that receive the mail, and the score rules were run.
    assert {kind for kind, _p in found} == {"contact", "lead", "account"}
