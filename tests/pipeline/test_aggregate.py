"""The aggregate open measure end to end (issue 13), on SQLite and PostgreSQL: under
`tracking_basis = consent` with `aggregate_opens`, two recipients without consent each
get a copy with the email's aggregate pixel; fetched through the real tracker app and
ingested by the real worker, the email's aggregate count is 2, no event is stored,
nothing in any table (nor the journal) holds the fetchers' addresses or user agents, and
the journal rows are consumed. The REST email detail and the panel show the count. With
the org switch off or the setting turned off since, hits are answered and dropped."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select, text, update
from starlette.testclient import TestClient

from helpers import HTML, OUTLOOK, PERSON_IP, add_rep, sign_in, tracked_urls, with_password
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import aggregate, donottrack, journal_cursor, users
from mailsignal.store.journal import JournalReader
from mailsignal.store.schema import interactionforemail, organization
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.track import GIF

REP = "rep@northwind.test"
DANA, LEE = "dana@contoso.fr", "lee@fabrikam.fr"
# What the fetchers send: none of it may be stored anywhere.
FETCHERS = [("203.0.113.77", "AggregateProbe/1.0 (Dana's phone)"), (PERSON_IP, OUTLOOK)]


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "tracking_basis": "consent",
            "aggregate_opens": True,
            "aggregate_opens_min_copies": 1,  # the threshold is tests/test_outgoing.py's
            "trusted_proxies": ["127.0.0.0/8"],
        }
    )


@pytest.fixture
def world(engine: Engine, strict: Settings) -> Iterator[dict[str, Any]]:
    signer = Signer(*load_keyring(strict.secret_file))
    with engine.begin() as conn:
        rep = add_rep(conn, REP)
        with_password(conn, REP)
        key = users.create_api_key(conn, rep)
        msg = outgoing.build_message(REP, [DANA, LEE], "Pricing", HTML, None)
        sent = outgoing.Outgoing.from_settings(strict, signer).track(
            conn, msg, sender=REP, recipients=[DANA, LEE]
        )
    pixels = [tracked_urls(c.message) for c in sent.copies]
    assert all(len(p) == 1 for p in pixels), pixels
    app = create_app(strict)
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000)) as client:
        yield {"client": client, "sent": sent, "pixels": [p[0] for p in pixels], "key": key}
    app.journal.close()


def _fetch(client: TestClient, url: str, ip: str, agent: str) -> None:
    path = url.removeprefix("http://track.test")
    answer = client.get(path, headers={"user-agent": agent, "x-forwarded-for": ip})
    assert answer.status_code == 200
    assert answer.content == GIF
    assert answer.headers["content-type"] == "image/gif"
    assert answer.headers["cache-control"] == "no-store, no-cache, must-revalidate, max-age=0"


def _everywhere(engine: Engine, needles: list[str]) -> list[str]:
    """Each needle found in any column of any table the database has."""
    found = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            query = text(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the database)
            for row in conn.execute(query).mappings():
                for column, value in row.items():
                    found += [f"{table}.{column}:{n}" for n in needles if n in str(value)]
    return found


def test_two_aggregate_opens_are_counted_and_nothing_else_kept(
    engine: Engine, strict: Settings, world: dict[str, Any]
) -> None:
    client, sent = world["client"], world["sent"]
    for url, (ip, agent) in zip(world["pixels"], FETCHERS, strict=True):
        _fetch(client, url, ip, agent)
    # The journal holds the two hits, and not who made them.
    with sqlite3.connect(strict.journal_file) as raw:
        rows = raw.execute("SELECT kind, ip, ua, headers FROM hit").fetchall()
    assert rows == [(7, "", "", "{}"), (7, "", "", "{}")]
    ingestor = Ingestor(engine, strict)
    assert ingestor.drain() == 0  # no event stored
    ingestor.close()
    with engine.connect() as conn:
        assert aggregate.open_count(conn, sent.activity_id) == 2
        assert conn.execute(select(func.count()).select_from(interactionforemail)).scalar() == 0
        reader = JournalReader(strict.journal_file)
        try:
            assert reader.pending(journal_cursor.position(conn, reader.journal_id)) == 0
        finally:
            reader.close()
    needles = [n for pair in FETCHERS for n in pair] + ["203.0.113.0", "198.51.100.0"]
    assert _everywhere(engine, needles) == []
    # Shown where emails are read: REST detail and the panel's email page.
    auth = {"authorization": f"Bearer {world['key']}"}
    detail = client.get(f"/api/v1/emails/{sent.activity_id}", headers=auth)
    assert detail.status_code == 200, detail.text
    assert detail.json()["aggregateopencount"] == 2
    assert detail.json()["opencount"] == 0
    sign_in(client, REP)
    page = client.get(f"/emails/{sent.activity_id}")
    assert page.status_code == 200, page.text
    assert (
        "Opened 2 times by recipients who did not consent to individual tracking "
        "(raw count: machines included)."
    ) in page.text


def test_aggregate_hits_are_dropped_with_the_org_switch_or_the_setting_off(
    engine: Engine, strict: Settings, world: dict[str, Any]
) -> None:
    client, sent = world["client"], world["sent"]
    with engine.begin() as conn:
        conn.execute(update(organization).values(isemailmonitoringallowed=False))
    _fetch(client, world["pixels"][0], *FETCHERS[0])
    Ingestor(engine, strict).drain()
    with engine.begin() as conn:
        conn.execute(update(organization).values(isemailmonitoringallowed=True))
    _fetch(client, world["pixels"][1], *FETCHERS[1])
    Ingestor(engine, strict.model_copy(update={"aggregate_opens": False})).drain()
    _fetch(client, world["pixels"][1], *FETCHERS[1])
    Ingestor(engine, strict).drain()
    with engine.connect() as conn:
        assert aggregate.open_count(conn, sent.activity_id) == 1
        dropped = {reason: hits for _day, reason, hits in donottrack.dropped(conn)}
    assert dropped == {"org.monitoring_disabled": 1, "org.aggregate_off": 1}


def test_an_email_without_the_pixel_shows_no_aggregate_line(
    engine: Engine, settings: Settings
) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        rep = add_rep(conn, REP)
        key = users.create_api_key(conn, rep)
        msg = outgoing.build_message(REP, [DANA], "Pricing", HTML, None)
        sent = outgoing.Outgoing.from_settings(settings, signer).track(
            conn, msg, sender=REP, recipients=[DANA]
        )
    app = create_app(settings)
    with TestClient(app) as client:
        auth = {"authorization": f"Bearer {key}"}
        detail = client.get(f"/api/v1/emails/{sent.activity_id}", headers=auth).json()
        assert detail["aggregateopencount"] is None
    app.journal.close()


def test_a_batch_with_both_kinds_stores_the_event_and_counts_the_aggregate(
    engine: Engine, settings: Settings
) -> None:
    """Consent for .fr only: Dana's copy carries the aggregate pixel, Sam's is tracked;
    one batch holding both hits stores Sam's open and counts Dana's."""
    mixed = settings.model_copy(
        update={
            "tracking_basis_rules": [".fr=consent"],
            "aggregate_opens": True,
            "aggregate_opens_min_copies": 1,
        }
    )
    signer = Signer(*load_keyring(mixed.secret_file))
    sam = "sam@contoso.test"
    with engine.begin() as conn:
        add_rep(conn, REP)
        msg = outgoing.build_message(REP, [DANA, sam], "Pricing", HTML, None)
        sent = outgoing.Outgoing.from_settings(mixed, signer).track(
            conn, msg, sender=REP, recipients=[DANA, sam]
        )
    dana, tracked = sent.copies
    assert not dana.decision.tracked and tracked.decision.tracked
    sams_pixel = next(u for u in tracked_urls(tracked.message) if u.endswith(".gif"))
    app = create_app(mixed)
    with TestClient(app) as client:
        _fetch(client, tracked_urls(dana.message)[0], *FETCHERS[0])
        _fetch(client, sams_pixel, *FETCHERS[1])
    app.journal.close()
    assert Ingestor(engine, mixed).drain() == 1
    with engine.connect() as conn:
        assert aggregate.open_count(conn, sent.activity_id) == 1
        rows = conn.execute(select(interactionforemail.c.deliveryid)).scalars().all()
    assert rows == [tracked.delivery_id]


def test_erasing_every_recipient_deletes_the_email_with_its_pixel(
    engine: Engine, strict: Settings, world: dict[str, Any]
) -> None:
    """An email whose last copy is erased goes, and its aggregate pixel with it (the
    foreign key would refuse otherwise); a later fetch of the pixel is an orphan."""
    from mailsignal.pipeline.rights import erase
    from mailsignal.store.schema import aggregatepixel, email

    client = world["client"]
    _fetch(client, world["pixels"][0], *FETCHERS[0])
    Ingestor(engine, strict).drain()
    signer = Signer(*load_keyring(strict.secret_file))
    done = [
        erase(engine, signer, who, strict, actor="cli", source="cli").counts["emails_deleted"]
        for who in (DANA, LEE)
    ]
    assert done == [0, 1]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(email)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(aggregatepixel)).scalar_one() == 0
    _fetch(client, world["pixels"][1], *FETCHERS[1])
    ingestor = Ingestor(engine, strict)
    result = ingestor.run_once()
    ingestor.close()
    assert (result.aggregated, result.orphans) == (0, 1)
