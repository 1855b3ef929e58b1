"""The panel's admin page (web/panel/admin.py), on both backends: a rep is refused (403);
an admin disables and enables users through the forms (a POST without the CSRF token
changes nothing), is refused disabling themselves, creates an API key shown once and
revokes it, flips the org switch, sees the opt-in gap, and manages teams."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import add_rep, csrf_of, sign_in, track_html, with_password
from mailsignal.errors import AuthError
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import teams, users
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

REP, QUIET, ADMIN = "rep@northwind.test", "quiet@northwind.test", "admin@northwind.test"


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        add_rep(conn, REP, opt_in=False)
        add_rep(conn, QUIET)
        add_rep(conn, ADMIN, role="admin")
        for address in (REP, ADMIN):
            with_password(conn, address)
        track_html(conn, signer, ["ana@contoso.test"])  # REP has not opted in: untracked
        track_html(conn, signer, ["bo@contoso.test"])
    with TestClient(create_app(settings)) as c:
        yield c


def _id(engine: Engine, address: str) -> str:
    with engine.connect() as conn:
        user = users.by_address(conn, address)
    assert user is not None
    return str(user["systemuserid"])


def _uuid(engine: Engine, address: str) -> uuid.UUID:
    return uuid.UUID(_id(engine, address))


def _disabled(engine: Engine, address: str) -> bool:
    with engine.connect() as conn:
        user = users.by_address(conn, address)
    assert user is not None
    return bool(user["isdisabled"])


def test_a_rep_is_refused(client: TestClient) -> None:
    sign_in(client, REP)
    page = client.get("/admin")
    assert page.status_code == 403 and "this page is for admins" in page.text
    assert 'href="/admin"' not in client.get("/views").text  # no Admin tab either


def test_admin_disables_and_enables_a_user_through_the_form(
    client: TestClient, engine: Engine
) -> None:
    sign_in(client, ADMIN)
    page = client.get("/admin")
    assert page.status_code == 200 and QUIET in page.text
    uid = _id(engine, QUIET)
    forged = client.post(f"/admin/users/{uid}/disable", data={})
    assert forged.status_code == 403 and not _disabled(engine, QUIET)
    wrong = client.post(f"/admin/users/{uid}/disable", data={"csrf": "not-the-token"})
    assert wrong.status_code == 403 and not _disabled(engine, QUIET)
    token = csrf_of(page.text)
    done = client.post(f"/admin/users/{uid}/disable", data={"csrf": token})
    assert done.status_code == 200 and _disabled(engine, QUIET)
    assert f"{QUIET} is disabled" in done.text and "disabled</span>" in done.text
    again = client.post(f"/admin/users/{uid}/enable", data={"csrf": token})
    assert again.status_code == 200 and not _disabled(engine, QUIET)


def test_refusals_are_messages(client: TestClient, engine: Engine) -> None:
    sign_in(client, ADMIN)
    token = csrf_of(client.get("/admin").text)
    me = client.post(f"/admin/users/{_id(engine, ADMIN)}/disable", data={"csrf": token})
    assert me.status_code == 400 and "you cannot disable yourself" in me.text
    assert not _disabled(engine, ADMIN)
    bad = client.post("/admin/users/not-an-id/disable", data={"csrf": token})
    assert bad.status_code == 404 and "no user with id" in bad.text


def test_api_key_is_shown_once_then_revoked(client: TestClient, engine: Engine) -> None:
    sign_in(client, ADMIN)
    token = csrf_of(client.get("/admin").text)
    uid = _id(engine, QUIET)
    made = client.post(f"/admin/users/{uid}/keys", data={"csrf": token, "name": "crm"})
    assert made.status_code == 200 and "shown this once" in made.text
    key = re.search(r"msk_[A-Za-z0-9_\-]+", made.text)
    assert key is not None
    assert users.authenticate(engine, key[0])["internalemailaddress"] == QUIET
    later = client.get("/admin").text
    prefix = users.key_prefix(key[0])
    assert key[0] not in later and prefix in later and "crm" in later
    revoked = client.post(f"/admin/users/{uid}/keys/revoke", data={"csrf": token, "prefix": prefix})
    assert revoked.status_code == 200 and f"Key {prefix}" in revoked.text
    with pytest.raises(AuthError):
        users.authenticate(engine, key[0])


def test_org_switch_and_opt_in_gap(client: TestClient, engine: Engine) -> None:
    sign_in(client, ADMIN)
    page = client.get("/admin")
    gap = page.text.split('id="gap"')[1].split("</section>")[0]
    assert REP in gap and QUIET not in gap
    assert re.search(r"rep@northwind\.test</th><td class=\"num\">2</td>", gap)
    token = csrf_of(page.text)
    with engine.connect() as conn:
        before = bool(users.get_org(conn)["isemailmonitoringallowed"])
    flipped = client.post(
        "/admin/org", data={"csrf": token, "monitoring": "off" if before else "on"}
    )
    assert flipped.status_code == 200
    with engine.connect() as conn:
        assert bool(users.get_org(conn)["isemailmonitoringallowed"]) is not before


def test_teams_are_managed_from_the_page(client: TestClient, engine: Engine) -> None:
    sign_in(client, ADMIN)
    token = csrf_of(client.get("/admin").text)
    made = client.post("/admin/teams", data={"csrf": token, "name": "West", "manager": QUIET})
    assert made.status_code == 200 and "Team &#39;West&#39; is created" in made.text
    twice = client.post("/admin/teams", data={"csrf": token, "name": "West", "manager": ""})
    assert twice.status_code == 400 and "already exists" in twice.text
    with engine.connect() as conn:
        team_id = teams.by_name(conn, "West")["teamid"]
    joined = client.post(
        f"/admin/teams/{team_id}/members", data={"csrf": token, "address": REP, "action": "add"}
    )
    assert joined.status_code == 200 and f"{REP} joined" in joined.text
    nobody = client.post(
        f"/admin/teams/{team_id}/members", data={"csrf": token, "address": "x@nowhere.test"}
    )
    assert nobody.status_code == 404 and "no user" in nobody.text
    with engine.connect() as conn:
        assert teams.managed_members(conn, _uuid(engine, QUIET)) == {_uuid(engine, REP)}
    client.post(f"/admin/teams/{team_id}/manager", data={"csrf": token, "manager": ADMIN})
    left = client.post(
        f"/admin/teams/{team_id}/members", data={"csrf": token, "address": REP, "action": "remove"}
    )
    assert f"{REP} left" in left.text
    with engine.connect() as conn:
        listed = teams.listing(conn)
    assert listed[0]["manager"] == ADMIN and listed[0]["members"] == []


def test_the_page_shows_the_reports(client: TestClient) -> None:
    sign_in(client, ADMIN)
    page = client.get("/admin").text
    for heading in ("Scanner noise, last 30 days", "Data lists", "Outbound queue", "Mailboxes"):
        assert heading in page
    assert "waiting for delivery" in page and "refresh NAME FILE" in page
