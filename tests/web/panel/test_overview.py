"""The overview (`GET /overview`, web/panel/overview.py) on both backends: real hits
through the tracker and the ingest worker land in the per-day chart (people vs
machines, in the viewer's time zone) and the machine-share-by-environment chart; another
rep's mail is not counted; a manager's sender filter narrows; bad filters answer 400."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
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
from mailsignal.store import teams, users
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

REP, OTHER, BOSS = "rep@northwind.test", "other@northwind.test", "boss@northwind.test"


def _send(conn: Any, settings: Settings, sender: str, to: list[str], sent: datetime) -> Any:
    signer = Signer(*load_keyring(settings.secret_file))
    msg = outgoing.build_message(sender, to, "Pricing", HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender=sender, recipients=to, sent_at=sent)


def _hit(client: TestClient, copy: Any, kind: str, ip: str, agent: str) -> None:
    urls = [u.removeprefix("http://track.test") for u in tracked_urls(copy.message)]
    url = next(u for u in urls if (u.endswith(".gif") if kind == "open" else "/c/" in u))
    client.get(url, headers={"user-agent": agent, "x-forwarded-for": ip})


@pytest.fixture
def world(engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
    settings = settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    now = datetime.now(UTC) - timedelta(hours=2)  # hits in the delivery window are machines'
    with engine.begin() as conn:
        rep = users.add(conn, "Rita Rep", REP, opt_in=True)
        users.add(conn, "Otto Other", OTHER, opt_in=True)
        boss = users.add(conn, "Bea Boss", BOSS, opt_in=True)
        for who in (REP, OTHER, BOSS):
            with_password(conn, who)
        team = teams.add(conn, "Field", boss)
        teams.add_member(conn, team, rep)
        mine = _send(conn, settings, REP, ["dana@contoso.test", "sam@gmail.com"], now)
        theirs = _send(conn, settings, OTHER, ["erin@litware.test"], now)
    app = create_app(settings)
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000)) as client:
        dana, sam = mine.copies
        # Dana's copy: Safe Links fetches and clicks it (Microsoft's network), then she reads it.
        _hit(client, dana, "open", EOP_IP, SAFE_LINKS)
        _hit(client, dana, "click", EOP_IP, SAFE_LINKS)
        _hit(client, dana, "open", PERSON_IP, OUTLOOK)
        # Sam (a Gmail address) opens it himself; Erin's copy is another rep's.
        _hit(client, sam, "open", "203.0.113.40", CHROME)
        _hit(client, theirs.copies[0], "open", PERSON_IP, OUTLOOK)
        Ingestor(engine, settings).drain()
        yield {"client": client}
    app.journal.close()


def _rows(html: str, table_title: str) -> list[tuple[str, ...]]:
    """The data table under a chart's <details>, as tuples of cell texts."""
    part = html.split(f"{table_title}: the numbers</summary>", 1)[1].split("</table>", 1)[0]
    return [
        tuple(re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row))
        for row in re.findall(r"<tr>(.*?)</tr>", part.split("<tbody>", 1)[1])
    ]


def test_a_reps_month_people_vs_machines_and_environments(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, REP)
    page = client.get("/overview")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<a href="/overview" aria-current="page">Overview</a>' in html
    # 2 by people (Dana, Sam), 2 by machines (Safe Links' fetch and click); Erin's is Otto's.
    assert "<strong>2</strong> events by people" in html
    assert "<strong>2</strong> by machines (50% of the labelled ones)" in html
    assert "Your team" not in html  # a rep has none
    per_day = _rows(html, "Events per day, last 30 days")
    assert [r[1:] for r in per_day] == [("2", "2")]
    assert _rows(html, "Machine share by recipient mail environment") == [
        ("Microsoft 365 (Safe Links)", "1", "2", "67%"),
        ("Gmail", "1", "0", "0%"),
    ]
    assert "<strong>67%</strong> by machines (2 of 3 events)" in html
    assert '<svg class="chart" viewBox="0 0 640 220" role="img"' in html  # events per day


def test_a_manager_sees_the_team_and_narrows_to_one_sender(world: dict[str, Any]) -> None:
    client = world["client"]
    sign_in(client, BOSS)
    html = client.get("/overview?period=7").text
    assert "<strong>2</strong> events by people" in html  # Rita's mail; Otto is not in the team
    assert '<option value="rep@northwind.test">Rita Rep</option>' in html
    narrowed = client.get("/overview?period=7&sender=rep%40northwind.test").text
    assert "<strong>2</strong> events by people" in narrowed
    assert client.get("/overview?sender=other%40northwind.test").status_code == 400
    # Rep by rep, each leading to that rep's overview; the manager's own row too.
    assert re.findall(
        r'<tr><th scope="row"><a href="([^"]+)">([^<]+)</a></th>'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        html,
    ) == [
        ("/overview?period=7&amp;sender=boss%40northwind.test", "Bea Boss", "0", "0"),
        ("/overview?period=7&amp;sender=rep%40northwind.test", "Rita Rep", "2", "2"),
    ]
    assert "Your team" not in narrowed


@pytest.mark.parametrize("query", ["period=365", "period=-7", "period=7%27"])
def test_bad_filters_answer_400(world: dict[str, Any], query: str) -> None:
    client = world["client"]
    sign_in(client, REP)
    r = client.get(f"/overview?{query}")
    assert r.status_code == 400 and "That filter does not work" in r.text


def test_signed_out_goes_to_sign_in(world: dict[str, Any]) -> None:
    r = world["client"].get("/overview")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
