"""The panel's Views pages (web/panel/views.py), on both backends: the saved views listed,
"Engaged This Week" run for a rep (their mail only, lookups by name, paging with the
cookie), its CSV export (attachment, UTF-8, formulas neutralised), and the admin's
FetchXML box (a refused query is a message with 400, never a 500)."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, update
from starlette.testclient import TestClient

from helpers import HTML, add_rep, csrf_of, sign_in, with_password
from mailsignal import outgoing, views
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties, teams, users
from mailsignal.store.schema import email
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.panel import views as view_pages
from runaway import RUNAWAY, seed

REP, OTHER, ADMIN = "rep@northwind.test", "other@northwind.test", "admin@northwind.test"


def _send(conn: Connection, signer: Signer, sender: str, subject: str, opens: int) -> Any:
    """An email from `sender` that was opened `opens` times an hour ago."""
    msg = outgoing.build_message(sender, ["ana@contoso.test"], subject, HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    done = service.track(conn, msg, sender=sender, recipients=["ana@contoso.test"])
    conn.execute(
        update(email)
        .where(email.c.activityid == done.activity_id)
        .values(opencount=opens, lastopenedtime=datetime.now(UTC) - timedelta(hours=1))
    )
    return done.activity_id


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        for address, role in ((REP, "rep"), (OTHER, "rep"), (ADMIN, "admin")):
            add_rep(conn, address, role=role)
            with_password(conn, address)
        parties.add(conn, "contact", "Ana Lima", "ana@contoso.test")
        _send(conn, signer, REP, '=HYPERLINK("http://evil.test")', 3)
        _send(conn, signer, REP, "Pricing for Q3", 4)
        _send(conn, signer, REP, "Opened once", 1)
        _send(conn, signer, OTHER, "Someone else's mail", 5)
    with TestClient(create_app(settings)) as c:
        yield c


def _cells(page: str) -> list[str]:
    """The text of every table cell on the page, unescaped."""
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(r"<td>(.*?)</td>", page)
    ]


def test_views_are_listed_with_what_they_show(client: TestClient) -> None:
    sign_in(client, REP)
    page = client.get("/views")
    assert page.status_code == 200
    for name in ("Engaged This Week", "Scanner noise last month"):
        assert name in page.text
    assert 'href="/views/engaged-this-week"' in page.text
    assert "Run FetchXML" not in page.text  # the box is for admins


def test_engaged_this_week_shows_the_reps_own_mail_with_names(client: TestClient) -> None:
    sign_in(client, REP)
    page = client.get("/views/engaged-this-week")
    assert page.status_code == 200
    cells = _cells(page.text)
    assert "Pricing for Q3" in cells and "Opened once" not in page.text
    assert "Someone else&#39;s mail" not in page.text and "Someone else" not in page.text
    assert "Ana Lima" in cells  # the regarding contact by name, not its id
    assert '<th scope="col">opencount</th>' in page.text


def test_another_rep_does_not_see_them(client: TestClient) -> None:
    sign_in(client, OTHER)
    page = client.get("/views/engaged-this-week")
    assert "Someone else&#39;s mail" in page.text and "Pricing for Q3" not in page.text


def test_paging_follows_the_cookie(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_pages, "PAGE_SIZE", 1)
    sign_in(client, REP)
    first = client.get("/views/engaged-this-week")
    link = re.search(r'href="(/views/engaged-this-week\?page=2[^"]*)" rel="next"', first.text)
    assert link is not None and "cookie=" in link[1]
    second = client.get(link[1].replace("&amp;", "&"))
    assert second.status_code == 200
    one, two = _cells(first.text)[0], _cells(second.text)[0]
    assert {one, two} == {"Pricing for Q3", '=HYPERLINK("http://evil.test")'}
    assert 'rel="next"' not in second.text and "Previous page" in second.text
    bad = client.get("/views/engaged-this-week", params={"page": "x"})
    assert bad.status_code == 400 and "page must be a whole number" in bad.text


def test_unknown_view_is_404(client: TestClient) -> None:
    sign_in(client, REP)
    r = client.get("/views/no-such-view")
    assert r.status_code == 404 and "No such view" in r.text


def test_csv_export_is_an_attachment_with_formulas_neutralised(client: TestClient) -> None:
    sign_in(client, REP)
    r = client.get("/views/engaged-this-week.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv") and "utf-8" in r.headers["content-type"]
    assert r.headers["content-disposition"] == 'attachment; filename="engaged-this-week.csv"'
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["subject", "regardingobjectid", "opencount", "lastopenedtime", "activityid"]
    subjects = {row[0]: row for row in rows[1:]}
    assert set(subjects) == {'\'=HYPERLINK("http://evil.test")', "Pricing for Q3"}
    assert subjects["Pricing for Q3"][1:3] == ["Ana Lima", "4"]
    assert datetime.fromisoformat(subjects["Pricing for Q3"][3]).tzinfo is not None


def test_admin_runs_fetchxml_and_sees_errors_as_messages(client: TestClient) -> None:
    sign_in(client, ADMIN)
    page = client.get("/views")
    assert "Run FetchXML" in page.text
    token = csrf_of(page.text)
    xml = (
        '<fetch><entity name="email"><attribute name="subject"/>'
        '<order attribute="subject"/></entity></fetch>'
    )
    ok = client.post("/views/run", data={"csrf": token, "fetchxml": xml})
    assert ok.status_code == 200 and "Someone else&#39;s mail" in ok.text  # admins see all
    broken = client.post("/views/run", data={"csrf": token, "fetchxml": "<fetch><entity"})
    assert broken.status_code == 400 and "The query was refused" in broken.text
    assert "&lt;fetch&gt;&lt;entity" in broken.text  # the query stays in the box, escaped
    unknown = '<fetch><entity name="email"><attribute name="nosuch"/></entity></fetch>'
    refused = client.post("/views/run", data={"csrf": token, "fetchxml": unknown})
    assert refused.status_code == 400 and "nosuch" in refused.text
    forged = client.post("/views/run", data={"csrf": "forged", "fetchxml": xml})
    assert forged.status_code == 403


def test_a_rep_cannot_use_the_fetchxml_box(client: TestClient) -> None:
    sign_in(client, REP)
    token = csrf_of(client.get("/views").text)
    xml = '<fetch><entity name="email"><attribute name="subject"/></entity></fetch>'
    assert client.post("/views/run", data={"csrf": token, "fetchxml": xml}).status_code == 403


def test_every_shipped_view_runs_for_a_rep(client: TestClient, settings: Settings) -> None:
    sign_in(client, REP)
    for view in views.all_views(settings.data_dir):
        assert client.get(f"/views/{view.slug}").status_code == 200, view.slug


def test_a_runaway_view_is_stopped_within_the_bound(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        add_rep(conn, REP)
        with_password(conn, REP)
    seed(engine, settings.secret_file)
    views.add(settings.data_dir, "runaway", RUNAWAY)
    bounded = Settings(
        base_url="http://track.test",
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        query_timeout_seconds=1,
    )
    with TestClient(create_app(bounded)) as client:
        sign_in(client, REP)
        start = time.monotonic()
        page = client.get("/views/runaway")
        assert page.status_code == 503 and "The view could not run" in page.text
        assert time.monotonic() - start < 10
        assert client.get("/views/runaway.csv").status_code == 503
        assert client.get("/views/engaged-this-week").status_code == 200  # still answers


def test_a_manager_sees_the_teams_mail(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        rep, other = (users.by_address(conn, a) for a in (REP, OTHER))
        assert rep is not None and other is not None
        team = teams.add(conn, "West", rep["systemuserid"])
        teams.add_member(conn, team, other["systemuserid"])
    sign_in(client, REP)
    cells = _cells(client.get("/views/engaged-this-week").text)
    assert "Someone else's mail" in cells and "Pricing for Q3" in cells
    sign_in(client, OTHER)
    assert "Pricing for Q3" not in client.get("/views/engaged-this-week").text
