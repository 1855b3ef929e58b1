from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from sqlalchemy import Engine, select, update

from helpers import (
    APPLE_RELAY_IP,
    EOP_IP,
    OUTLOOK,
    PERSON_IP,
    SAFE_LINKS,
    add_rep,
    track_html,
)
from mailsignal.enrich import Pipeline
from mailsignal.keyring import load_keyring
from mailsignal.model import TokenKind, new_id
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import emails as store_emails
from mailsignal.store import events as store_events
from mailsignal.store import parties
from mailsignal.store.journal import JournalWriter
from mailsignal.store.schema import (
    account,
    contact,
    ingestcursor,
    interactionforemail,
    trackedlink,
)
from mailsignal.tokens import Signer

PIPELINE = Pipeline.default()


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _journal(
    settings: Settings,
    rows: list[tuple[float, TokenKind, int, int | None, str, str]],
    method: str = "GET",
) -> None:
    writer = JournalWriter(settings.journal_file)

    async def main() -> None:
        for t, kind, delivery, link, ip, ua in rows:
            await writer.append((t, int(kind), delivery, link, ip, ua, method, "{}"))

    asyncio.run(main())
    writer.close()


def _setup(engine: Engine, settings: Settings, sent: datetime) -> tuple[object, int, list[int]]:
    with engine.begin() as conn:
        add_rep(conn)
        result = track_html(conn, _signer(settings), ["dana@contoso.test"], sent_at=sent)
        links = [
            r[0]
            for r in conn.execute(
                select(trackedlink.c.linkid)
                .where(trackedlink.c.emailactivityid == result.activity_id)
                .order_by(trackedlink.c.position)
            )
        ]
    return result.activity_id, result.copies[0].delivery_id, links


def test_mpp_prefetch_then_person_then_click(engine: Engine, settings: Settings) -> None:
    sent = datetime.now(UTC) - timedelta(hours=1)
    activity, delivery, links = _setup(engine, settings, sent)
    t0 = sent.timestamp()
    _journal(
        settings,
        [
            (t0 + 2, TokenKind.OPEN, delivery, None, APPLE_RELAY_IP, "Mozilla/5.0"),
            (t0 + 1800, TokenKind.OPEN, delivery, None, PERSON_IP, OUTLOOK),
            (t0 + 1830, TokenKind.CLICK, delivery, links[0], PERSON_IP, OUTLOOK),
        ],
    )
    ingestor = Ingestor(engine, settings, PIPELINE)
    assert ingestor.drain() == 3
    with engine.connect() as conn:
        events = store_events.of_email(conn, activity)  # type: ignore[arg-type]
        row = store_emails.get(conn, activity)  # type: ignore[arg-type]
    assert [e["verdict"] for e in events] == ["machine", "human", "human"]
    mpp = [r["rule"] for r in events[0]["reasons"]["fired"]]
    assert "network.apple_mpp" in mpp and "timing.within_seconds_of_send" in mpp
    assert "corroboration.later_click" in [r["rule"] for r in events[1]["reasons"]["fired"]]
    assert "network.apple_mpp" in events[1]["reasons"]["not_fired"]
    assert events[2]["interactedcomponenttext"] == "https://example.com/pricing?a=1&b=2"
    assert events[0]["emailaddress"] == "dana@contoso.test"
    assert (row["opencount"], row["humanopencount"], row["machineopencount"]) == (2, 1, 1)
    assert (row["linksclickedcount"], row["humanlinksclickedcount"]) == (1, 1)
    assert row["lastopenedtime"] == events[1]["emailinteractiontime"]
    assert row["engagementverdict"] == "human"


