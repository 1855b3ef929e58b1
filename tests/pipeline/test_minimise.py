"""Minimisation (issue 13) on SQLite and PostgreSQL: ingest keeps what `ip_storage` says
and the facts of the full address; `privacy minimise` cuts events stored earlier without
changing a verdict; the worker prunes an idle journal, so full addresses leave it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from conftest import cli
from helpers import CHROME, OUTLOOK, add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.pipeline.minimise import minimise_stored
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store.journal import JournalWriter
from mailsignal.store.schema import interactionforemail
from mailsignal.tokens import Signer

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Three addresses of one /24 and one /48 fetch within 30 s (a filter farm), then a person.
FARM = ["198.51.100.11", "198.51.100.12", "2001:db8:1:2::5", "2001:db8:1:3::6"]
PERSON = "203.0.113.40"


def _mail(engine: Engine, settings: Settings) -> int:
    with engine.begin() as conn:
        add_rep(conn)
        tracked = track_html(
            conn, Signer(*load_keyring(settings.secret_file)), ["dana@contoso.test"], sent_at=SENT
        )
    return int(tracked.copies[0].delivery_id)


def _hits(delivery: int) -> list[RawHit]:
    hits = [
        RawHit(
            f"m{i}",
            SENT + timedelta(hours=1, seconds=i),
            TokenKind.OPEN,
            delivery,
            None,
            ip,
            CHROME,
            "GET",
        )
        for i, ip in enumerate(FARM)
    ]
    hits.append(
        RawHit(
            "m9",
            SENT + timedelta(days=1),
            TokenKind.OPEN,
            delivery,
            None,
            PERSON,
            OUTLOOK,
            "GET",
            {"x-forwarded-for": f"{PERSON}, 10.1.2.3", "via": "1.1 proxy"},
        )
    )
    return hits


def _rows(engine: Engine) -> list[Any]:
    ev = interactionforemail
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    ev.c.hitid,
                    ev.c.ipaddress,
                    ev.c.facts,
                    ev.c.verdict,
                    ev.c.reasons,
                    ev.c.headers,
                ).order_by(ev.c.hitid)
            )
        )


def _ingest(engine: Engine, settings: Settings, delivery: int) -> None:
    with engine.begin() as conn:
        store_hits(
            conn,
            _hits(delivery),
            default_enrichment(settings),
            settings,
            now=SENT + timedelta(days=2),
        )


def test_ingest_keeps_what_ip_storage_says_and_the_same_verdicts(
    engine: Engine, settings: Settings
) -> None:
    delivery = _mail(engine, settings)
    _ingest(engine, settings, delivery)  # the default: truncated
    rows = _rows(engine)
    assert [r.ipaddress for r in rows] == [
        "198.51.100.0",
        "198.51.100.0",
        "2001:db8:1::",
        "2001:db8:1::",
        "203.0.113.0",
    ]
    assert rows[-1].headers == {"x-forwarded-for": "203.0.113.0, 10.1.2.0", "via": "1.1 proxy"}
    # Facts from the full address: the network enricher saw it, the pseudonyms differ.
    assert len({r.facts["addr"]["host"] for r in rows}) == 5
    fired = [{e["rule"] for e in r.reasons["fired"]} for r in rows]
    assert all("burst.many_addresses" in f for f in fired[:4]), fired
    full = settings.model_copy(update={"ip_storage": "full"})
    with engine.begin() as conn:
        conn.execute(interactionforemail.delete())
    _ingest(engine, full, delivery)
    again = _rows(engine)
    assert [r.ipaddress for r in again] == [*FARM, PERSON]
    assert again[-1].headers["x-forwarded-for"] == f"{PERSON}, 10.1.2.3"
    assert [(r.verdict, r.reasons) for r in again] == [(r.verdict, r.reasons) for r in rows]


def test_minimise_cuts_stored_addresses_and_keeps_verdicts(
    engine: Engine, settings: Settings
) -> None:
    delivery = _mail(engine, settings)
    _ingest(engine, settings.model_copy(update={"ip_storage": "full"}), delivery)
    with engine.begin() as conn:  # rows from before this release: no pseudonyms
        for row in _rows(engine):
            facts = {k: v for k, v in row.facts.items() if k != "addr"}
            conn.execute(
                update(interactionforemail)
                .where(interactionforemail.c.hitid == row.hitid)
                .values(facts=facts)
            )
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_IP_STORAGE": "none",
    }
    cli(env, "classify", "--recompute")  # verdicts as of today, from the full addresses
    before = _rows(engine)
    done = cli(env, "privacy", "minimise", "--batch", "2")
    assert "5 of 5 stored events rewritten (ip_storage=none)" in done.stdout
    after = _rows(engine)
    assert {r.ipaddress for r in after} == {""}
    assert after[-1].headers == {"via": "1.1 proxy"}
    assert all(r.facts["addr"]["net"] for r in after)
    text = repr([tuple(r) for r in after])
    assert not any(ip in text for ip in (*FARM, PERSON, "198.51.100.1"))
    assert [r.facts["net"] for r in after] == [r.facts["net"] for r in before]
    cli(env, "classify", "--recompute")
    assert [(r.verdict, r.reasons) for r in _rows(engine)] == [
        (r.verdict, r.reasons) for r in before
    ]
    assert "0 of 5" in cli(env, "privacy", "minimise").stdout
    trail = cli(env, "audit", "list", "--action", "privacy.minimise", "--json").stdout
    assert '"events": 5' in trail.replace('"events":5', '"events": 5')
    # Called directly, with nothing left to do, it rewrites nothing.
    assert minimise_stored(engine, settings.model_copy(update={"ip_storage": "none"})) == 0


def test_retention_command(engine: Engine, settings: Settings) -> None:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }
    done = cli(env, "privacy", "retention", "--json")
    assert '"events": 0' in done.stdout and '"complete": true' in done.stdout
    off = {
        **env,
        "MAILSIGNAL_EVENT_RETENTION_DAYS": "0",
        "MAILSIGNAL_REPLY_RETENTION_DAYS": "0",
        "MAILSIGNAL_OUTBOUND_RETENTION_DAYS": "0",
        "MAILSIGNAL_ATTACHMENT_RETENTION_DAYS": "0",
    }
    refused = cli(off, "privacy", "retention", check=False)
    assert refused.returncode == 2 and "nothing is ever deleted" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_idle_journal_is_pruned(engine: Engine, settings: Settings) -> None:
    """Hits ingested more than journal_retention_hours ago leave the journal even when no
    new hit comes to trigger the prune after a batch."""
    delivery = _mail(engine, settings)
    writer = JournalWriter(settings.journal_file)
    old = (datetime.now(UTC) - timedelta(hours=30)).timestamp()

    async def main() -> None:
        await writer.append(
            (old, int(TokenKind.OPEN), delivery, None, PERSON, OUTLOOK, "GET", "{}")
        )

    asyncio.run(main())
    writer.close()
    keep = settings.model_copy(update={"journal_retention_hours": 48.0})
    ingestor = Ingestor(engine, keep, default_enrichment(settings))
    assert ingestor.run_once().stored == 1
    ingestor.close()
    idle = Ingestor(engine, settings, default_enrichment(settings))  # 24 h: the default
    assert idle.run_once().stored == 0  # nothing new; the prune runs anyway
    idle.close()
    with sqlite3.connect(settings.journal_file) as journal:
        assert journal.execute("SELECT count(*) FROM hit").fetchone() == (0,)
        assert journal.execute("PRAGMA secure_delete").fetchone() is not None
