"""The panel's feed and email-list queries (store/panelfeed.py) on both backends: who
reads what (a rep, a manager of a team, an admin), what is listed and what is only
counted, the cursor, the parties by score, and the email filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from helpers import HTML
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import emails, fetch, panelfeed, parties, teams, users
from mailsignal.store.schema import contact, email, interactionforemail
from mailsignal.tokens import Signer

NOW = datetime.now(UTC).replace(microsecond=0)


def _send(conn: Connection, settings: Settings, sender: str, to: str, subject: str) -> Any:
    signer = Signer(*load_keyring(settings.secret_file))
    msg = outgoing.build_message(sender, [to], subject, HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender=sender, recipients=[to], sent_at=NOW - timedelta(days=1))


def _event(conn: Connection, sent: Any, kind: int, verdict: str, minutes_ago: int) -> None:
    copy = sent.copies[0]
    links = emails.link_ids(conn, sent.activity_id)
    owner = conn.execute(
        select(email.c.ownerid).where(email.c.activityid == sent.activity_id)
    ).scalar_one()
    conn.execute(
        insert(interactionforemail).values(
            ownerid=owner,  # as store/events.insert copies it
            emailactivityid=sent.activity_id,
            deliveryid=copy.delivery_id,
            linkid=links[min(links)] if kind == 1 else None,
            interactiontype=kind,
            emailinteractiontime=NOW - timedelta(minutes=minutes_ago),
            emailaddress=copy.recipient,
            verdict=verdict,
            reasons={"fired": [], "not_fired": []},
            hitid=uuid.uuid4().hex,
        )
    )


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    with engine.begin() as conn:
        rep = users.add(conn, "Rita", "rep@northwind.test", opt_in=True)
        other = users.add(conn, "Otto", "other@northwind.test", opt_in=True)
        boss = users.add(conn, "Mona", "boss@northwind.test", opt_in=True)
        admin = users.add(conn, "Ada", "admin@northwind.test", opt_in=True, role="admin")
        team = teams.add(conn, "East", boss)
        teams.add_member(conn, team, rep)
        dana = parties.add(conn, "contact", "Dana", "dana@contoso.test")
        erin = parties.add(conn, "contact", "Erin", "erin@litware.test")
        conn.execute(update(contact).values(engagementscore=5.0))
        conn.execute(update(contact).where(contact.c.contactid == erin).values(engagementscore=9.0))
        mine = _send(conn, settings, "rep@northwind.test", "dana@contoso.test", "Pricing")
        theirs = _send(conn, settings, "other@northwind.test", "erin@litware.test", "Plan_B 100%")
        _event(conn, mine, 0, "machine", 50)
        _event(conn, mine, 0, "human", 40)
        _event(conn, mine, 1, "machine", 39)
        _event(conn, mine, 1, "human", 30)
        _event(conn, mine, 3, "unknown", 20)  # a reply not labelled machine: a person's
        _event(conn, mine, 0, "forward", 10)
        _event(conn, mine, 2, "unknown", 5)  # not labelled: counted, not listed
        _event(conn, theirs, 1, "human", 1)
        callers = {
            name: fetch.load_caller(conn, uid)
            for name, uid in (("rep", rep), ("other", other), ("boss", boss), ("admin", admin))
        }
    return {"callers": callers, "mine": mine, "theirs": theirs, "dana": dana, "erin": erin}


def test_a_reps_feed_lists_people_newest_first_and_counts_the_rest(
    engine: Engine, world: dict[str, Any]
) -> None:
    with engine.connect() as conn:
        got = panelfeed.feed(conn, world["callers"]["rep"])
    assert [(i["kind"], i["verdict"]) for i in got["items"]] == [
        (0, "forward"),
        (3, "unknown"),
        (1, "human"),
        (0, "human"),
    ]
    assert {i["activityid"] for i in got["items"]} == {world["mine"].activity_id}
    assert got["items"][2]["linkurl"] == "https://example.com/pricing?a=1&b=2"
    assert got["items"][0]["partyname"] == "Dana" and got["items"][0]["partykind"] == "contact"
    assert (got["machine"], got["unlabelled"], got["next"]) == (2, 1, None)
    with engine.connect() as conn:
        email_tab = panelfeed.feed(conn, world["callers"]["rep"], tab="email")
    assert [i["kind"] for i in email_tab["items"]] == [0, 1, 0]
    assert (email_tab["machine"], email_tab["unlabelled"]) == (2, 0)


def test_the_cursor_pages_and_the_period_of_the_count_follows(
    engine: Engine, world: dict[str, Any]
) -> None:
    rep = world["callers"]["rep"]
    with engine.connect() as conn:
        first = panelfeed.feed(conn, rep, limit=2)
        assert first["next"] is not None and len(first["items"]) == 2
        # Newest two: forward (10 min ago), reply (20); since 20 min ago: the unlabelled one.
        assert (first["machine"], first["unlabelled"]) == (0, 1)
        second = panelfeed.feed(conn, rep, before=first["next"], limit=2)
    assert [i["kind"] for i in second["items"]] == [1, 0]
    assert second["next"] is None and (second["machine"], second["unlabelled"]) == (2, 0)


def test_who_reads_what(engine: Engine, world: dict[str, Any]) -> None:
    c = world["callers"]
    with engine.connect() as conn:
        subjects = {
            name: {i["subject"] for i in panelfeed.feed(conn, c[name])["items"]}
            for name in ("rep", "other", "boss", "admin")
        }
        listed = {
            name: [r["subject"] for r in panelfeed.sent_mail(conn, c[name])["rows"]]
            for name in ("rep", "other", "boss", "admin")
        }
    assert subjects == {
        "rep": {"Pricing"},
        "other": {"Plan_B 100%"},
        "boss": {"Pricing"},  # the manager reads the team member's mail
        "admin": {"Pricing", "Plan_B 100%"},
    }
    assert listed["rep"] == ["Pricing"] and listed["other"] == ["Plan_B 100%"]
    assert listed["boss"] == ["Pricing"] and sorted(listed["admin"]) == ["Plan_B 100%", "Pricing"]


def test_parties_by_score_only_those_the_callers_mail_reached(
    engine: Engine, world: dict[str, Any]
) -> None:
    c = world["callers"]
    with engine.connect() as conn:
        rep = panelfeed.hottest(conn, c["rep"])
        admin = panelfeed.hottest(conn, c["admin"])
    assert [(p["kind"], p["id"]) for p in rep] == [("contact", world["dana"])]
    assert [p["id"] for p in admin] == [world["erin"], world["dana"]]


def test_email_filters_and_literal_search(engine: Engine, world: dict[str, Any]) -> None:
    admin = world["callers"]["admin"]

    def subjects(**kw: Any) -> list[str]:
        with engine.connect() as conn:
            return [r["subject"] for r in panelfeed.sent_mail(conn, admin, **kw)["rows"]]

    assert subjects(search="100%") == ["Plan_B 100%"]
    assert subjects(search="n_b") == ["Plan_B 100%"]
    assert subjects(search="n%b") == []
    assert subjects(search="PLAN") == ["Plan_B 100%"]
    assert subjects(search="dana@") == ["Pricing"]
    with engine.begin() as conn:
        conn.execute(
            update(email)
            .where(email.c.activityid == world["mine"].activity_id)
            .values(engagementverdict="human", humanopencount=1, noiseflag=True)
        )
    assert subjects(engaged=True) == ["Pricing"] and subjects(noise=True) == ["Pricing"]
    assert subjects(unopened_before=NOW) == ["Plan_B 100%"]
    assert subjects(since=NOW) == []
    with engine.connect() as conn:
        paged = panelfeed.sent_mail(conn, admin, per_page=1)
        assert paged["more"] and len(paged["rows"]) == 1
        assert not panelfeed.sent_mail(conn, admin, per_page=1, page=2)["more"]


def test_an_unknown_tab_is_refused(engine: Engine, world: dict[str, Any]) -> None:
    with engine.connect() as conn, pytest.raises(ValueError):
        panelfeed.feed(conn, world["callers"]["rep"], tab="hottest")


def test_a_managers_list_merges_the_team_in_order_across_pages(
    engine: Engine, settings: Settings
) -> None:
    """A manager's "My emails" merges each member's newest mail (one index range each):
    the pages are the team's mail in send order, as one sorted list would be."""
    with engine.begin() as conn:
        boss = users.add(conn, "Mona", "boss@northwind.test", opt_in=True)
        members = [
            users.add(conn, f"Rep {n}", f"rep{n}@northwind.test", opt_in=True) for n in range(3)
        ]
        users.add(conn, "Outsider", "out@northwind.test", opt_in=True)
        team = teams.add(conn, "East", boss)
        for member in members:
            teams.add_member(conn, team, member)
        for n in range(14):
            sender = ["rep0", "rep1", "rep2", "out", "boss"][n % 5]
            sent = _send(conn, settings, f"{sender}@northwind.test", "dana@contoso.test", f"m{n}")
            conn.execute(
                update(email)
                .where(email.c.activityid == sent.activity_id)
                .values(senton=NOW - timedelta(hours=n))
            )
        caller = fetch.load_caller(conn, boss)
        pages = [
            [r["subject"] for r in panelfeed.sent_mail(conn, caller, page=p, per_page=4)["rows"]]
            for p in (1, 2, 3)
        ]
    expected = [f"m{n}" for n in range(14) if n % 5 != 3]  # all but the outsider's
    assert [s for page in pages for s in page] == expected
    assert [len(p) for p in pages] == [4, 4, 3]