def test_scanner_burst_is_machine_and_counts_stay_raw(engine: Engine, settings: Settings) -> None:
    sent = datetime.now(UTC) - timedelta(minutes=5)
    activity, delivery, links = _setup(engine, settings, sent)
    t0 = sent.timestamp()
    _journal(
        settings,
        [(t0 + 4, TokenKind.OPEN, delivery, None, EOP_IP, SAFE_LINKS)]
        + [
            (t0 + 5 + i * 0.2, TokenKind.CLICK, delivery, link, EOP_IP, SAFE_LINKS)
            for i, link in enumerate(links)
        ],
    )
    Ingestor(engine, settings, PIPELINE).drain()
    with engine.connect() as conn:
        events = store_events.of_email(conn, activity)  # type: ignore[arg-type]
        row = store_emails.get(conn, activity)  # type: ignore[arg-type]
    assert {e["verdict"] for e in events} == {"machine"}
    assert "burst.all_links" in [r["rule"] for r in events[-1]["reasons"]["fired"]]
    assert (
        row["opencount"],
        row["humanopencount"],
        row["linksclickedcount"],
        row["humanlinksclickedcount"],
        row["machinelinksclickedcount"],
    ) == (1, 0, 2, 0, 2)
    assert row["engagementverdict"] == "machine"


def test_reingest_after_lost_cursor_stores_nothing_twice(
    engine: Engine, settings: Settings
) -> None:
    sent = datetime.now(UTC) - timedelta(hours=2)
    _activity, delivery, _links = _setup(engine, settings, sent)
    _journal(settings, [(time.time(), TokenKind.OPEN, delivery, None, PERSON_IP, OUTLOOK)] * 5)
    assert Ingestor(engine, settings, PIPELINE).drain() == 5
    with engine.begin() as conn:  # simulate a crash that lost the cursor update
        conn.execute(update(ingestcursor).values(lastseq=0))
    assert Ingestor(engine, settings, PIPELINE).drain() == 0
    with engine.connect() as conn:
        assert len(conn.execute(select(interactionforemail)).all()) == 5


def test_hits_for_unknown_deliveries_are_skipped(engine: Engine, settings: Settings) -> None:
    _setup(engine, settings, datetime.now(UTC))
    _journal(settings, [(time.time(), TokenKind.OPEN, 999_999, None, PERSON_IP, OUTLOOK)])
    ingestor = Ingestor(engine, settings, PIPELINE)
    result = ingestor.run_once()
    assert (result.stored, result.orphans) == (0, 1)
    assert ingestor.run_once().orphans == 0  # the cursor moved past it


def test_link_of_another_email_is_refused(engine: Engine, settings: Settings) -> None:
    _activity, delivery, _links = _setup(engine, settings, datetime.now(UTC))
    with engine.begin() as conn:
        other = track_html(conn, _signer(settings), ["x@y.test"])
        foreign = (
            conn.execute(
                select(trackedlink.c.linkid).where(
                    trackedlink.c.emailactivityid == other.activity_id
                )
            )
            .scalars()
            .first()
        )
    _journal(settings, [(time.time(), TokenKind.CLICK, delivery, foreign, PERSON_IP, OUTLOOK)])
    assert Ingestor(engine, settings, PIPELINE).run_once().orphans == 1


def test_head_request_and_automation_are_machine(engine: Engine, settings: Settings) -> None:
    sent = datetime.now(UTC) - timedelta(hours=3)
    activity, delivery, _ = _setup(engine, settings, sent)
    _journal(
        settings, [(time.time(), TokenKind.OPEN, delivery, None, PERSON_IP, OUTLOOK)], method="HEAD"
    )
    _journal(
        settings,
        [(time.time(), TokenKind.OPEN, delivery, None, PERSON_IP, "python-requests/2.32.3")],
    )
    Ingestor(engine, settings, PIPELINE).drain()
    with engine.connect() as conn:
        events = store_events.of_email(conn, activity)  # type: ignore[arg-type]
    fired = [{r["rule"] for r in e["reasons"]["fired"]} for e in events]
    assert [e["verdict"] for e in events] == ["machine", "machine"]
    assert "request.head" in fired[0] and "useragent.automation" in fired[1]


