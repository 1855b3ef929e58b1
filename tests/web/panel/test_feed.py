"""The activity feed (`GET /`, `GET /feed/items`, web/panel/feed.py) on both backends,
with real events: the tracked copies' pixel and link URLs fetched through the app, then
ingested. A person's open and click on the rep's mail are listed (the click with its
link), a scanner's burst on another recipient is only counted, another rep's events
never show, and an admin sees both reps'."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, Select, select, update
from starlette.testclient import TestClient

from helpers import (
    CHROME,
    EOP_IP,
    HTML,
    OUTLOOK,
    PERSON_IP,
    SAFE_LINKS,
    sign_in,
    tracked_urls,
    with_password,
)
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import fetch, panelfeed, parties, users
from mailsignal.store.schema import interactionforemail
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.panel.feed import encode_cursor

REP, OTHER, ADMIN = "rep@northwind.test", "other@northwind.test", "admin@northwind.test"


def send(
    conn: Any,
    settings: Settings,
    sender: str,
    recipients: list[str],
    subject: str | None,
    sent_at: datetime,
) -> Any:
    """Track an HTML email from `sender` as the relay or the API would."""
    signer = Signer(*load_keyring(settings.secret_file))
    msg = outgoing.build_message(sender, recipients, subject, HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender=sender, recipients=recipients, sent_at=sent_at)


def urls_of(tracked: Any, recipient: str) -> tuple[str, list[str]]:
    """(pixel path, [link paths]) of one recipient's copy."""
    copy = next(c for c in tracked.copies if c.recipient == recipient)
    found = [u.removeprefix("http://track.test") for u in tracked_urls(copy.message)]
    return next(u for u in found if u.endswith(".gif")), [u for u in found if "/c/" in u]


def hit(client: TestClient, path: str, agent: str, ip: str) -> None:
    r = client.get(path, headers={"user-agent": agent, "x-forwarded-for": ip})
    assert r.status_code in (200, 302), r.text


@pytest.fixture
def world(engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
    """Three users, a contact, the rep's and the other rep's mail, and real events."""
    settings = settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    sent = datetime.now(UTC) - timedelta(hours=2)
    with engine.begin() as conn:
        users.add(conn, "Rita Rep", REP, opt_in=True, timezone="America/New_York")
        users.add(conn, "Otto Other", OTHER, opt_in=True)
        users.add(conn, "Ada Admin", ADMIN, opt_in=True, role="admin")
        for who in (REP, OTHER, ADMIN):
            with_password(conn, who)
        dana = parties.add(conn, "contact", "Dana Scully", "dana@contoso.test")
        mine = send(
            conn,
            settings,
            REP,
            ["dana@contoso.test", "ops@fabrikam.test", "gil@contoso.test"],
            "Pricing",
            sent,
        )
        theirs = send(conn, settings, OTHER, ["erin@litware.test"], "Otto's secret plan", sent)
    app = create_app(settings)
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000)) as client:
        pixel, links = urls_of(mine, "dana@contoso.test")
        hit(client, pixel, OUTLOOK, PERSON_IP)
        hit(client, links[1], CHROME, PERSON_IP)
        scan_pixel, scan_links = urls_of(mine, "ops@fabrikam.test")
        for path in (scan_pixel, *scan_links):
            hit(client, path, SAFE_LINKS, EOP_IP)
        other_pixel, other_links = urls_of(theirs, "erin@litware.test")
        hit(client, other_pixel, OUTLOOK, PERSON_IP)
        hit(client, other_links[0], CHROME, PERSON_IP)
        Ingestor(engine, settings).drain()
        yield {
            "client": client,
            "engine": engine,
            "settings": settings,
            "mine": mine,
            "theirs": theirs,
            "dana": dana,
            "sent": sent,
        }
    app.journal.close()


def _verdicts(engine: Engine, stmt: Select[Any]) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]  # type: ignore[misc]


def test_the_events_are_what_the_feed_expects(world: dict[str, Any]) -> None:
    """The scenario itself: the person's open and click are human, the scanner's machine."""
    ev = interactionforemail
    rows = _verdicts(
        world["engine"],
        select(ev.c.interactiontype, ev.c.emailaddress, ev.c.verdict).where(
            ev.c.emailactivityid == world["mine"].activity_id
        ),
    )
    dana = sorted((t, v) for t, a, v in rows if a == "dana@contoso.test")
    assert dana == [(0, "human"), (1, "human")]
    assert {v for _, a, v in rows if a == "ops@fabrikam.test"} == {"machine"}
    assert len([r for r in rows if r[1] == "ops@fabrikam.test"]) == 3


