"""“My emails” (`GET /emails`, web/panel/emails.py) on both backends: raw counts beside
what people did (from real events), each filter, the search with its wildcards taken
literally, paging, a subject-less email, the Sender column for an admin, 400 pages for
values the form cannot send, and the sign-in redirect."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from starlette.testclient import TestClient

from helpers import CHROME, HTML, OUTLOOK, PERSON_IP, sign_in, tracked_urls, with_password
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.schema import email
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

REP, OTHER, ADMIN = "rep@northwind.test", "other@northwind.test", "admin@northwind.test"


def _send(
    conn: Any, settings: Settings, sender: str, to: str, subject: str | None, sent: datetime
) -> Any:
    signer = Signer(*load_keyring(settings.secret_file))
    msg = outgoing.build_message(sender, [to], subject, HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender=sender, recipients=[to], sent_at=sent)


def _subjects(html: str) -> list[str]:
    """The subjects of the listed emails, in order."""
    return re.findall(
        r'<th scope="row" class="subject"><a href="/emails/[0-9a-f-]+">([^<]*)</a>', html
    )


@pytest.fixture
def world(engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        users.add(conn, "Rita Rep", REP, opt_in=True)
        users.add(conn, "Otto Other", OTHER, opt_in=True)
        users.add(conn, "Ada Admin", ADMIN, opt_in=True, role="admin")
        for who in (REP, OTHER, ADMIN):
            with_password(conn, who)
        pricing = _send(
            conn, settings, REP, "dana@contoso.test", "Pricing", now - timedelta(hours=3)
        )
        _send(conn, settings, REP, "fox@contoso.test", None, now - timedelta(hours=4))
        _send(conn, settings, REP, "hal@contoso.test", "Review 100% done", now - timedelta(hours=5))
        _send(conn, settings, REP, "ian@contoso.test", "Review 100 items", now - timedelta(hours=6))
        noisy = _send(conn, settings, REP, "jo@contoso.test", "Noisy", now - timedelta(hours=7))
        _send(conn, settings, REP, "kim@contoso.test", "Old intro", now - timedelta(days=40))
        _send(conn, settings, OTHER, "erin@litware.test", "Otto's secret plan", now)
        conn.execute(
            update(email)
            .where(email.c.activityid == noisy.activity_id)
            .values(noiseflag=True, opencount=12, machineopencount=12, engagementverdict="machine")
        )
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as client:
        copy = pricing.copies[0]
        urls = [u.removeprefix("http://track.test") for u in tracked_urls(copy.message)]
        pixel = next(u for u in urls if u.endswith(".gif"))
        client.get(pixel, headers={"user-agent": OUTLOOK, "x-forwarded-for": PERSON_IP})
        link = next(u for u in urls if "/c/" in u)
        client.get(link, headers={"user-agent": CHROME})
        Ingestor(engine, settings).drain()
        yield {"client": client, "engine": engine, "settings": settings, "now": now}
    app.journal.close()


def test_sent_mail_newest_first_with_raw_and_peoples_counts(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get("/emails")
    assert r.status_code == 200, r.text
    page = r.text
    assert _subjects(page) == [
        "Pricing",
        "(no subject)",
        "Review 100% done",
        "Review 100 items",
        "Noisy",
        "Old intro",
    ]
    assert "secret plan" not in page and ">Sender</th>" not in page
    assert "1 open · 1 click" in page  # raw
    assert "1 open by a person · 1 click" in page  # what people did
    assert "12 opens · 0 clicks" in page and "noise-flagged" in page
    assert '<span class="badge person">person</span>' in page
    assert '<label for="f-q">' in page and '<label for="f-unopened">' in page
    assert '<th scope="col">Raw</th>' in page and '<div class="table-wrap" role="region"' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("period=30", ["Pricing", "(no subject)", "Review 100% done", "Review 100 items", "Noisy"]),
        ("period=all&engaged=1", ["Pricing"]),
        ("noise=1", ["Noisy"]),
        ("unopened=30", ["Old intro"]),
        (
            "unopened=",
            [
                "Pricing",
                "(no subject)",
                "Review 100% done",
                "Review 100 items",
                "Noisy",
                "Old intro",
            ],
        ),
        ("q=PRICING", ["Pricing"]),
        ("q=hal%40contoso", ["Review 100% done"]),
        ("q=100%25", ["Review 100% done"]),  # % taken literally, not as "anything"
        ("q=review_100", []),  # _ taken literally
        ("q=secret", []),  # another rep's mail is not searched
    ],
)
def test_filters_and_search(world: dict[str, Any], query: str, expected: list[str]) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get(f"/emails?{query}")
    assert r.status_code == 200, r.text
    assert _subjects(r.text) == expected
    if not expected:
        assert "No sent mail matches these filters." in r.text


def test_paging_fifty_a_page(world: dict[str, Any]) -> None:
    engine, settings = world["engine"], world["settings"]
    start = world["now"] - timedelta(days=1)
    with engine.begin() as conn:
        for n in range(50):
            _send(
                conn,
                settings,
                REP,
                f"p{n}@contoso.test",
                f"Batch {n:02d}",
                start - timedelta(minutes=n),
            )
    client = world["client"]
    sign_in(client, REP)
    first = client.get("/emails").text
    assert len(_subjects(first)) == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    assert "/emails?page=2" in first
    second = client.get("/emails?page=2").text
    # 56 in all: the five newest, 50 of a day ago, "Old intro" 40 days ago.
    assert _subjects(second) == [
        "Batch 45",
        "Batch 46",
        "Batch 47",
        "Batch 48",
        "Batch 49",
        "Old intro",
    ]
    assert 'rel="prev"' in second and 'rel="next"' not in second
    filtered = client.get("/emails?q=contoso&page=1").text
    assert "/emails?q=contoso&amp;page=2" in filtered
    assert client.get("/emails?page=9").text.count("No sent mail matches") == 1


def test_admin_sees_everyones_mail_with_the_sender(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, ADMIN)
    page = client.get("/emails").text
    assert ">Sender</th>" in page and "secret plan" in page and "other@northwind.test" in page
    # The Sender filter narrows to one person's mail; a rep has no such filter.
    assert '<select id="f-sender" name="sender">' in page
    only = client.get("/emails", params={"sender": OTHER}).text
    assert _subjects(only) == ["Otto&#39;s secret plan"]
    assert client.get("/emails", params={"sender": "nobody@x.test"}).status_code == 400
    client.cookies.clear()
    sign_in(client, OTHER)
    theirs = client.get("/emails").text
    assert _subjects(theirs) == ["Otto&#39;s secret plan"] and "f-sender" not in theirs
    # A rep cannot name someone else's mail to read it.
    assert client.get("/emails", params={"sender": REP}).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "period=5",
        "engaged=maybe",
        "noise=2",
        "unopened=-1",
        "unopened=abc",
        "unopened=99999",
        "page=0",
        "page=x",
        "q=" + "x" * 201,
    ],
)
def test_bad_filter_values_are_a_400_page(world: dict[str, Any], query: str) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get(f"/emails?{query}")
    assert r.status_code == 400 and "<h1>That filter does not work</h1>" in r.text


def test_signed_out_goes_to_the_sign_in_form(world: dict[str, Any]) -> None:
    r = world["client"].get("/emails?noise=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/emails%3Fnoise%3D1"
