"""What a Web API PATCH may write (web/webapi/writes.py), on SQLite and PostgreSQL: values
a column cannot hold and time zones that do not exist are Dataverse-style 400s, and the
record stays as it was (#10). Each case was a 500 or, worse, a 204."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from helpers import add_rep
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.schema import contact, usersettings
from mailsignal.web.app import create_app

BASE = "/api/data/v9.2"


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    with engine.begin() as conn:
        rep = add_rep(conn)
        dana = parties.add(conn, "contact", "Dana", "dana@contoso.test")
        return {"rep": rep, "dana": dana, "key": users.create_api_key(conn, rep)}


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _patch(client: TestClient, world: dict[str, Any], target: str, raw: str) -> Any:
    headers = {"authorization": f"Bearer {world['key']}", "content-type": "application/json"}
    return client.patch(f"{BASE}/{target}", content=raw, headers=headers)


def _state(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [
            sorted(tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key)))
            for t in (contact, usersettings)
        ]


@pytest.mark.parametrize(
    ("target", "raw", "code", "message"),
    [
        (
            "usersettingscollection({rep})",
            '{"timezonecode": 2147483648}',
            "0x80040203",
            "Cannot convert the literal '2147483648' to the expected type 'Edm.Int32' "
            "for 'timezonecode'.",
        ),
        (
            "usersettingscollection({rep})",
            '{"timezonecode": -9223372036854775809}',
            "0x80040203",
            "Cannot convert the literal '-9223372036854775809' to the expected type "
            "'Edm.Int32' for 'timezonecode'.",
        ),
        (
            "usersettingscollection({rep})",
            '{"timezonename": "Mars/Olympus"}',
            "0x80044331",
            "A validation error occurred. 'Mars/Olympus' is not a time zone: timezonename "
            "takes an IANA name such as 'Europe/Berlin'.",
        ),
        (
            "usersettingscollection({rep})",
            '{"timezonename": "../../etc/passwd"}',
            "0x80044331",
            "A validation error occurred. '../../etc/passwd' is not a time zone: timezonename "
            "takes an IANA name such as 'Europe/Berlin'.",
        ),
        (
            "usersettingscollection({rep})",
            '{"timezonename": null}',
            "0x80044331",
            "A validation error occurred. A value must be provided for the 'timezonename' "
            "attribute of the 'usersettings' entity.",
        ),
        (
            "contacts({dana})",
            '{"fullname": "' + "x" * 201 + '"}',
            "0x80044331",
            "A validation error occurred. The length of the 'fullname' attribute of the "
            "'contact' entity exceeded the maximum allowed length of '200'.",
        ),
        (
            "contacts({new})",
            '{"emailaddress1": "dana\\u0000@contoso.test"}',
            "0x80044331",
            "A validation error occurred. The value of the 'emailaddress1' attribute of the "
            "'contact' entity holds a character that cannot be stored (NUL).",
        ),
        (
            "contacts({new})",
            '{"fullname": "Dana \\ud800"}',
            "0x80044331",
            "A validation error occurred. The value of the 'fullname' attribute of the "
            "'contact' entity holds a character that cannot be stored (a lone surrogate).",
        ),
        (
            "contacts({new})",
            '{"\\ud800": 1}',
            "0x80041103",
            "'contact' entity doesn't contain attribute with Name = '\\ud800' and "
            "NameMapping = 'Logical'.",
        ),
    ],
)
def test_values_a_column_cannot_hold_are_refused(
    client: TestClient,
    world: dict[str, Any],
    engine: Engine,
    target: str,
    raw: str,
    code: str,
    message: str,
) -> None:
    before = _state(engine)
    r = _patch(client, world, target.format(**world, new=uuid.uuid4()), raw)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": {"code": code, "message": message}}
    assert _state(engine) == before


def test_a_known_zone_is_written_and_queries_keep_running(
    client: TestClient, world: dict[str, Any]
) -> None:
    target = f"usersettingscollection({world['rep']})"
    assert _patch(client, world, target, '{"timezonename": "Asia/Kolkata"}').status_code == 204
    fetch = (
        '<fetch><entity name="email"><attribute name="subject"/><filter><condition '
        'attribute="senton" operator="today"/></filter></entity></fetch>'
    )
    headers = {"authorization": f"Bearer {world['key']}"}
    r = client.get(f"{BASE}/emails", params={"fetchXml": fetch}, headers=headers)
    assert r.status_code == 200, r.text


def test_a_lookup_to_a_missing_record_is_a_404_and_writes_nothing(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    """A parentcustomerid naming no account broke the foreign key: an IntegrityError."""
    before = _state(engine)
    missing = uuid.uuid4()
    r = _patch(client, world, f"contacts({uuid.uuid4()})", f'{{"parentcustomerid": "{missing}"}}')
    assert r.status_code == 404, r.text
    assert r.json()["error"] == {
        "code": "0x80040217",  # Dataverse's "does not exist", as for a missing record
        "message": f"account With Id = {missing} Does Not Exist",
    }
    assert _state(engine) == before


@pytest.mark.parametrize("raw", ['{"firstname": ' + "9" * 5000 + "}", "[" * 100_000])
def test_json_the_decoder_refuses_is_a_400(
    client: TestClient, world: dict[str, Any], engine: Engine, raw: str
) -> None:
    """An integer over Python's 4,300-digit limit (ValueError) or nesting deeper than the
    decoder's recursion (RecursionError) escaped the JSON error handling as a 500."""
    before = _state(engine)
    r = _patch(client, world, f"contacts({world['dana']})", raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "0x80048d19"  # Dataverse: the payload cannot be read
    assert _state(engine) == before
