"""Admin REST (`/api/v1/users`) on SQLite and PostgreSQL: only admins; keys created,
listed (never shown again) and revoked; users disabled and enabled, with effect on the
next request of the REST API and the Web API; never oneself or the last admin. And an
authenticated read answers while the database is write-locked."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from helpers import add_rep
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.schema import apikey
from mailsignal.web.app import create_app

REP, ADMIN = "rep@northwind.test", "admin@northwind.test"


@pytest.fixture
def ids(engine: Engine) -> dict[str, str]:
    with engine.begin() as conn:
        users.get_org(conn)  # as `mailsignal init` makes it (WhoAmI reads it)
        return {"rep": str(add_rep(conn, REP)), "admin": str(add_rep(conn, ADMIN, role="admin"))}


@pytest.fixture
def keys(engine: Engine, ids: dict[str, str]) -> dict[str, str]:
    with engine.begin() as conn:
        return {who: users.create_api_key(conn, uuid.UUID(ids[who])) for who in ("rep", "admin")}


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def works(client: TestClient, key: str) -> bool:
    """Whether the key opens the REST API and the Web API (it must be both or neither)."""
    rest = client.get("/api/v1/emails", headers=as_(key)).status_code
    webapi = client.get("/api/data/v9.2/WhoAmI", headers=as_(key)).status_code
    assert {rest, webapi} in ({200}, {401}), (rest, webapi)
    return rest == 200


def test_only_admins(client: TestClient, keys: dict[str, str], ids: dict[str, str]) -> None:
    rep = as_(keys["rep"])
    calls: list[tuple[str, str]] = [
        ("GET", "/api/v1/users"),
        ("POST", f"/api/v1/users/{ids['rep']}/disable"),
        ("POST", f"/api/v1/users/{ids['admin']}/enable"),
        ("GET", f"/api/v1/users/{ids['rep']}/keys"),
        ("POST", f"/api/v1/users/{ids['rep']}/keys"),
        ("DELETE", f"/api/v1/users/{ids['admin']}/keys"),
        ("DELETE", f"/api/v1/users/{ids['admin']}/keys/{users.key_prefix(keys['admin'])}"),
    ]
    for method, path in calls:
        forbidden = client.request(method, path, headers=rep)
        assert forbidden.status_code == 403, (method, path)
        assert forbidden.json()["error"]["code"] == "forbidden"
        assert client.request(method, path).status_code == 401
    assert works(client, keys["admin"]) and works(client, keys["rep"])  # nothing changed


def test_keys_created_listed_and_revoked(
    client: TestClient, keys: dict[str, str], ids: dict[str, str]
) -> None:
    admin, rep_id = as_(keys["admin"]), ids["rep"]
    made = client.post(f"/api/v1/users/{rep_id}/keys", json={"name": "outlook"}, headers=admin)
    assert made.status_code == 201
    new = made.json()
    assert new["name"] == "outlook" and new["key"].startswith(f"msk_{new['prefix']}_")
    assert works(client, new["key"])
    listed = client.get(f"/api/v1/users/{rep_id}/keys", headers=admin).json()["value"]
    assert [k["prefix"] for k in listed] == [users.key_prefix(keys["rep"]), new["prefix"]]
    assert new["key"] not in str(listed) and "keyhash" not in listed[0]
    assert listed[1]["lastusedon"] is not None and listed[1]["revokedon"] is None

    gone = client.delete(f"/api/v1/users/{rep_id}/keys/{new['prefix']}", headers=admin)
    assert gone.status_code == 204
    assert not works(client, new["key"])  # at once
    assert works(client, keys["rep"])  # the rep's other key is untouched
    again = client.delete(f"/api/v1/users/{rep_id}/keys/{new['prefix']}", headers=admin)
    assert again.status_code == 204
    # A prefix that is not this user's is not found, and nothing is revoked.
    admins = client.delete(
        f"/api/v1/users/{rep_id}/keys/{users.key_prefix(keys['admin'])}", headers=admin
    )
    assert admins.status_code == 404 and admins.json()["error"]["code"] == "not_found"
    assert works(client, keys["admin"])

    unnamed = client.post(f"/api/v1/users/{rep_id}/keys", headers=admin)
    assert unnamed.status_code == 201 and unnamed.json()["name"] == "api"
    revoked = client.delete(f"/api/v1/users/{rep_id}/keys", headers=admin)
    assert revoked.json() == {"revoked": 2}
    assert not works(client, keys["rep"]) and not works(client, unnamed.json()["key"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/users/not-a-guid/keys", None, 400),
        ("GET", "/api/v1/users/00000000-0000-0000-0000-000000000000/keys", None, 404),
        ("POST", "/api/v1/users/00000000-0000-0000-0000-000000000000/disable", None, 404),
        ("POST", "/api/v1/users/00000000-0000-0000-0000-000000000000/keys", None, 404),
        ("DELETE", "/api/v1/users/00000000-0000-0000-0000-000000000000/keys", None, 404),
        ("POST", "/api/v1/users/{rep}/keys", {"name": "x" * 101}, 400),
        ("POST", "/api/v1/users/{rep}/keys", {"label": "x"}, 400),
        ("DELETE", "/api/v1/users/{rep}/keys/nope", None, 404),
    ],
)
def test_bad_requests_are_clear_4xx(
    client: TestClient,
    keys: dict[str, str],
    ids: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    r = client.request(method, path.format(rep=ids["rep"]), json=body, headers=as_(keys["admin"]))
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) >= {"code", "message"}


def test_disable_and_enable_take_effect_at_once(
    client: TestClient, keys: dict[str, str], ids: dict[str, str]
) -> None:
    admin = as_(keys["admin"])
    everyone = client.get("/api/v1/users", headers=admin).json()["value"]
    assert [(u["internalemailaddress"], u["isdisabled"]) for u in everyone] == [
        (ADMIN, False),
        (REP, False),
    ]
    off = client.post(f"/api/v1/users/{ids['rep']}/disable", headers=admin)
    assert off.status_code == 200 and off.json()["isdisabled"] is True
    assert not works(client, keys["rep"])
    assert client.get("/api/v1/users", headers=admin).json()["value"][1]["isdisabled"] is True
    # The key was not revoked: enabling the user brings it back.
    on = client.post(f"/api/v1/users/{ids['rep']}/enable", headers=admin)
    assert on.status_code == 200 and on.json()["isdisabled"] is False
    assert works(client, keys["rep"])


def test_not_oneself_nor_the_last_admin(
    client: TestClient, keys: dict[str, str], ids: dict[str, str], engine: Engine
) -> None:
    admin = as_(keys["admin"])
    me = client.post(f"/api/v1/users/{ids['admin']}/disable", headers=admin)
    assert me.status_code == 400 and "yourself" in me.json()["error"]["message"]
    with engine.begin() as conn:
        ops = add_rep(conn, "ops@northwind.test", role="admin")
        ops_key = users.create_api_key(conn, ops)
    # Two admins: each may disable the other, but not both end up disabled.
    assert client.post(f"/api/v1/users/{ops}/disable", headers=admin).status_code == 200
    assert not works(client, ops_key)
    assert client.post(f"/api/v1/users/{ops}/enable", headers=admin).status_code == 200
    ops_auth = as_(ops_key)
    assert client.post(f"/api/v1/users/{ids['admin']}/disable", headers=ops_auth).status_code == 200
    # The last enabled admin is the caller: refused as "yourself" (the CLI, which has no
    # caller, is refused as "the last enabled admin": tests/cli/test_users.py).
    last = client.post(f"/api/v1/users/{ops}/disable", headers=ops_auth)
    assert last.status_code == 400 and "yourself" in last.json()["error"]["message"]
    assert works(client, ops_key) and not works(client, keys["admin"])


@pytest.fixture
def write_locked(engine: Engine, db_url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock (as ingest or the relay does while
    writing), or on PostgreSQL the apikey rows."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
        holder.close()
        return
    with engine.connect() as holder:
        holder.execute(select(apikey).with_for_update())
        yield
        holder.rollback()


def test_an_authenticated_read_answers_while_the_database_is_write_locked(
    client: TestClient, keys: dict[str, str], engine: Engine, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("write_locked")
    for _ in range(3):
        r = client.get("/api/v1/emails", headers=as_(keys["rep"]))
        assert r.status_code == 200, r.text
        assert client.get("/api/data/v9.2/WhoAmI", headers=as_(keys["rep"])).status_code == 200
