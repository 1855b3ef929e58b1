"""Contacts, leads and accounts over REST (`/api/v1/contacts`...) and through the Web
API's PATCH, on SQLite and PostgreSQL (#11 items 7-9): CRUD under the Web API's access
rules, CSV import, mail already sent linked by either path, `@odata.bind` honoured or
refused with a Dataverse 400, never dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from conftest import FIXTURES
from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.schema import contact, emaildelivery
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

WEBAPI = "/api/data/v9.2"


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    keys, current = load_keyring(settings.secret_file)
    with engine.begin() as conn:
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        account = parties.add(conn, "account", "Contoso", None)
        sent = track_html(conn, Signer(keys, current), ["dana@contoso.test", "erin@contoso.test"])
        return {
            "rep": {"authorization": f"Bearer {users.create_api_key(conn, rep)}"},
            "admin": {"authorization": f"Bearer {users.create_api_key(conn, admin)}"},
            "account": account,
            "sent": sent,
        }


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _holder(engine: Engine, address: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(
                emaildelivery.c.recipientobjecttypecode, emaildelivery.c.recipientobjectid
            ).where(emaildelivery.c.emailaddress == address)
        ).one()


def test_rest_crud(client: TestClient, world: dict[str, Any], engine: Engine) -> None:
    rep, admin = world["rep"], world["admin"]
    r = client.post(
        "/api/v1/contacts",
        json={
            "fullname": "Dana",
            "emailaddress1": "Dana@Contoso.test",
            "parentcustomerid": str(world["account"]),
        },
        headers=rep,
    )
    assert r.status_code == 201, r.text
    dana = r.json()
    assert dana["emailaddress1"] == "dana@contoso.test" and dana["emailsfollowedcount"] == 1
    assert _holder(engine, "dana@contoso.test") == ("contact", uuid.UUID(dana["contactid"]))
    url = f"/api/v1/contacts/{dana['contactid']}"
    assert client.get(url, headers=rep).json()["fullname"] == "Dana"
    listed = client.get("/api/v1/contacts?search=DANA", headers=rep).json()["value"]
    assert [c["contactid"] for c in listed] == [dana["contactid"]]

    r = client.patch(url, json={"emailaddress1": "erin@contoso.test"}, headers=rep)
    assert r.status_code == 200, r.text
    assert _holder(engine, "dana@contoso.test") == (None, None)
    assert _holder(engine, "erin@contoso.test") == ("contact", uuid.UUID(dana["contactid"]))

    refused = [
        (client.post("/api/v1/leads", json={"parentcustomerid": None}, headers=rep), 400),
        (client.post("/api/v1/contacts", json=["x"], headers=rep), 400),
        (client.patch(url, json={"followemail": "yes"}, headers=rep), 400),
        (client.patch(url, json={"fullname": "x" * 201}, headers=rep), 400),
        (client.get(f"/api/v1/accounts/{uuid.uuid4()}", headers=rep), 404),
        (client.get("/api/v1/contacts?limit=0", headers=rep), 400),
        (client.delete(url, headers=rep), 403),
        (client.get("/api/v1/contacts"), 401),
    ]
    for r, status in refused:
        assert r.status_code == status, r.text
        assert {"code", "message"} <= set(r.json()["error"])

    r = client.delete(url, headers=admin)
    assert r.json() == {"contactid": dana["contactid"], "deliveries_kept": 1}
    assert _holder(engine, "erin@contoso.test") == (None, None)
    assert client.get(url, headers=rep).status_code == 404


def test_rest_import(client: TestClient, world: dict[str, Any], engine: Engine) -> None:
    body = (FIXTURES / "records" / "accounts.csv").read_bytes()
    r = client.post("/api/v1/accounts/import", content=body, headers=world["rep"])
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2 and r.json()["not_kept"] == ["telephone1", "websiteurl"]
    body = (FIXTURES / "records" / "contacts.csv").read_bytes()
    r = client.post("/api/v1/contacts/import", content=body, headers=world["rep"])
    summary = r.json()
    assert (summary["created"], summary["lines"], len(summary["errors"])) == (3, 5, 2)
    r = client.post("/api/v1/contacts/import", content=b"\xff\xfe", headers=world["rep"])
    assert r.status_code == 400


def test_webapi_upsert_links_mail_and_binds(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    rep = {**world["rep"], "content-type": "application/json"}
    dana = uuid.uuid4()
    bind = {"parentcustomerid_account@odata.bind": f"/accounts({world['account']})"}
    r = client.patch(
        f"{WEBAPI}/contacts({dana})",
        json={"fullname": "Dana", "emailaddress1": "DANA@contoso.test", **bind},
        headers=rep,
    )
    assert r.status_code == 204, r.text
    assert _holder(engine, "dana@contoso.test") == ("contact", dana)
    with engine.connect() as conn:
        row = conn.execute(select(contact).where(contact.c.contactid == dana)).mappings().one()
    assert row["parentcustomerid"] == world["account"] and row["emailsfollowedcount"] == 1
    # A full URL names the record too; null clears the lookup.
    full = {"parentcustomerid_account@odata.bind": f"http://x{WEBAPI}/accounts({world['account']})"}
    assert client.patch(f"{WEBAPI}/contacts({dana})", json=full, headers=rep).status_code == 204
    clear = {"parentcustomerid_account@odata.bind": None}
    assert client.patch(f"{WEBAPI}/contacts({dana})", json=clear, headers=rep).status_code == 204
    with engine.connect() as conn:
        parent = conn.execute(select(contact.c.parentcustomerid)).scalar_one()
    assert parent is None

    missing = uuid.uuid4()
    for body, status, text in [
        ({"parentcustomerid_contact@odata.bind": f"/contacts({dana})"}, 400, "is an account"),
        ({"ownerid@odata.bind": "/systemusers(x)"}, 400, "undeclared property 'ownerid'"),
        ({"parentcustomerid_account@odata.bind": f"/contacts({dana})"}, 400, "/accounts(<id>)"),
        ({"parentcustomerid_account@odata.bind": "/accounts(name='x')"}, 400, "not a Guid"),
        ({"parentcustomerid_account@odata.bind": f"/accounts({missing})"}, 404, "Does Not"),
    ]:
        r = client.patch(f"{WEBAPI}/contacts({dana})", json=body, headers=rep)
        assert r.status_code == status, r.text
        assert text in r.json()["error"]["message"], r.text
    r = client.patch(
        f"{WEBAPI}/accounts({world['account']})",
        json={"primarycontactid@odata.bind": f"/contacts({dana})"},
        headers=rep,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80060888"
