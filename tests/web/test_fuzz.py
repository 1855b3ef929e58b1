"""Hostile bodies for the REST API and the Web API (Hypothesis, derandomized so CI is
reproducible), on SQLite and PostgreSQL: never a 5xx, a refusal in the API's own error
shape, and a refused request leaves every table as it was (#10).

Generated: JSON-ish values of every type in every field (text with lone surrogates and
control characters, integers past 64 bits, NaN, nested lists and objects), send times
from year 1 to 9999 with and without offsets, whole messages from the MIME strategies
(tests/instrument/mime_strategies.py), and PATCH bodies over the writable columns, their
aliases and names that are not columns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from helpers import HTML, add_rep
from instrument.mime_strategies import messages  # type: ignore[import-not-found]
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.schema import (
    account,
    contact,
    email,
    emaildelivery,
    lead,
    organization,
    trackedattachment,
    trackedlink,
    usersettings,
)
from mailsignal.web.app import create_app
from mailsignal.web.webapi.writes import ALIASES, WRITABLE

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the database is checked before and after each
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
BASE = "/api/data/v9.2"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"
SENT_TABLES = (email, emaildelivery, trackedlink, trackedattachment)
RECORD_TABLES = (contact, lead, account, usersettings, organization)

text = st.text(st.characters(exclude_categories=()), max_size=30)
long_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=190, max_size=400)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
)
addresses = st.one_of(
    st.sampled_from(["dana@contoso.test", "Lee@Fabrikam.test", "notrack@contoso.test"]),
    st.builds("{}@{}".format, text, text),
    text,
)
sent_times = st.one_of(
    st.builds(
        lambda when, offset: when.isoformat() + offset,
        st.datetimes(),
        st.sampled_from(["Z", "+00:00", "+05:00", "-05:00", "+23:59", "-23:59", ""]),
    ),
    values,
)
FIELDS = {
    "sender": st.one_of(addresses, values),
    "recipients": st.one_of(st.lists(addresses, max_size=3), values),
    "subject": st.one_of(text, values),
    "html": st.one_of(st.sampled_from(['<a href="HTTPS://Example.com/Up">x</a>']), text, values),
    "text": st.one_of(st.just("See https://example.com/p"), text, values),
    "mime": st.one_of(messages.map(lambda raw: raw.decode("utf-8", "surrogateescape")), text),
    "sent_at": sent_times,
    "message_id": st.one_of(text, values),
    "not_a_field": values,
}
REAL_MIME = [
    p.read_bytes().decode("utf-8", "surrogateescape") for p in sorted(FIXTURES.glob("*.eml"))
]


@st.composite
def rest_bodies(draw: Any) -> dict[str, Any]:
    """A body that would be accepted, with up to three fields made hostile or dropped: most
    examples get past the first check, so every later one is reached too."""
    body: dict[str, Any] = {"sender": "rep@northwind.test"}
    if draw(st.booleans()):
        body |= {"recipients": ["dana@contoso.test"], "subject": "Pricing", "html": HTML}
    else:
        body["mime"] = draw(st.sampled_from(REAL_MIME))
    for name in draw(st.lists(st.sampled_from([*FIELDS]), max_size=3, unique=True)):
        if draw(st.integers(0, 4)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(FIELDS[name])
    return body


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    with engine.begin() as conn:
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        parties.add(conn, "contact", "No Track", "notrack@contoso.test", follow=False)
        account_id = parties.add(conn, "account", "Contoso", None)
        contact_id = parties.add(conn, "contact", "Dana", "dana@contoso.test", parent=account_id)
        org = users.get_org(conn)["organizationid"]
        return {
            "rep": rep,
            "account": account_id,
            "contact": contact_id,
            "org": org,
            "keys": {
                "rep": users.create_api_key(conn, rep),
                "admin": users.create_api_key(conn, admin),
            },
        }


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as c:
        yield c
    app.journal.close()


def _counts(engine: Engine, tables: tuple[Any, ...]) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
        }


def _rows(engine: Engine, tables: tuple[Any, ...]) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr) for t in tables
        }


def _refusal(response: Any) -> dict[str, Any]:
    """The body of a 4xx, asserted to be the API's error shape."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert error["message"] or response.status_code == 404
    return dict(error)


@FUZZ
@given(body=rest_bodies())
def test_rest_emails_never_5xx_nor_half_stored(
    client: TestClient, world: dict[str, Any], engine: Engine, body: dict[str, Any]
) -> None:
    before = _counts(engine, SENT_TABLES)
    r = client.post(
        "/api/v1/emails",
        content=json.dumps(body),  # ASCII-escaped: lone surrogates travel as \ud800
        headers={
            "authorization": f"Bearer {world['keys']['admin']}",
            "content-type": "application/json",
        },
    )
    after = _counts(engine, SENT_TABLES)
    if r.status_code == 201:
        created = r.json()
        assert after["email"] == before["email"] + 1
        assert after["emaildelivery"] == before["emaildelivery"] + len(created["deliveries"])
    elif r.status_code == 200:  # its Message-ID again: that email, new recipients added
        assert r.json()["replayed"] and after["email"] == before["email"]
    else:
        _refusal(r)
        assert after == before, r.text


@st.composite
def patches(draw: Any, world: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A PATCH target, a body of mostly the set's writable columns, and a precondition."""
    entity_set, record = draw(
        st.sampled_from(
            [
                ("usersettingscollection", world["rep"]),
                ("contacts", world["contact"]),
                ("contacts", None),
                ("leads", None),
                ("accounts", world["account"]),
                ("organizations", world["org"]),
            ]
        )
    )
    record = record or draw(st.uuids())
    writable = sorted(WRITABLE[entity_set] | set(ALIASES.get(entity_set, {})))
    others = ["opencount", "@odata.etag", "fullname", "name", "timezonecode"]
    # Weighted towards what gets past the first checks, so the later ones are reached.
    hostile = st.one_of(
        values,
        long_text,
        st.integers(-(2**64), 2**64),
        st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus", "", "../../etc/passwd"]),
        st.sampled_from([str(world["account"]), str(uuid.UUID(int=7)), "not-a-guid"]),
    )
    body: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 2))):
        pick = draw(st.integers(0, 9))
        name = draw(st.sampled_from(writable) if pick < 8 else st.sampled_from(others) | text)
        pick = draw(st.integers(0, 9))
        body[name] = draw(
            st.booleans() | st.integers(-(2**31), 2**31) | text if pick < 5 else hostile
        )
    headers = draw(st.sampled_from([{}, {}, {"if-match": "*"}, {"if-none-match": "*"}]))
    return f"{entity_set}({record})", body, headers


@FUZZ
@given(data=st.data())
def test_webapi_patch_never_5xx_nor_half_written(
    client: TestClient, world: dict[str, Any], engine: Engine, data: Any
) -> None:
    target, body, extra = data.draw(patches(world))
    who = data.draw(st.sampled_from(["rep", "admin"]))
    auth = {"authorization": f"Bearer {world['keys'][who]}"}
    before = _rows(engine, RECORD_TABLES)
    r = client.patch(
        f"{BASE}/{target}",
        content=json.dumps(body),
        headers={**auth, "content-type": "application/json", **extra},
    )
    if r.status_code in (200, 204):
        # Whatever was written, the rep's own queries (their time zone) still run.
        fetch = '<fetch><entity name="email"><attribute name="subject"/></entity></fetch>'
        got = client.get(f"{BASE}/emails", params={"fetchXml": fetch}, headers=auth)
        assert got.status_code == 200, got.text
    else:
        _refusal(r)
        assert _rows(engine, RECORD_TABLES) == before, r.text
