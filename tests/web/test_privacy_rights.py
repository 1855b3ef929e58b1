"""`GET /api/v1/privacy/export` and `POST /api/v1/privacy/erase` (issue 13) on SQLite and
PostgreSQL: an admin's key gets the export document and erases, a rep gets 403, no key
401, an address that is not one 400 in JSON; both are audited with the admin as actor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import audit, parties, users
from mailsignal.store.schema import contact, emaildelivery
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

DANA, LEE = "dana@contoso.test", "lee@fabrikam.test"


@pytest.fixture
def keys(engine: Engine, settings: Settings) -> dict[str, str]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        parties.add(conn, "contact", "Dana Whitfield", DANA)
        track_html(conn, signer, [DANA, LEE], sent_at=datetime.now(UTC) - timedelta(hours=1))
        return {
            "rep": users.create_api_key(conn, rep),
            "admin": users.create_api_key(conn, admin),
            "admin_id": str(admin),
        }


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _as(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_export_and_erase_for_admins_only(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    admin, rep = _as(keys["admin"]), _as(keys["rep"])
    url = "/api/v1/privacy/export"
    assert client.get(url, params={"address": DANA}, headers=rep).status_code == 403
    assert client.get(url, params={"address": DANA}).status_code == 401
    bad = client.get(url, params={"address": "not an address"}, headers=admin)
    assert bad.status_code == 400 and "not an email address" in bad.json()["error"]["message"]
    got = client.get(url, params={"address": "Dana@Contoso.test"}, headers=admin)
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    doc = got.json()
    assert doc["address"] == DANA and [p["fullname"] for p in doc["parties"]["contact"]] == [
        "Dana Whitfield"
    ]
    assert [d["emailaddress"] for d in doc["deliveries"]] == [DANA]
    posted = client.post(url, json={"address": DANA}, headers=admin)
    assert posted.status_code == 200 and posted.json()["deliveries"] == doc["deliveries"]
    assert client.post(url, json={"address": DANA}, headers=rep).status_code == 403

    erase = "/api/v1/privacy/erase"
    assert client.post(erase, json={"address": DANA}, headers=rep).status_code == 403
    assert client.post(erase, json={"address": "x"}, headers=admin).status_code == 400
    assert client.post(erase, json={"addr": DANA}, headers=admin).status_code == 400
    assert client.get(url, headers=admin).status_code == 400  # no address
    done = client.post(erase, json={"address": DANA}, headers=admin)
    assert done.status_code == 200
    body = done.json()
    assert body["counts"]["deliveries"] == 1 and body["counts"]["contacts"] == 1
    assert body["counts"]["vacuumed"] == (engine.dialect.name == "sqlite")
    with engine.connect() as conn:
        left = conn.execute(select(emaildelivery.c.emailaddress)).scalars().all()
        contacts = conn.execute(select(func.count()).select_from(contact)).scalar_one()
        rows = audit.search(conn, audit.Filter(action="privacy.*"))
    assert left == [LEE] and contacts == 0
    actor = audit.user_actor(uuid.UUID(keys["admin_id"]))
    assert [(r["action"], r["actor"], r["subject"]) for r in rows] == [
        ("privacy.erase", actor, body["addresshash"]),
        ("privacy.export", actor, body["addresshash"]),
        ("privacy.export", actor, body["addresshash"]),
    ]
