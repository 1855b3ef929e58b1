"""store/paneldetail.py: the email page's and party pages' queries, each limited by the
row rule of fetchxml/access.py (a rep, their manager, an admin), with events made by
the normal ingest (store_hits). Both backends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine

from helpers import CHROME, EOP_IP, OUTLOOK, PERSON_IP, SAFE_LINKS, add_rep
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.settings import Settings
from mailsignal.store import emails, fetch, paneldetail, parties, teams
from mailsignal.tokens import Signer

NOW = datetime.now(UTC).replace(microsecond=0)
SENT = NOW - timedelta(days=1)


@dataclass
class World:
    rep: uuid.UUID
    other: uuid.UUID
    manager: uuid.UUID
    admin: uuid.UUID
    contact: uuid.UUID
    account: uuid.UUID
    mine: uuid.UUID  # the rep's email to the contact
    theirs: uuid.UUID  # the other rep's email to the contact


def _send(
    conn: Connection, settings: Settings, sender: str, subject: str
) -> tuple[uuid.UUID, int, dict[int, int]]:
    service = outgoing.Outgoing.from_settings(settings, Signer(*load_keyring(settings.secret_file)))
    html = '<p><a href="https://example.com/a">first</a> <a href="https://example.com/b">second</a></p>'
    msg = outgoing.build_message(sender, ["dana@contoso.test"], subject, html, None, sent_at=SENT)
    done = service.track(conn, msg, sender=sender, recipients=["dana@contoso.test"], sent_at=SENT)
    return done.activity_id, done.copies[0].delivery_id, emails.link_ids(conn, done.activity_id)


def _hit(
    n: str, delivery: int, after: timedelta, kind: TokenKind, link: int | None, ip: str, ua: str
) -> RawHit:
    return RawHit(
        hit_id=f"t:{n}",
        received_at=SENT + after,
        kind=kind,
        delivery_id=delivery,
        link_id=link,
        ip=ip,
        user_agent=ua,
        method="GET",
    )


@pytest.fixture
def world(engine: Engine, settings: Settings) -> World:
    with engine.begin() as conn:
        rep = add_rep(conn, "rep@northwind.test")
        other = add_rep(conn, "other@northwind.test")
        manager = add_rep(conn, "lead@northwind.test")
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        team = teams.add(conn, "Field", manager)
        teams.add_member(conn, team, rep)
        account = parties.add(conn, "account", "Contoso", None)
        contact = parties.add(conn, "contact", "Dana", "dana@contoso.test", parent=account)
        mine, d1, links = _send(conn, settings, "rep@northwind.test", "Mine")
        theirs, d2, _ = _send(conn, settings, "other@northwind.test", "Theirs")
        s, m, h = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)
        hits = [
            _hit("1", d1, 2 * s, TokenKind.CLICK, links[0], EOP_IP, SAFE_LINKS),
            _hit("2", d1, 3 * s, TokenKind.CLICK, links[1], EOP_IP, SAFE_LINKS),
            _hit("3", d1, 40 * m, TokenKind.OPEN, None, PERSON_IP, OUTLOOK),
            _hit("4", d1, 41 * m, TokenKind.CLICK, links[1], PERSON_IP, CHROME),
            _hit("5", d2, 2 * h, TokenKind.OPEN, None, PERSON_IP, OUTLOOK),
        ]
        store_hits(conn, hits, default_enrichment(settings), settings)
    return World(rep, other, manager, admin, contact, account, mine, theirs)


def _caller(conn: Connection, user: uuid.UUID) -> fetch.Caller:
    return fetch.load_caller(conn, user)


def test_an_email_is_found_only_for_who_may_read_it(engine: Engine, world: World) -> None:
    with engine.connect() as conn:
        assert paneldetail.email_for(conn, world.mine, _caller(conn, world.rep))
        assert paneldetail.email_for(conn, world.mine, _caller(conn, world.other)) is None
        assert paneldetail.email_for(conn, world.mine, _caller(conn, world.manager))
        assert paneldetail.email_for(conn, world.theirs, _caller(conn, world.manager)) is None
        assert paneldetail.email_for(conn, world.theirs, _caller(conn, world.admin))
        assert paneldetail.email_for(conn, uuid.uuid4(), _caller(conn, world.admin)) is None


def test_events_in_time_order_with_links_and_clicks_per_link(engine: Engine, world: World) -> None:
    with engine.connect() as conn:
        rows = paneldetail.events(conn, world.mine)
        links = paneldetail.link_clicks(conn, world.mine)
        recipients = paneldetail.deliveries(conn, world.mine)
    assert [r["emailinteractiontime"] for r in rows] == sorted(
        r["emailinteractiontime"] for r in rows
    )
    assert [(r["interactiontype"], r["linkurl"]) for r in rows] == [
        (1, "https://example.com/a"),
        (1, "https://example.com/b"),
        (0, None),
        (1, "https://example.com/b"),
    ]
    assert [r["verdict"] for r in rows][:2] == ["machine", "machine"]
    assert rows[-1]["verdict"] == "human" and "fired" in rows[-1]["reasons"]
    assert [(x["url"], x["raw"], x["people"], x["machines"]) for x in links] == [
        ("https://example.com/a", 1, 0, 1),
        ("https://example.com/b", 2, 1, 1),
    ]
    assert [d["emailaddress"] for d in recipients] == ["dana@contoso.test"]


def test_a_party_and_its_engagement_follow_the_row_rule(engine: Engine, world: World) -> None:
    with engine.connect() as conn:
        rep, other, admin = (_caller(conn, u) for u in (world.rep, world.other, world.admin))
        contact, account = ("contact", world.contact), ("account", world.account)
        assert paneldetail.party(conn, "contact", world.contact)["name"] == "Dana"  # type: ignore[index]
        assert paneldetail.party(conn, "lead", world.contact) is None
        assert paneldetail.party(conn, "nonsense", world.contact) is None
        for who in (rep, other, admin):
            assert paneldetail.may_see(conn, contact, who)
            assert paneldetail.may_see(conn, account, who)
        stranger = _caller(conn, world.manager)  # manages the rep: sees through the rep's mail
        assert paneldetail.may_see(conn, contact, stranger)
        mine = paneldetail.recent_engagement(conn, contact, rep)
        theirs = paneldetail.recent_engagement(conn, account, other)
        everyone = paneldetail.recent_engagement(conn, contact, admin)
        scored = paneldetail.scored_events(conn, contact)
        members = paneldetail.account_contacts(conn, world.account)
    assert {r["subject"] for r in mine} == {"Mine"} and len(mine) == 2  # the open and the click
    assert {r["subject"] for r in theirs} == {"Theirs"}
    assert [r["subject"] for r in everyone] == ["Theirs", "Mine", "Mine"]  # newest first
    assert len(scored) == 3 and all(v == "human" for _k, v, _at, _rec in scored)
    assert [m["fullname"] for m in members] == ["Dana"]


def test_a_rep_without_mail_to_a_party_may_not_see_it(engine: Engine, world: World) -> None:
    with engine.begin() as conn:
        lonely = add_rep(conn, "new@northwind.test")
        lead = parties.add(conn, "lead", "Lee", "lee@fabrikam.test")
        assert not paneldetail.may_see(conn, ("contact", world.contact), _caller(conn, lonely))
        assert not paneldetail.may_see(conn, ("lead", lead), _caller(conn, world.rep))
        assert paneldetail.may_see(conn, ("lead", lead), _caller(conn, world.admin))
