"""Signing in to the panel (web/panel/auth.py): the form and its CSRF cookie, the
session cookie's flags, the failure limiter, logout, idle expiry and the ends a session
meets (password changed, user disabled), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from starlette.testclient import TestClient

from helpers import PANEL_PASSWORD, add_rep, csrf_of, sign_in, with_password
from mailsignal import passwords
from mailsignal.errors import InputError
from mailsignal.settings import Settings
from mailsignal.store import sessions, users
from mailsignal.store.schema import panelsession
from mailsignal.web.app import create_app

REP = "rep@northwind.test"


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with engine.begin() as conn:
        add_rep(conn)
        with_password(conn, REP)
    with TestClient(create_app(settings)) as c:
        yield c


def test_sign_in_starts_a_session_in_a_safe_cookie(client: TestClient) -> None:
    form = client.get("/login")
    assert form.status_code == 200 and 'autocomplete="current-password"' in form.text
    assert "cache-control" in form.headers and "no-store" in form.headers["cache-control"]
    r = sign_in(client, REP)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "ms_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it (test_secure_behind_tls)
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403


def test_a_wrong_password_or_unknown_user_is_refused_the_same_way(client: TestClient) -> None:
    wrong = sign_in(client, REP, "not the password at all")
    nobody = sign_in(client, "nobody@northwind.test", "not the password at all")
    for r in (wrong, nobody):
        assert r.status_code == 401
        assert "That address and password do not match." in r.text
        assert "ms_session" not in r.headers.get("set-cookie", "")


def test_five_failures_lock_the_pair_and_the_right_password_waits(client: TestClient) -> None:
    for _ in range(5):
        assert sign_in(client, REP, "guess guess guess").status_code == 401
    r = sign_in(client, REP)
    assert r.status_code == 429 and "Too many failed attempts" in r.text


def test_a_form_without_its_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"address": REP, "password": PANEL_PASSWORD, "csrf": "forged"})
    assert r.status_code == 403 and "ms_session" not in r.headers.get("set-cookie", "")


def test_next_never_leaves_the_site(client: TestClient) -> None:
    form = client.get("/login", params={"next": "//evil.example/x"})
    token = csrf_of(form.text)
    r = client.post(
        "/login",
        data={"address": REP, "password": PANEL_PASSWORD, "csrf": token, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_ends_the_session(client: TestClient, engine: Engine) -> None:
    sign_in(client, REP)
    page = client.get("/login")  # any page with a form of the signed-in user would do
    with engine.connect() as conn:
        assert conn.execute(panelsession.select()).first() is not None
    token = client.cookies.get("ms_session")
    assert token
    with engine.begin() as conn:
        live = sessions.resolve(conn, token, idle=timedelta(hours=1), lifetime=timedelta(hours=12))
    assert live is not None and page.status_code == 200
    r = client.post("/logout", data={"csrf": live.csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with engine.connect() as conn:
        assert conn.execute(panelsession.select()).first() is None


def test_sessions_end_when_idle_too_long_or_the_password_changes_or_disabled(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        user_id = add_rep(conn, "other@northwind.test")
        token, _ = sessions.begin(conn, user_id)
        idle, life = timedelta(minutes=60), timedelta(hours=12)
        assert sessions.resolve(conn, token, idle=idle, lifetime=life) is not None
        long_ago = datetime.now(UTC) - idle * 2
        conn.execute(update(panelsession).values(lastseenon=long_ago))
        assert sessions.resolve(conn, token, idle=idle, lifetime=life) is None  # idle
        token, _ = sessions.begin(conn, user_id)
        sessions.set_password_hash(conn, user_id, passwords.make("a brand new password"))
        assert sessions.resolve(conn, token, idle=idle, lifetime=life) is None  # password
        token, _ = sessions.begin(conn, user_id)
        users.set_disabled(conn, user_id, True)
        assert sessions.resolve(conn, token, idle=idle, lifetime=life) is None  # disabled


def test_a_short_password_is_refused() -> None:
    with pytest.raises(InputError, match="at least 12"):
        passwords.make("short")
    assert passwords.verify(passwords.make("long enough password"), "long enough password")
    assert not passwords.verify(None, "anything at all")


def test_the_cookie_is_secure_behind_a_tls_proxy(engine: Engine, settings: Settings) -> None:
    """Reached over https (here through a trusted proxy that says so), both cookies are
    Secure; the links' origin follows the proxy as webapi/common.base reads it."""
    with engine.begin() as conn:
        add_rep(conn)
        with_password(conn, REP)
    proxied = settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    https = {"x-forwarded-proto": "https"}
    app = create_app(proxied)
    with TestClient(app, "https://testserver", client=("127.0.0.1", 5000), headers=https) as c:
        r = sign_in(c, REP)
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_expired_sessions_are_purged_at_the_next_sign_in(
    client: TestClient, engine: Engine
) -> None:
    with engine.begin() as conn:
        user = users.by_address(conn, REP)
        assert user is not None
        sessions.begin(conn, user["systemuserid"], now=datetime.now(UTC) - timedelta(days=3))
    sign_in(client, REP)
    with engine.connect() as conn:
        assert len(conn.execute(panelsession.select()).all()) == 1  # only the new one
