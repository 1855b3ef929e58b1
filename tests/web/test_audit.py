"""The audit trail over HTTP, on SQLite and PostgreSQL: rows written by the admin REST
API, the Web API's PATCH (org switch, a user's opt-in) and the panel's admin forms, each
with the acting user; `GET /api/v1/audit` for admins only, filtered, bounded and paged,
a bad filter a 400 in JSON; and `default_user_optin` on `POST /api/v1/users`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import add_rep, csrf_of, sign_in, with_password
from mailsignal.settings import Settings
from mailsignal.store import audit, users
from mailsignal.web.app import create_app

REP, ADMIN = "rep@northwind.test", "admin@northwind.test"
WEBAPI = "/api/data/v9.2"


@pytest.fixture
def ids(engine: Engine) -> dict[str, uuid.UUID]:
    with engine.begin() as conn:
        org = users.get_org(conn)
        rep, admin = add_rep(conn, REP, opt_in=False), add_rep(conn, ADMIN, role="admin")
        with_password(conn, ADMIN)
        return {"rep": rep, "admin": admin, "org": org["organizationid"]}


@pytest.fixture
def keys(engine: Engine, ids: dict[str, uuid.UUID]) -> dict[str, str]:
    with engine.begin() as conn:
        return {who: users.create_api_key(conn, ids[who]) for who in ("rep", "admin")}


def _client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    yield from _client(settings)


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _rows(engine: Engine, **where: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return list(reversed(audit.search(conn, audit.Filter(**where))))


def test_rest_changes_are_audited(
    client: TestClient, engine: Engine, ids: dict[str, uuid.UUID], keys: dict[str, str]
) -> None:
    admin = as_(keys["admin"])
    made = client.post(
        "/api/v1/users", json={"internalemailaddress": "New@Northwind.test"}, headers=admin
    )
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["internalemailaddress"] == "new@northwind.test"
    assert new["emailengagementoptin"] is False and new["accessrole"] == "rep"
    base = f"/api/v1/users/{ids['rep']}"
    assert client.post(f"{base}/disable", headers=admin).status_code == 200
    assert client.post(f"{base}/enable", headers=admin).status_code == 200
    role = client.post(f"{base}/role", json={"accessrole": "admin"}, headers=admin)
    assert role.status_code == 200 and role.json()["accessrole"] == "admin"
    key = client.post(f"{base}/keys", json={"name": "crm"}, headers=admin).json()
    assert client.delete(f"{base}/keys/{key['prefix']}", headers=admin).status_code == 204
    client.post(f"{base}/keys", headers=admin)
    assert client.delete(f"{base}/keys", headers=admin).json() == {"revoked": 2}  # + the rep's
    rows = _rows(engine)
    assert [r["action"] for r in rows] == [
        "user.create",
        "user.disable",
        "user.enable",
        "user.role",
        "apikey.create",
        "apikey.revoke",
        "apikey.create",
        "apikey.revoke",
        "apikey.revoke",
    ]
    assert {r["actor"] for r in rows} == {f"user:{ids['admin']}"}
    assert rows[0]["subject"] == new["systemuserid"]
    assert rows[3]["details"] == {"from": "rep", "to": "admin"}
    # Refusals change nothing and write nothing.
    me = f"/api/v1/users/{ids['admin']}"
    refusals = [
        client.post(f"{me}/disable", headers=admin),
        client.post(f"{me}/role", json={"accessrole": "rep"}, headers=admin),
        client.post(f"{base}/role", json={"accessrole": "owner"}, headers=admin),
        client.post("/api/v1/users", json={"internalemailaddress": REP}, headers=admin),
        client.post(
            "/api/v1/users",
            json={"internalemailaddress": "x@northwind.test", "timezonename": "Mars/Base"},
            headers=admin,
        ),
        client.post("/api/v1/users", json={"internalemailaddress": "nobody"}, headers=admin),
    ]
    assert [r.status_code for r in refusals] == [400] * 6
    assert all("error" in r.json() for r in refusals)
    assert len(_rows(engine)) == len(rows)
    rep = as_(keys["rep"])  # the rep's key was revoked above: 401
    late = client.post("/api/v1/users", json={"internalemailaddress": "y@n.test"}, headers=rep)
    assert late.status_code == 401


def test_default_user_optin_on_rest_creation(
    settings: Settings, keys: dict[str, str], engine: Engine
) -> None:
    on = settings.model_copy(update={"default_user_optin": True})
    admin = as_(keys["admin"])
    for client in _client(on):
        plain = client.post(
            "/api/v1/users", json={"internalemailaddress": "a@northwind.test"}, headers=admin
        ).json()
        told = client.post(
            "/api/v1/users",
            json={"internalemailaddress": "b@northwind.test", "emailengagementoptin": False},
            headers=admin,
        ).json()
    assert plain["emailengagementoptin"] is True and told["emailengagementoptin"] is False
    made = _rows(engine, action="user.create")
    assert [r["details"]["opt_in_from"] for r in made] == ["default_user_optin", "request"]


def test_web_api_patches_are_audited(
    client: TestClient, engine: Engine, ids: dict[str, uuid.UUID], keys: dict[str, str]
) -> None:
    admin, rep = as_(keys["admin"]), as_(keys["rep"])
    org = f"{WEBAPI}/organizations({ids['org']})"
    for _ in range(2):  # the second changes nothing: no second row
        off = client.patch(org, json={"isemailmonitoringallowed": False}, headers=admin)
        assert off.status_code == 204
    mine = f"{WEBAPI}/usersettingscollection({ids['rep']})"
    assert client.patch(mine, json={"emailengagementoptin": True}, headers=rep).status_code == 204
    zone = client.patch(mine, json={"timezonename": "Europe/Berlin"}, headers=rep)
    assert zone.status_code == 204  # no opt-in change: no row
    flow = client.patch(mine, json={"allowemailcredentials": False}, headers=admin)  # the alias
    assert flow.status_code == 204
    refused = client.patch(org, json={"isemailmonitoringallowed": True}, headers=rep)
    assert refused.status_code == 403
    rows = _rows(engine)
    assert [(r["action"], r["actor"], r["subject"], r["details"]) for r in rows] == [
        (
            "org.update",
            f"user:{ids['admin']}",
            str(ids["org"]),
            {"isemailmonitoringallowed": {"from": True, "to": False}},
        ),
        ("user.optin", f"user:{ids['rep']}", str(ids["rep"]), {"opt_in": True}),
        ("user.optin", f"user:{ids['admin']}", str(ids["rep"]), {"opt_in": False}),
    ]


def test_panel_admin_forms_are_audited(
    client: TestClient, engine: Engine, ids: dict[str, uuid.UUID]
) -> None:
    sign_in(client, ADMIN)
    csrf = csrf_of(client.get("/admin").text)
    rep = ids["rep"]
    for path, form in (
        (f"/admin/users/{rep}/disable", {}),
        (f"/admin/users/{rep}/enable", {}),
        (f"/admin/users/{rep}/keys", {"name": "panel"}),
        ("/admin/org", {"monitoring": "off"}),
        ("/admin/teams", {"name": "East", "manager": ADMIN}),
    ):
        answer = client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 200, (path, answer.text[:300])
    with engine.connect() as conn:
        team = conn.exec_driver_sql("SELECT teamid FROM team").scalar_one()
    client.post(
        f"/admin/teams/{team}/members", data={"csrf": csrf, "address": REP, "action": "add"}
    )
    client.post(
        f"/admin/teams/{team}/members", data={"csrf": csrf, "address": REP, "action": "remove"}
    )
    client.post(f"/admin/teams/{team}/manager", data={"csrf": csrf, "manager": REP})
    with engine.connect() as conn:
        prefix = users.list_api_keys(conn, rep)[-1]["prefix"]
    client.post(f"/admin/users/{rep}/keys/revoke", data={"csrf": csrf, "prefix": prefix})
    client.post(f"/admin/users/{rep}/disable")  # no CSRF token: refused, nothing written
    rows = _rows(engine)
    assert [r["action"] for r in rows] == [
        "user.disable",
        "user.enable",
        "apikey.create",
        "org.update",
        "team.create",
        "team.member_add",
        "team.member_remove",
        "team.manager",
        "apikey.revoke",
    ]
    assert {r["actor"] for r in rows} == {f"user:{ids['admin']}"}


def test_audit_endpoint(
    client: TestClient, engine: Engine, ids: dict[str, uuid.UUID], keys: dict[str, str]
) -> None:
    with engine.begin() as conn:
        for n in range(5):
            audit.record(conn, "user.optin", actor="cli", subject=f"u{n}", details={"n": n})
        audit.record(conn, "retention.run", actor="system", details={"deleted": 3})
    admin = as_(keys["admin"])
    assert client.get("/api/v1/audit").status_code == 401
    forbidden = client.get("/api/v1/audit", headers=as_(keys["rep"]))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"]
    everything = client.get("/api/v1/audit", headers=admin).json()
    assert [r["action"] for r in everything["value"]][:2] == ["retention.run", "user.optin"]
    assert everything["next"] is None and len(everything["value"]) == 6
    first = client.get("/api/v1/audit?action=user.optin&limit=2", headers=admin).json()
    assert [r["subject"] for r in first["value"]] == ["u4", "u3"] and first["next"]
    second = client.get(
        f"/api/v1/audit?action=user.optin&limit=2&before={first['next']}", headers=admin
    ).json()
    third = client.get(
        f"/api/v1/audit?action=user.optin&limit=2&before={second['next']}", headers=admin
    ).json()
    assert [r["subject"] for r in second["value"] + third["value"]] == ["u2", "u1", "u0"]
    assert third["next"] is None
    system = client.get("/api/v1/audit?actor=system", headers=admin).json()["value"]
    assert system[0]["details"] == {"deleted": 3} and len(system) == 1
    since = client.get("/api/v1/audit?since=2999-01-01T00:00:00Z", headers=admin).json()
    assert since["value"] == []
    for bad in (
        "limit=0",
        "limit=1001",
        "limit=many",
        "since=yesterday",
        "until=2026-13-01",
        "actor=root",
        "action=DROP%20TABLE",
        "before=-1",
        "since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
    ):
        answer = client.get(f"/api/v1/audit?{bad}", headers=admin)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["message"], bad