def test_rep_sees_the_persons_click_with_its_link_and_machines_only_counted(
    world: dict[str, Any],
) -> None:
    client = world["client"]
    assert sign_in(client, REP).status_code == 303
    r = client.get("/")
    assert r.status_code == 200, r.text
    page = r.text
    assert page.count("<h1>") == 1
    assert 'id="feed-items" data-live="/feed/items?tab=all" data-every="5"' in page
    assert 'aria-live="polite"' in page
    items = re.findall(r"<li>\s*<span class=\"badge (\w+)\">.*?</li>", page, re.S)
    assert items == ["person", "person"]  # the open and the click; not the scanner's three
    assert "clicked a link in" in page and "opened" in page
    assert "https://example.com/case" in page and "“case study”" in page
    assert "Dana Scully" in page and f'href="/contacts/{world["dana"]}"' in page
    assert f'href="/emails/{world["mine"].activity_id}"' in page
    assert "Also 3 machine fetches in this period, not shown." in page
    assert "ops@fabrikam.test" not in page
    assert "Otto" not in page.replace("Otto Other", "") and "secret plan" not in page
    assert "after delivery" in page and re.search(r"2 h \d+ min after delivery", page)
    # Times in the rep's zone (New York), never UTC: the event happened just now.
    local = datetime.now(UTC).astimezone(ZoneInfo("America/New_York"))
    assert local.strftime("%-d %b %Y, %H:") in page


def test_the_fragment_is_the_list_alone_and_the_tabs_work(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get("/feed/items?tab=all")
    assert r.status_code == 200 and "<html" not in r.text and "<h1>" not in r.text
    assert "clicked a link in" in r.text and "Also 3 machine fetches" in r.text
    assert "no-store" in r.headers["cache-control"]
    email = client.get("/?tab=email")
    assert email.status_code == 200 and "clicked a link in" in email.text
    assert 'aria-current="page">Email opens and clicks' in email.text
    assert 'data-live="/feed/items?tab=email"' in email.text
    hottest = client.get("/?tab=hottest")
    assert hottest.status_code == 200
    assert f'href="/contacts/{world["dana"]}"' in hottest.text and "lead score" in hottest.text
    assert "hot lead" not in hottest.text.lower()


def test_a_new_click_shows_in_the_fragment(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, REP)
    before = client.get("/feed/items").text
    assert before.count("clicked a link in") == 1
    pixel, links = urls_of(world["mine"], "gil@contoso.test")
    hit(client, pixel, OUTLOOK, PERSON_IP)
    hit(client, links[0], CHROME, PERSON_IP)
    Ingestor(world["engine"], world["settings"]).drain()
    after = client.get("/feed/items").text
    assert after.count("clicked a link in") == 2 and "https://example.com/pricing" in after
    assert "gil@contoso.test" in after


def test_another_reps_events_never_show_and_an_admin_sees_all(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, OTHER)
    theirs = client.get("/").text
    assert "secret plan" in theirs and "Pricing" not in theirs and "Dana Scully" not in theirs
    assert "machine fetches" not in theirs
    client.cookies.clear()
    sign_in(client, ADMIN)
    everyone = client.get("/").text
    assert "secret plan" in everyone and "Pricing" in everyone


def test_paging_by_cursor(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, REP)
    with world["engine"].connect() as conn:
        caller = fetch.load_caller(conn, _user_id(conn, REP))
        first = panelfeed.feed(conn, caller, limit=1)
    assert first["next"] is not None
    cursor = encode_cursor(*first["next"])
    older = client.get(f"/?before={cursor}")
    assert older.status_code == 200 and "opened" in older.text
    assert "clicked a link in" not in older.text  # the click is newer than the cursor
    assert 'href="/?tab=all">Newest</a>' in older.text


def _user_id(conn: Any, address: str) -> Any:
    user = users.by_address(conn, address)
    assert user is not None
    return user["systemuserid"]


@pytest.mark.parametrize(
    "query",
    [
        "/?tab=sentiment",
        "/?before=yesterday",
        "/?before=99999999999999999.00",
        "/?before=999999999999999999." + "0" * 32,
        "/?before=-999999999999999999." + "0" * 32,
        "/feed/items?tab=x",
    ],
)
def test_bad_values_are_a_400_page(world: dict[str, Any], query: str) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get(query)
    assert r.status_code == 400 and "<h1>That page does not exist</h1>" in r.text


def test_signed_out_goes_to_the_sign_in_form(world: dict[str, Any]) -> None:
    client = world["client"]
    for path in ("/", "/feed/items?tab=email"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/")


def test_an_event_with_a_null_subject_and_a_reply(world: dict[str, Any]) -> None:
    """A forward and a reply are listed with their words; a subject-less email reads
    "(no subject)"."""
    engine, settings = world["engine"], world["settings"]
    with engine.begin() as conn:
        bare = send(conn, settings, REP, ["fox@contoso.test"], None, world["sent"])
    client = world["client"]
    pixel, _ = urls_of(bare, "fox@contoso.test")
    hit(client, pixel, OUTLOOK, PERSON_IP)
    Ingestor(engine, settings).drain()
    ev = interactionforemail
    with engine.begin() as conn:
        conn.execute(
            update(ev).where(ev.c.emailactivityid == bare.activity_id).values(verdict="forward")
        )
    sign_in(client, REP)
    page = client.get("/").text
    assert "(no subject)" in page and "Someone new" in page
    assert '<span class="badge forward">forward</span>' in page