def test_scores_and_rollups_follow_human_events_only(engine: Engine, settings: Settings) -> None:
    sent = datetime.now(UTC) - timedelta(hours=3)
    with engine.begin() as conn:
        acct = parties.add(conn, "account", "Contoso", None)
        parties.add(conn, "contact", "Dana", "dana@contoso.test", parent=acct)
    _activity, delivery, links = _setup(engine, settings, sent)
    t0 = sent.timestamp()
    _journal(
        settings,
        [
            (t0 + 3, TokenKind.OPEN, delivery, None, APPLE_RELAY_IP, "Mozilla/5.0"),
            (t0 + 5, TokenKind.CLICK, delivery, links[0], EOP_IP, SAFE_LINKS),
        ],
    )
    Ingestor(engine, settings, PIPELINE).drain()
    with engine.connect() as conn:
        row = conn.execute(select(contact)).mappings().one()
        assert row["engagementscore"] == 0.0  # machines never move a score
        assert row["emailsfollowedcount"] == 1
    _journal(
        settings,
        [
            (t0 + 1800, TokenKind.OPEN, delivery, None, PERSON_IP, OUTLOOK),
            (t0 + 1830, TokenKind.CLICK, delivery, links[1], PERSON_IP, OUTLOOK),
        ],
    )
    Ingestor(engine, settings, PIPELINE).drain()
    with engine.connect() as conn:
        person = conn.execute(select(contact)).mappings().one()
        company = conn.execute(select(account)).mappings().one()
    assert 5.9 < person["engagementscore"] <= 6.0  # open 1 + click 5, hours old
    assert (person["humanopencount"], person["humanclickcount"]) == (1, 1)
    assert person["lasthumanengagementon"] is not None
    assert company["engagementscore"] == person["engagementscore"]


def test_new_ids_are_time_ordered_uuid7() -> None:
    """Row ids sort by creation time, so inserts append to the right edge of each index."""
    ids = [new_id() for _ in range(1000)]
    assert all(i.version == 7 for i in ids)
    assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)


def test_city_database_setting_gives_country_and_city(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`geoip_city_db` reaches enrichment: a real MaxMind-format database (written by
    mmdb-writer, read by maxminddb) names the country and city of a hit."""
    writer = MMDBWriter(
        ip_version=6, database_type="GeoLite2-City", languages=["en"], ipv4_compatible=True
    )
    record = {"country": {"iso_code": "DE"}, "city": {"names": {"en": "Berlin"}}}
    writer.insert_network(IPSet(["198.51.100.0/24"]), record)
    writer.to_db_file(str(tmp_path / "city.mmdb"))
    settings = settings.model_copy(update={"geoip_city_db": tmp_path / "city.mmdb"})
    sent = datetime.now(UTC) - timedelta(hours=2)
    activity, delivery, _links = _setup(engine, settings, sent)
    t0 = sent.timestamp()
    _journal(
        settings,
        [
            (t0 + 3600, TokenKind.OPEN, delivery, None, "198.51.100.7", OUTLOOK),
            (t0 + 3700, TokenKind.OPEN, delivery, None, "203.0.113.9", OUTLOOK),
        ],
    )
    assert Ingestor(engine, settings).drain() == 2
    with engine.connect() as conn:
        events = store_events.of_email(conn, activity)  # type: ignore[arg-type]
    assert [e["interactionlocation"] for e in events] == ["Berlin, DE", None]
    assert events[0]["facts"]["net"]["country"] == "DE"


def test_a_prune_that_fails_neither_fails_the_batch_nor_floods_the_log(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full journal disk the prune after each batch failed too, and the worker logged
    that as a failed batch, with a traceback, every two seconds (#10)."""
    sent = datetime.now(UTC) - timedelta(hours=1)
    _activity, delivery, _links = _setup(engine, settings, sent)
    ingestor = Ingestor(
        engine, settings.model_copy(update={"journal_retention_hours": 0}), PIPELINE
    )
    ingestor.reader._conn.execute("PRAGMA busy_timeout=0")
    holder = sqlite3.connect(settings.journal_file)
    try:
        for i in range(3):
            hits = [(sent.timestamp() + 60 * i, TokenKind.OPEN, delivery, None, PERSON_IP, OUTLOOK)]
            _journal(settings, hits)
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the journal
            with caplog.at_level(logging.WARNING, logger="mailsignal.pipeline.worker"):
                assert ingestor.run_once().stored == 1  # the batch itself went in
            holder.execute("ROLLBACK")
    finally:
        holder.close()
    lines = [r for r in caplog.records if "journal prune failed" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]  # rate-limited
    assert "database is locked" in lines[0].getMessage() and lines[0].exc_info is None
    assert ingestor.run_once().stored == 0  # and the lock gone, nothing is stored twice
