"""The recipient's stop-tracking page `/p/<token>` (issue 13) on SQLite and PostgreSQL:
GET and HEAD (and a scanner's burst of GETs) change nothing; the button's POST records
the choice once; a forged, foreign, expired or reused form token is refused with a page
and no change; the page speaks the copy's or the browser's language. And the admin REST
for do-not-track."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.schema import auditrecord, contact, donottrack, stoptrackingnonce
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

DANA = "dana@contoso.test"


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        users.get_org(conn)
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        parties.add(conn, "contact", "Dana", DANA)
        sent = track_html(conn, signer, [DANA, "lee@fabrikam.test"])
        keys = {
            "admin": users.create_api_key(conn, admin),
            "rep": users.create_api_key(conn, rep),
        }
    copies = {c.recipient: c for c in sent.copies}
    html = str(copies[DANA].message.get_body(("html",)).get_content())
    found = re.search(r"http://track\.test(/p/[A-Za-z0-9_-]+)\?l=(\w+)", html)
    assert found, "the tracked copy carries the stop-tracking link"
    return {"path": found[1], "lang": found[2], "copies": copies, "keys": keys, "signer": signer}


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _state(engine: Engine) -> tuple[Any, ...]:
    """Everything the page could change."""
    with engine.connect() as conn:
        return (
            conn.execute(select(donottrack)).all(),
            conn.execute(select(stoptrackingnonce)).all(),
            conn.execute(select(contact.c.followemail)).all(),
            conn.execute(select(func.count()).select_from(auditrecord)).scalar_one(),
        )


def _form(page: str) -> str:
    found = re.search(r'name="form" value="([^"]+)"', page)
    assert found, page
    return found[1]


def test_get_head_and_a_burst_of_gets_change_nothing(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    before = _state(engine)
    page = client.get(world["path"])
    assert page.status_code == 200
    assert "Stop tracking my email" in page.text and "<form" in page.text
    assert "does not read your email" in page.text
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "default-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert client.head(world["path"]).status_code == 200
    for _ in range(20):
        assert client.get(world["path"], headers={"user-agent": "SafeLinks scanner"}).is_success
    assert _state(engine) == before


def test_the_button_records_the_choice_once(
    client: TestClient, engine: Engine, world: dict[str, Any], settings: Settings
) -> None:
    form = _form(client.get(world["path"]).text)
    done = client.post(world["path"], data={"form": form}, follow_redirects=False)
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "Tracking is stopped" in after.text and "<form" not in after.text
    digests, nonces, follows, audits = _state(engine)
    assert [row[0] for row in digests] == [world["signer"].address_hash(DANA)]
    assert [row.source for row in digests] == ["link"]
    assert len(nonces) == 1 and follows == [(False,)] and audits == 1
    with engine.connect() as conn:
        trail = conn.execute(select(auditrecord)).mappings().one()
    assert (trail["action"], trail["actor"]) == ("recipient.optout", "recipient")
    assert DANA not in str(dict(trail))
    # The same form again (a reload, a replay): refused with a page, nothing more recorded.
    before = _state(engine)
    again = client.post(world["path"], data={"form": form})
    assert again.status_code == 409 and "already" in again.text
    assert _state(engine) == before


def test_forged_foreign_and_missing_form_tokens_are_refused(
    client: TestClient, engine: Engine, world: dict[str, Any], settings: Settings
) -> None:
    form = _form(client.get(world["path"]).text)
    signer: Signer = world["signer"]
    lee = world["copies"]["lee@fabrikam.test"].delivery_id
    other_key = Signer({1: b"\x07" * 32}, 1)
    dana = world["copies"][DANA].delivery_id
    bad_forms: list[dict[str, str]] = [
        {"form": form[:-2] + ("AA" if not form.endswith("AA") else "BB")},  # tampered
        {"form": signer.sign_form(lee, int(time.time()))},  # another copy's form
        {"form": other_key.sign_form(dana, int(time.time()))},  # another instance's key
        {"form": signer.sign_form(dana, int(time.time()) - 2 * 86400)},  # expired
        {},  # no form token at all
        {"form": "x" * 5000},
    ]
    before = _state(engine)
    for data in bad_forms:
        refused = client.post(world["path"], data=data)
        assert refused.status_code == 400, data
        assert "expired or is invalid" in refused.text
    forged_path = world["path"][:-2] + ("AA" if not world["path"].endswith("AA") else "BB")
    assert client.post(forged_path, data={"form": form}).status_code == 400
    assert client.get(forged_path).status_code == 404
    assert (
        client.post(
            world["path"], content=b"\xff\x00", headers={"content-type": "multipart/form-data"}
        ).status_code
        == 400
    )
    assert _state(engine) == before


@pytest.mark.parametrize(
    ("query", "accept", "expected", "words"),
    [
        ("", "", "en", "Stop tracking my email"),
        ("", "de-CH,de;q=0.9,en;q=0.5", "de", "Tracking meiner E-Mails beenden"),
        ("", "ja, es;q=0.8", "es", "Dejar de rastrear mis correos"),
        ("?l=fr", "de", "fr", "Ne plus suivre mes e-mails"),
        ("?l=xx", "", "en", "Stop tracking my email"),
    ],
)
def test_the_page_speaks_the_copy_or_browser_language(
    client: TestClient, world: dict[str, Any], query: str, accept: str, expected: str, words: str
) -> None:
    page = client.get(world["path"] + query, headers={"accept-language": accept})
    assert f'<html lang="{expected}">' in page.text and words in page.text


def test_the_privacy_notice_is_linked_when_set(
    engine: Engine, settings: Settings, world: dict[str, Any]
) -> None:
    for url, shown in (("https://northwind.test/privacy", True), ("javascript:alert(1)", False)):
        app = create_app(settings.model_copy(update={"privacy_notice_url": url}))
        with TestClient(app) as c:
            page = c.get(world["path"]).text
        app.journal.close()
        assert (f'href="{url}"' in page) is shown
        assert ("privacy notice" in page) is shown


def test_admin_rest_adds_and_removes_do_not_track(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    admin = {"authorization": f"Bearer {world['keys']['admin']}"}
    rep = {"authorization": f"Bearer {world['keys']['rep']}"}
    body = {"address": "Lee@Fabrikam.test"}
    assert client.post("/api/v1/privacy/do-not-track", json=body, headers=rep).status_code == 403
    assert client.post("/api/v1/privacy/do-not-track", json=body).status_code == 401
    added = client.post("/api/v1/privacy/do-not-track", json=body, headers=admin)
    assert added.status_code == 200, added.text
    assert added.json()["new"] is True and "lee" not in added.text.lower()
    bad = client.post("/api/v1/privacy/do-not-track", json={"address": "nope"}, headers=admin)
    assert bad.status_code == 400 and "not an email address" in bad.text
    assert client.post("/api/v1/privacy/do-not-track", json={}, headers=admin).status_code == 400
    removed = client.request("DELETE", "/api/v1/privacy/do-not-track", json=body, headers=admin)
    assert removed.json() == {"removed": True, "parties": 0}
    dropped = client.get("/api/v1/privacy/dropped-hits", headers=admin)
    assert dropped.status_code == 200 and dropped.json() == {"value": []}
    with engine.connect() as conn:
        actors = conn.execute(select(auditrecord.c.actor)).scalars().all()
    assert all(a.startswith("user:") for a in actors) and len(actors) == 2
    uuid.UUID(actors[0].removeprefix("user:"))


def test_web_api_patches_apply_to_mail_already_sent(
    client: TestClient, engine: Engine, settings: Settings, world: dict[str, Any]
) -> None:
    """Part 2 of issue 13 end to end: the pixel of a copy sent earlier, fetched through
    the real tracker after a Web API PATCH of followemail (and, for the other copy, of
    the org switch), is answered and journaled, but ingest stores nothing and counts it."""
    from mailsignal.enrich import Pipeline
    from mailsignal.pipeline.worker import Ingestor

    admin = {"authorization": f"Bearer {world['keys']['admin']}"}
    base = "/api/data/v9.2"
    with engine.connect() as conn:
        dana = parties.by_address(conn, "contact", DANA)
    pixels = {}
    for address, copy in world["copies"].items():
        html = str(copy.message.get_body(("html",)).get_content())
        found = re.search(r'src="http://track\.test(/o/[^"]+)"', html)
        assert found
        pixels[address] = found[1]
    patched = client.patch(f"{base}/contacts({dana})", json={"followemail": False}, headers=admin)
    assert patched.status_code == 204, patched.text
    ingestor = Ingestor(engine, settings, Pipeline.default())
    assert client.get(pixels[DANA]).headers["content-type"] == "image/gif"
    assert client.get(pixels["lee@fabrikam.test"]).status_code == 200
    assert ingestor.drain() == 1  # Lee's open only
    org = client.get(f"{base}/WhoAmI", headers=admin).json()["OrganizationId"]
    off = {"isemailmonitoringallowed": False}
    assert client.patch(f"{base}/organizations({org})", json=off, headers=admin).status_code == 204
    assert client.get(pixels["lee@fabrikam.test"]).status_code == 200
    assert ingestor.drain() == 0
    got = client.get("/api/v1/privacy/dropped-hits", headers=admin).json()["value"]
    assert {r["reason"]: r["hits"] for r in got} == {
        "recipient.do_not_track": 1,
        "org.monitoring_disabled": 1,
    }
