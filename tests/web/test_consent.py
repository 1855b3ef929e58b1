"""The recipient's consent page `/k/<token>` and the admin consent REST (issue 13), on
SQLite and PostgreSQL: GET and HEAD (and a scanner's burst of GETs) change nothing; the
button's POST records the consent once with the exact text shown; a forged, reused or
stop-tracking form is refused; a consent page's form does not stop tracking either.
REST: a rep gets 403, bad input 400 with a JSON error, the history lists every row."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from helpers import HTML, add_rep
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.model import TokenKind
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.schema import auditrecord, consentrecord, donottrack, stoptrackingnonce
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.consenttext import TEXT_ID, agreed_text

DANA = "dana@contoso.fr"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"tracking_basis": "consent"})


@pytest.fixture
def world(engine: Engine, strict: Settings) -> dict[str, Any]:
    signer = Signer(*load_keyring(strict.secret_file))
    with engine.begin() as conn:
        users.get_org(conn)
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        msg = outgoing.build_message("rep@northwind.test", [DANA], "Hi", HTML, None)
        msg["Content-Language"] = "fr"
        service = outgoing.Outgoing.from_settings(strict, signer)
        sent = service.track(conn, msg, sender="rep@northwind.test", recipients=[DANA])
        keys = {"admin": users.create_api_key(conn, admin), "rep": users.create_api_key(conn, rep)}
    copy = sent.copies[0]
    assert copy.decision.reasons == ("recipient.no_consent",)
    html = str(copy.message.get_body(("html",)).get_content())
    found = re.search(r"/k/[A-Za-z0-9_-]+\?l=(\w+)", html)
    assert found, html
    assert "Autoriser le suivi de mes e-mails" in html  # the line in the copy's language
    path = found[0].split("?")[0]
    return {"path": path, "signer": signer, "keys": keys, "delivery": copy.delivery_id}


@pytest.fixture
def client(strict: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(strict)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _state(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return (
            conn.execute(select(consentrecord)).all(),
            conn.execute(select(donottrack)).all(),
            conn.execute(select(stoptrackingnonce)).all(),
            conn.execute(select(func.count()).select_from(auditrecord)).scalar_one(),
        )


def _form(page: str) -> str:
    found = re.search(r'name="form" value="([^"]+)"', page)
    assert found, page
    return found[1]


def test_get_head_and_scanners_change_nothing(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    before = _state(engine)
    page = client.get(world["path"] + "?l=fr")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert "Autoriser" in page.text and "<form" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.head(world["path"]).status_code == 200
    for _ in range(20):
        assert client.get(world["path"], headers={"user-agent": "SafeLinks"}).is_success
    assert _state(engine) == before


def test_the_button_records_the_text_shown_once(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    form = _form(client.get(world["path"] + "?l=de").text)
    done = client.post(world["path"], data={"form": form, "l": "de"}, follow_redirects=False)
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "Tracking ist erlaubt" in after.text and "<form" not in after.text
    with engine.connect() as conn:
        row = conn.execute(select(consentrecord)).mappings().one()
        trail = conn.execute(select(auditrecord)).mappings().one()
    assert row["addresshash"] == world["signer"].address_hash(DANA)
    assert (row["source"], row["language"], row["textid"]) == ("link", "de", TEXT_ID)
    assert row["consenttext"] == agreed_text("de") and row["withdrawnon"] is None
    assert (trail["action"], trail["actor"]) == ("recipient.consent", "recipient")
    before = _state(engine)
    again = client.post(world["path"], data={"form": form})
    assert again.status_code == 409 and _state(engine) == before


def test_forged_and_cross_page_forms_are_refused(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    signer: Signer = world["signer"]
    delivery = world["delivery"]
    form = _form(client.get(world["path"]).text)
    stop_form = signer.sign_form(delivery, int(time.time()))  # the stop page's form
    before = _state(engine)
    for data in (
        {"form": form[:-2] + ("AA" if not form.endswith("AA") else "BB")},
        {"form": stop_form},
        {"form": signer.sign_form(delivery, int(time.time()) - 3 * 86400)},
        {},
    ):
        refused = client.post(world["path"], data=data)
        assert refused.status_code == 400, data
    # This page's form on the stop-tracking page (same copy) stops nothing either.
    stop_path = "/p/" + signer.sign(TokenKind.STOP, delivery)
    assert client.post(stop_path, data={"form": form}).status_code == 400
    forged = world["path"][:-2] + ("AA" if not world["path"].endswith("AA") else "BB")
    assert client.get(forged).status_code == 404
    assert _state(engine) == before


def test_admin_rest_records_and_lists_consent(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    admin = {"authorization": f"Bearer {world['keys']['admin']}"}
    rep = {"authorization": f"Bearer {world['keys']['rep']}"}
    url = "/api/v1/privacy/consent"
    body = {"address": "Dana@Contoso.FR", "text": "Yes, track my opens.", "text_id": "v3"}
    assert client.post(url, json=body, headers=rep).status_code == 403
    assert client.get(url, params={"address": DANA}, headers=rep).status_code == 403
    assert client.post(url, json=body).status_code == 401
    for bad, words in (
        ({**body, "address": "nope"}, "not an email address"),
        ({**body, "text": "  "}, "text"),
        ({**body, "source": "fax"}, "source"),
        ({**body, "given_at": "2026-01-01T00:00:00"}, "time zone"),
        ({**body, "given_at": "2999-01-01T00:00:00Z"}, "future"),
        ({**body, "extra": 1}, "extra"),
        ({"address": DANA}, "text"),
    ):
        refused = client.post(url, json=bad, headers=admin)
        assert refused.status_code == 400, (bad, refused.text)
        assert words in refused.json()["error"]["message"], refused.text
    added = client.post(url, json=body, headers=admin)
    assert added.status_code == 200, added.text
    assert added.json()["addresshash"] == world["signer"].address_hash(DANA)
    bad_query = client.get(url, params={"address": "nope"}, headers=admin)
    assert bad_query.status_code == 400 and "error" in bad_query.json()
    listed = client.get(url, params={"address": DANA}, headers=admin).json()["value"]
    assert [(r["source"], r["textid"], r["current"]) for r in listed] == [("api", "v3", True)]
    # Withdrawn by the stop-tracking REST: the row stays, closed.
    stopped = client.post("/api/v1/privacy/do-not-track", json={"address": DANA}, headers=admin)
    assert stopped.status_code == 200
    listed = client.get(url, params={"address": DANA}, headers=admin).json()["value"]
    assert [(r["current"], r["withdrawnsource"]) for r in listed] == [(False, "api")]


def test_every_language_has_the_line_and_the_page() -> None:
    from mailsignal.instrument.notice import CONSENT_LINES, LINES
    from mailsignal.web.consenttext import PAGE
    from mailsignal.web.stoptext import PAGE as STOP_PAGE

    assert set(CONSENT_LINES) == set(LINES) == set(PAGE) == set(STOP_PAGE)
    keys = {lang: set(words) for lang, words in PAGE.items()}
    assert all(k == keys["en"] for k in keys.values())
    assert all(agreed_text(lang).startswith(PAGE[lang]["title"]) for lang in PAGE)
