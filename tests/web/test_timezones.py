"""`usersettings.timezonecode` takes effect for relative dates as `timezonename` does
(issue 11, item 13), on SQLite and PostgreSQL; an unknown code or name is a 400."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.schema import usersettings
from mailsignal.store.timezones import ZONES, code_of, zone_of
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

BASE = "/api/data/v9.2"
MINUS_12 = 0  # Dateline Standard Time: UTC-12 all year, no summer time to dodge


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    """A rep with two emails a minute either side of midnight in UTC-12: both on the
    same UTC day, so only the rep's zone can put them on different days."""
    local = datetime.now(UTC).astimezone(ZoneInfo(zone_of(MINUS_12) or ""))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        rep = add_rep(conn)
        key = users.create_api_key(conn, rep)
        after = track_html(
            conn, signer, ["dana@contoso.test"], sent_at=midnight + timedelta(minutes=1)
        )
        before = track_html(
            conn, signer, ["dana@contoso.test"], sent_at=midnight - timedelta(minutes=1)
        )
    return {"rep": rep, "key": key, "today": after.activity_id, "yesterday": before.activity_id}


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.journal.close()


def _headers(world: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {world['key']}", "content-type": "application/json"}


def _patch(client: TestClient, world: dict[str, Any], raw: str) -> Any:
    target = f"{BASE}/usersettingscollection({world['rep']})"
    return client.patch(target, content=raw, headers=_headers(world))


def _on(client: TestClient, world: dict[str, Any], operator: str) -> set[uuid.UUID]:
    fetch = (
        '<fetch><entity name="email"><attribute name="activityid"/><filter><condition '
        f'attribute="senton" operator="{operator}"/></filter></entity></fetch>'
    )
    r = client.get(f"{BASE}/emails", params={"fetchXml": fetch}, headers=_headers(world))
    assert r.status_code == 200, r.text
    return {uuid.UUID(row["activityid"]) for row in r.json()["value"]}


def _zone(engine: Engine, world: dict[str, Any]) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(
            select(usersettings.c.timezonecode, usersettings.c.timezonename).where(
                usersettings.c.systemuserid == world["rep"]
            )
        ).one()
    return int(row.timezonecode), str(row.timezonename)


def test_a_code_moves_today_and_yesterday(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    both = {world["today"], world["yesterday"]}
    in_utc = (_on(client, world, "today"), _on(client, world, "yesterday"))
    assert both in in_utc  # one UTC day holds both
    assert _patch(client, world, f'{{"timezonecode": {MINUS_12}}}').status_code == 204
    assert _zone(engine, world) == (MINUS_12, "Etc/GMT+12")
    assert _on(client, world, "today") == {world["today"]}
    assert _on(client, world, "yesterday") == {world["yesterday"]}
    # Back to UTC by name: the code follows, and so do the rows.
    assert _patch(client, world, '{"timezonename": "UTC"}').status_code == 204
    assert _zone(engine, world) == (92, "UTC")
    assert (_on(client, world, "today"), _on(client, world, "yesterday")) == in_utc


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"timezonecode": 9999}', "The value 9999 of 'timezonecode'"),
        ('{"timezonecode": -1}', "The value -1 of 'timezonecode'"),
        ('{"timezonename": "Mars/Olympus"}', "'Mars/Olympus' is not a time zone"),
        ('{"timezonecode": 110, "timezonename": "Asia/Tokyo"}', "timezonecode 110 is"),
    ],
)
def test_an_unknown_zone_is_a_400_and_nothing_changes(
    client: TestClient, world: dict[str, Any], engine: Engine, raw: str, message: str
) -> None:
    before = _zone(engine, world)
    r = _patch(client, world, raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "0x80044331"
    assert message in r.json()["error"]["message"]
    assert _zone(engine, world) == before


def test_a_name_and_its_code_together_are_accepted(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    r = _patch(client, world, '{"timezonecode": 110, "timezonename": "Europe/Berlin"}')
    assert r.status_code == 204, r.text
    assert _zone(engine, world) == (110, "Europe/Berlin")


def test_the_table_names_real_zones_both_ways() -> None:
    for code, name in ZONES.items():
        ZoneInfo(name)
        assert code_of(name) == code
    assert (zone_of(85), zone_of(92), zone_of(110)) == ("Europe/London", "UTC", "Europe/Berlin")
