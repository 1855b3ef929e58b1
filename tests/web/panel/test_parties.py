"""Contact, lead and account pages (web/panel/parties.py) over events made through the
tracker and the ingest: the score with its explanation and links to the emails, the
roll-ups, recent engagement, an account's contacts, the score over time; 404 for
another rep, a malformed or an unknown id; sign-in required. Both backends."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import CHROME, OUTLOOK, add_rep, sign_in, track_html, tracked_urls, with_password
from mailsignal.keyring import load_keyring
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import parties
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

REP, OTHER = "rep@northwind.test", "other@northwind.test"


@dataclass
class World:
    client: TestClient
    account: uuid.UUID
    contact: uuid.UUID
    lead: uuid.UUID
    email: uuid.UUID


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def world(engine: Engine, settings: Settings) -> Iterator[World]:
    with engine.begin() as conn:
        add_rep(conn, REP)
        add_rep(conn, OTHER)
        for address in (REP, OTHER):
            with_password(conn, address)
        account = parties.add(conn, "account", "Contoso", None)
        contact = parties.add(conn, "contact", "Dana Fischer", "dana@contoso.test", parent=account)
        lead = parties.add(conn, "lead", "Lee Novak", "lee@fabrikam.test")
        tracked = track_html(
            conn,
            Signer(*load_keyring(settings.secret_file)),
            ["dana@contoso.test", "lee@fabrikam.test"],
            sent_at=datetime.now(UTC) - timedelta(hours=2),
        )
    with TestClient(create_app(settings)) as client:
        dana = tracked_urls(tracked.copies[0].message)
        pixel = next(u for u in dana if u.endswith(".gif")).removeprefix("http://track.test")
        click = next(u for u in dana if "/c/" in u).removeprefix("http://track.test")
        assert client.get(pixel, headers={"user-agent": OUTLOOK}).status_code == 200
        r = client.get(click, headers={"user-agent": CHROME}, follow_redirects=False)
        assert r.status_code == 302
        Ingestor(engine, settings).drain()
        yield World(client, account, contact, lead, tracked.activity_id)


def test_the_contact_page_explains_the_score(world: World) -> None:
    client = world.client
    sign_in(client, REP)
    page = client.get(f"/contacts/{world.contact}")
    assert page.status_code == 200
    html, text = page.text, _text(page.text)
    assert "<h1>Dana Fischer" in html
    assert "Allow: mail to this contact is tracked" in text
    score = re.search(r'<p class="score"><span class="value">([\d.]+)</span> points now', html)
    assert score and score[1] == "6.0"  # an open (1) and a click (5), just now
    assert "halve every 14 days" in text
    # The explanation: the click first (5 points), then the open, each linking its email.
    top = re.findall(r'<td class="num">([\d.]+)</td><th scope="row">(\w+)</th>', html)
    assert [what for _p, what in top] == ["Clicked", "Opened"]
    assert html.count(f'href="/emails/{world.email}"') >= 2
    assert "1 clicks by people" in text and "1 opens by people" in text
    # The score over time ends at today's score; its description says how it was made.
    assert "computed from the stored events of people" in text
    last = re.findall(r'<th scope="row">[^<]+</th><td class="num">([\d.]+)</td></tr>', html)[-1]
    assert abs(float(last) - float(score[1])) < 0.06
    assert re.search(r'<a href="/accounts/' + str(world.account) + '">Contoso</a>', html)
    assert "style=" not in html and "interested" not in text.lower()


def test_the_account_lists_its_contacts_and_the_lead_its_engagement(world: World) -> None:
    client = world.client
    sign_in(client, REP)
    account = client.get(f"/accounts/{world.account}")
    assert account.status_code == 200
    assert f'<a href="/contacts/{world.contact}">Dana Fischer</a>' in account.text
    lead = client.get(f"/leads/{world.lead}")
    assert lead.status_code == 200
    assert "No events of people yet: the score is 0." in _text(lead.text)
    assert "Nothing yet on mail you can see." in _text(lead.text)


def test_another_rep_gets_404_for_the_parties_of_mail_they_cannot_read(world: World) -> None:
    client = world.client
    sign_in(client, OTHER)
    for path in (
        f"/contacts/{world.contact}",
        f"/leads/{world.lead}",
        f"/accounts/{world.account}",
        f"/emails/{world.email}",
    ):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "Dana" not in page.text and "Contoso" not in page.text


def test_bad_ids_are_404_and_sign_in_is_required(world: World) -> None:
    client = world.client
    r = client.get(f"/contacts/{world.contact}", follow_redirects=False)
    assert (
        r.status_code == 303 and r.headers["location"] == f"/login?next=/contacts/{world.contact}"
    )
    sign_in(client, REP)
    for path in ("/contacts/nope", f"/leads/{uuid.uuid4()}", f"/accounts/{world.contact}"):
        r = client.get(path)
        assert r.status_code == 404 and "Not found" in r.text, path
