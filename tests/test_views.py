"""Saved views from the CLI, the REST API and the Web API (savedQuery), both backends."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from starlette.testclient import TestClient

from conftest import cli
from helpers import add_rep, track_html
from mailsignal import views
from mailsignal.errors import FetchXmlError, InputError
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.schema import email
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from runaway import RUNAWAY, seed


@pytest.fixture
def seeded(engine: Engine, settings: Settings) -> str:
    signer = Signer(*load_keyring(settings.secret_file))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        rep = add_rep(conn)
        for subject, raw, human in (("mpp only", 3, 0), ("read twice", 3, 2), ("noise", 45, 1)):
            tracked = track_html(conn, signer, ["dana@contoso.test"])
            conn.execute(
                update(email)
                .where(email.c.activityid == tracked.activity_id)
                .values(
                    subject=subject,
                    opencount=raw,
                    humanopencount=human,
                    lastopenedtime=now - timedelta(hours=2),
                    lasthumanopenedtime=(now - timedelta(hours=2)) if human else None,
                )
            )
        return users.create_api_key(conn, rep)


def test_shipped_views_tell_raw_from_human(engine: Engine, settings: Settings, seeded: str) -> None:
    from mailsignal.fetchxml import Caller

    caller = Caller(__import__("uuid").UUID(int=0), is_admin=True)
    with engine.connect() as conn:
        raw = views.run(conn, views.find(settings.data_dir, "engaged-this-week"), caller)
        human = views.run(
            conn, views.find(settings.data_dir, "Engaged This Week (human signals)"), caller
        )
        noise = views.run(conn, views.find(settings.data_dir, "scanner-noise-last-month"), caller)
    assert {r["subject"] for r in raw.rows} == {"mpp only", "read twice"}
    assert [r["subject"] for r in human.rows] == ["read twice"]
    assert [r["subject"] for r in noise.rows] == ["noise"]


def test_user_views_are_validated_and_stored(settings: Settings) -> None:
    xml = '<fetch><entity name="contact"><attribute name="fullname"/></entity></fetch>'
    view = views.add(settings.data_dir, "my-contacts", xml, name="My contacts")
    assert views.find(settings.data_dir, str(view.id)).name == "My contacts"
    with pytest.raises(InputError, match="exists"):
        views.add(settings.data_dir, "my-contacts", xml)
    with pytest.raises(InputError, match="shipped"):
        views.add(settings.data_dir, "engaged-this-week", xml)
    with pytest.raises(FetchXmlError):
        views.add(settings.data_dir, "broken", "<fetch><entity name='email'>")
    with pytest.raises(InputError, match="slug"):
        views.add(settings.data_dir, "Bad Slug!", xml)
    views.remove(settings.data_dir, "my-contacts")
    with pytest.raises(InputError, match="shipped"):
        views.remove(settings.data_dir, "engaged-this-week")


def test_rest_and_web_api(settings: Settings, seeded: str) -> None:
    app = create_app(settings)
    auth = {"authorization": f"Bearer {seeded}"}
    with TestClient(app) as client:
        listed = client.get("/api/v1/views", headers=auth).json()["value"]
        ids = {v["slug"]: v["savedqueryid"] for v in listed}
        rows = client.get("/api/v1/views/engaged-this-week-human/rows", headers=auth).json()
        assert [r["subject"] for r in rows["value"]] == ["read twice"]
        saved = client.get("/api/data/v9.2/savedqueries", headers=auth).json()["value"]
        assert {s["savedqueryid"] for s in saved} == set(ids.values())
        r = client.get(
            "/api/data/v9.2/emails", params={"savedQuery": ids["engaged-this-week"]}, headers=auth
        )
        assert r.status_code == 200 and len(r.json()["value"]) == 2
        r = client.get(
            "/api/data/v9.2/contacts", params={"savedQuery": ids["engaged-this-week"]}, headers=auth
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "0x80041128"
        r = client.get("/api/data/v9.2/emails", params={"savedQuery": "nope"}, headers=auth)
        assert r.status_code == 404
        assert client.get("/api/v1/views/nope/rows", headers=auth).status_code == 404


def test_cli_views(settings: Settings, seeded: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }
    assert "engaged-this-week" in cli(env, "views", "list").stdout
    rows = [
        json.loads(x)
        for x in cli(
            env, "views", "run", "engaged-this-week-human", "--format", "json"
        ).stdout.splitlines()
    ]
    assert [r["subject"] for r in rows] == ["read twice"]
    csv_out = cli(env, "views", "run", "engaged-this-week", "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("subject,regardingobjectid,opencount")
    assert (
        "read twice"
        in cli(env, "views", "run", "engaged-this-week-human", "--as", "rep@northwind.test").stdout
    )
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<fetch>\n  <entity name='email'>\n    <attribute name='nope'/>\n  </entity>\n</fetch>\n"
    )
    result = cli(env, "views", "add", "bad", str(bad), check=False)
    assert result.returncode == 2 and "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_views_run_stops_a_runaway_view(
    engine: Engine, settings: Settings, seeded: str, tmp_path: Path
) -> None:
    """`views run` is bounded like the API (issue #10): a clear message, exit status 2."""
    seed(engine, settings.secret_file)
    query = tmp_path / "runaway.xml"
    query.write_text(RUNAWAY)
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_QUERY_TIMEOUT_SECONDS": "1",
    }
    cli(env, "views", "add", "runaway", str(query))
    for who in ([], ["--as", "rep@northwind.test"]):
        result = cli(env, "views", "run", "runaway", *who, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: the query ran longer than 1 s and was stopped")
        assert "query_timeout_seconds" in result.stderr and "Traceback" not in result.stderr
