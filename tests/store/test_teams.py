"""Teams (store/teams.py) and what a manager reads, on both backends: `load_caller` gives
a manager their members as `team`, and "Engaged This Week" run as the manager returns
the members' mail and not a non-member's (the row rule of fetchxml/access.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, update

from helpers import HTML, add_rep
from mailsignal import outgoing, views
from mailsignal.errors import InputError, NotFoundError
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import fetch, teams
from mailsignal.store.schema import email
from mailsignal.tokens import Signer

BOSS, ANA, BEN, CARL = (
    "boss@northwind.test",
    "ana@northwind.test",
    "ben@northwind.test",
    "carl@northwind.test",
)


def _engaged(conn: Connection, signer: Signer, sender: str, subject: str) -> None:
    """An email from `sender` opened three times an hour ago (so Engaged This Week)."""
    msg = outgoing.build_message(sender, ["lee@contoso.test"], subject, HTML, None)
    done = outgoing.Outgoing(signer, "http://track.test").track(
        conn, msg, sender=sender, recipients=["lee@contoso.test"]
    )
    conn.execute(
        update(email)
        .where(email.c.activityid == done.activity_id)
        .values(opencount=3, lastopenedtime=datetime.now(UTC) - timedelta(hours=1))
    )


def test_team_crud(engine: Engine) -> None:
    with engine.begin() as conn:
        boss, ana = add_rep(conn, BOSS), add_rep(conn, ANA)
        team_id = teams.add(conn, " West ", boss)
        assert teams.get(conn, team_id)["name"] == "West"
        with pytest.raises(InputError, match="already exists"):
            teams.add(conn, "West")
        with pytest.raises(InputError):
            teams.add(conn, "  ")
        with pytest.raises(NotFoundError):
            teams.by_name(conn, "East")
        with pytest.raises(NotFoundError):
            teams.get(conn, uuid.uuid4())
        assert teams.add_member(conn, team_id, ana) is True
        assert teams.add_member(conn, team_id, ana) is False
        assert teams.listing(conn) == [
            {"teamid": team_id, "name": "West", "manager": BOSS, "members": [ANA]}
        ]
        assert teams.remove_member(conn, team_id, ana) is True
        assert teams.remove_member(conn, team_id, ana) is False


def test_a_manager_reads_the_members_mail_and_no_one_elses(
    engine: Engine, settings: Settings
) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        boss, ana, ben, carl = (add_rep(conn, a) for a in (BOSS, ANA, BEN, CARL))
        west = teams.add(conn, "West", boss)
        teams.add_member(conn, west, ana)
        teams.add_member(conn, west, ben)
        teams.add_member(conn, teams.add(conn, "East", carl), carl)  # carl manages himself
        for sender in (BOSS, ANA, BEN, CARL):
            _engaged(conn, signer, sender, f"From {sender}")

    view = views.find(settings.data_dir, "Engaged This Week")
    with engine.connect() as conn:
        manager = fetch.load_caller(conn, boss)
        assert manager.team == frozenset({ana, ben}) and not manager.is_admin
        assert fetch.load_caller(conn, carl).team == frozenset()  # himself excluded
        assert fetch.load_caller(conn, ana).team == frozenset()
        seen = {r["subject"] for r in views.run(conn, view, manager).rows}
        rep = {r["subject"] for r in views.run(conn, view, fetch.load_caller(conn, ana)).rows}
    assert seen == {f"From {BOSS}", f"From {ANA}", f"From {BEN}"}
    assert rep == {f"From {ANA}"}

    with engine.begin() as conn:
        teams.remove_member(conn, west, ben)
        teams.set_manager(conn, west, None)
    with engine.connect() as conn:
        after = fetch.load_caller(conn, boss)
        assert after.team == frozenset()
        assert {r["subject"] for r in views.run(conn, view, after).rows} == {f"From {BOSS}"}
