"""The opt-in gap (store/optin.py) on SQLite and PostgreSQL with a fixed clock: only
emails untracked because the sender had not opted in count (not mail untracked for the
org switch alone, not tracked mail, not mail outside the window), emails not recipients;
and the shipped "Opt-in gap" saved view gives the same counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from helpers import add_rep
from mailsignal import outgoing, views
from mailsignal.fetchxml import Caller
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import optin, users
from mailsignal.tokens import Signer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REP, QUIET, KEEN = "rep@northwind.test", "quiet@northwind.test", "keen@northwind.test"


def _send(conn: Connection, signer: Signer, sender: str, to: list[str], at: datetime) -> Any:
    msg = outgoing.build_message(sender, to, "Hello", "<p>Hi</p>", None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender=sender, recipients=to, sent_at=at)


def _seed(engine: Engine, settings: Settings, now: datetime) -> dict[str, uuid.UUID]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        ids = {
            "rep": add_rep(conn, REP, opt_in=True),
            "quiet": add_rep(conn, QUIET, opt_in=False),
            "keen": add_rep(conn, KEEN, opt_in=True),
        }
        # REP, opted in: tracked mail, then mail untracked only by the org switch.
        _send(conn, signer, REP, ["ana@contoso.test"], now - timedelta(days=3))
        users.set_org(conn, monitoring=False)
        _send(conn, signer, REP, ["ana@contoso.test"], now - timedelta(days=2))
        users.set_org(conn, monitoring=True)
        # ... then REP opts out: two emails (one to three recipients) in the window, one
        # before it, one after its end.
        users.set_optin(conn, ids["rep"], False)
        to_three = ["ana@contoso.test", "bo@contoso.test", "cy@fabrikam.test"]
        _send(conn, signer, REP, to_three, now - timedelta(days=1))
        _send(conn, signer, REP, ["ana@contoso.test"], now - timedelta(hours=1))
        _send(conn, signer, REP, ["ana@contoso.test"], now - timedelta(days=40))
        _send(conn, signer, REP, ["ana@contoso.test"], now + timedelta(hours=1))
        # QUIET never opted in; the org switch was off as well for one: it still counts.
        users.set_org(conn, monitoring=False)
        _send(conn, signer, QUIET, ["dee@contoso.test"], now - timedelta(days=5))
        users.set_org(conn, monitoring=True)
        _send(conn, signer, KEEN, ["dee@contoso.test"], now - timedelta(days=5))
    return ids


def test_only_mail_untracked_for_the_opt_in_counts(engine: Engine, settings: Settings) -> None:
    _seed(engine, settings, NOW)
    with engine.connect() as conn:
        found = optin.gaps(conn, NOW - timedelta(days=30), NOW)
        wide = optin.gaps(conn, NOW - timedelta(days=60), NOW)
    assert [(p["internalemailaddress"], p["untracked"]) for p in found] == [
        (REP, 2),
        (QUIET, 1),
    ]
    assert KEEN not in {p["internalemailaddress"] for p in found}  # opted in: no gap
    assert [p["untracked"] for p in wide] == [3, 1]


def test_the_saved_view_agrees(engine: Engine, settings: Settings) -> None:
    """The view's window is FetchXML's last-x-days by the real clock, so the mail is
    sent relative to it."""
    now = datetime.now(UTC)
    ids = _seed(engine, settings, now)
    view = views.find(settings.data_dir, "opt-in-gap")
    assert view.name == "Opt-in gap"
    admin = Caller(uuid.UUID(int=0), is_admin=True)
    with engine.connect() as conn:
        rows = views.run(conn, view, admin).rows
        store = optin.gaps(conn, now - timedelta(days=30), now)
    counted = {row["owner"]: int(row["untracked"]) for row in rows}
    assert counted == {ids["rep"]: 2, ids["quiet"]: 1}
    assert counted == {p["systemuserid"]: p["untracked"] for p in store if p["untracked"]}
