"""The email page (web/panel/email.py) over the demo story, made through the normal
ingest: raw counts beside people's, every event labelled with its reasons, per-link
clicks, locations split into people and machines; 404 for another rep's email, a
malformed or unknown id; sign-in required. Both backends."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from helpers import add_rep, sign_in, track_html, with_password
from mailsignal import demo, demostory
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store.schema import email
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ALICE, BEN, MARIA, ADMIN = (
    "alice@northwind.test",
    "ben@northwind.test",
    "maria@northwind.test",
    "admin@northwind.test",
)


@pytest.fixture
def story(engine: Engine, settings: Settings) -> Iterator[tuple[TestClient, uuid.UUID]]:
    demo.load(engine, settings, Signer(*load_keyring(settings.secret_file)), now=NOW)
    with engine.begin() as conn:
        for address in (ALICE, BEN, MARIA, ADMIN):
            with_password(conn, address)
        story_id = conn.execute(
            select(email.c.activityid).where(email.c.subject == demostory.STORY_SUBJECT)
        ).scalar_one()
    with TestClient(create_app(settings)) as client:
        yield client, story_id


def _text(html: str) -> str:
    """The page's words, tags removed and spaces squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _timeline(html: str) -> list[str]:
    """Each event of the page's timelines as text, in page order."""
    return [
        _text(m)
        for m in re.findall(
            r'<li class="event [a-z]+">(.*?)</li>\s*(?=<li class="event|</ol>)', html, re.S
        )
    ]


def test_the_rep_sees_the_story_as_it_happened(story: tuple[TestClient, uuid.UUID]) -> None:
    client, story_id = story
    assert sign_in(client, ALICE).status_code == 303
    page = client.get(f"/emails/{story_id}")
    assert page.status_code == 200
    html, text = page.text, _text(page.text)
    assert "<h1>" + demostory.STORY_SUBJECT in html.replace("\n", "")
    # KPIs: 9 raw opens of which 2 by the reader; 3 raw clicks, 1 by a person.
    assert "2 of 9 opens by people" in text
    assert "1 of 3 clicks by people" in text
    assert "Seen by 1 person, 2 readers of forwards and " in text
    # The locations: the reader's and the two colleagues' vs the machines' networks.
    found = re.search(
        r"(\d+) locations: (\d+) of people \(([^)]*)\), (\d+) of machines \(([^)]*)\)", text
    )
    assert found, text
    assert found[2] == "3" and int(found[4]) >= 2
    assert "Proofpoint" in found[5] and "Apple" in found[5]
    # The timeline: every event, oldest first, machine ones labelled with their reasons.
    events = _timeline(html)
    assert len(events) == 12, events
    times = [datetime.fromisoformat(t) for t in re.findall(r'<time datetime="([^"]+)"', html)]
    assert len(times) == 12 and times == sorted(times)  # oldest first
    assert events[0].startswith(" machine") and "Opened" in events[0]
    assert "3 s after sending" in events[0]
    assert any("Apple MPP" in e and e.startswith(" machine") for e in events)
    person = [e for e in events if e.startswith(" person")]
    assert person and "Clicked" in " ".join(person)
    assert any("Rules that did not fire" in e for e in events)
    assert "Outlook" in text  # the parsed client
    # Per-link clicks: raw and by people.
    rows = re.findall(
        r'<tr><th scope="row" class="link">(.*?)</th>\s*'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        html,
        re.S,
    )
    assert [(int(raw), int(people)) for _l, raw, people in rows][:2] == [(1, 0), (2, 1)]
    # The chart: valid SVG with a title, and the recipient links to the contact page.
    svg = re.search(r"<svg.*?</svg>", html, re.S)
    root = ET.fromstring(svg[0]) if svg else None  # noqa: S314 - our own page
    assert root is not None and root.find("{http://www.w3.org/2000/svg}title") is not None
    assert re.search(r'href="/contacts/[0-9a-f-]{36}">Jordan Blake</a>', html)  # by name


def test_another_rep_gets_404_the_manager_and_admin_see_it(
    story: tuple[TestClient, uuid.UUID],
) -> None:
    client, story_id = story
    sign_in(client, BEN)
    page = client.get(f"/emails/{story_id}")
    assert page.status_code == 404 and demostory.STORY_SUBJECT not in page.text
    for address in (MARIA, ADMIN):
        client.cookies.clear()
        sign_in(client, address)
        assert client.get(f"/emails/{story_id}").status_code == 200


def test_malformed_and_unknown_ids_are_404_and_sign_in_is_required(
    story: tuple[TestClient, uuid.UUID],
) -> None:
    client, story_id = story
    r = client.get(f"/emails/{story_id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/emails/")
    sign_in(client, ALICE)
    for bad in ("not-a-uuid", str(uuid.uuid4()), "1%27%20or%201=1"):
        r = client.get(f"/emails/{bad}")
        assert r.status_code == 404 and "Not found" in r.text


def test_an_email_without_events_says_so(engine: Engine, settings: Settings) -> None:
    from mailsignal.keyring import load_keyring as keys

    with engine.begin() as conn:
        add_rep(conn)
        with_password(conn, "rep@northwind.test")
        tracked = track_html(conn, Signer(*keys(settings.secret_file)), ["dana@contoso.test"])
    with TestClient(create_app(settings)) as client:
        sign_in(client, "rep@northwind.test")
        page = client.get(f"/emails/{tracked.activity_id}")
    assert page.status_code == 200
    text = _text(page.text)
    assert "No events yet, so there is nothing to chart." in text
    assert "No events from this recipient yet." in text
    assert "<svg" not in page.text
    assert "style=" not in page.text and "<script>" not in page.text
