"""The Dataverse Web API subset: published queries and flows, sent as a stock client sends
them, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from conftest import LiveServer, cli, need
from helpers import add_rep, track_html
from mailsignal.settings import Settings, load_keyring
from mailsignal.store import parties, users
from mailsignal.store.schema import email, usersettings
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

ENGAGED_THIS_WEEK = (
    '<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="false">'
    '<entity name="email"><attribute name="subject"/><attribute name="regardingobjectid"/>'
    '<attribute name="opencount"/><attribute name="lastopenedtime"/>'
    '<order attribute="lastopenedtime" descending="true"/><filter type="and">'
    '<condition attribute="directioncode" operator="eq" value="1"/>'
    '<condition attribute="opencount" operator="gt" value="1"/>'
    '<condition attribute="opencount" operator="lt" value="20"/>'
    '<condition attribute="lastopenedtime" operator="last-x-days" value="7"/>'
    "</filter></entity></fetch>"
)
BASE = "/api/data/v9.2"


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    signer = Signer(*load_keyring(settings.secret_file))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        rep = add_rep(conn)
        other = add_rep(conn, "other@northwind.test")
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        parties.add(conn, "contact", "Dana Fischer", "dana@contoso.test")
        ids = {}
        for name, sender_owner, opens, when in (
            ("hot", rep, 5, now - timedelta(days=1)),
            ("noisy", rep, 40, now - timedelta(days=1)),
            ("old", rep, 5, now - timedelta(days=30)),
            ("theirs", other, 5, now),
        ):
            result = track_html(conn, signer, ["dana@contoso.test"])
            conn.execute(
                update(email)
                .where(email.c.activityid == result.activity_id)
                .values(subject=name, opencount=opens, lastopenedtime=when, ownerid=sender_owner)
            )
            ids[name] = result.activity_id
        keys = {
            who: users.create_api_key(conn, uid)
            for who, uid in (("rep", rep), ("other", other), ("admin", admin))
        }
    return {"ids": ids, "keys": keys, "rep": rep, "other": other}


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c


def _h(world: dict[str, Any], who: str = "rep", **extra: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {world['keys'][who]}",
        "accept": "application/json",
        "odata-version": "4.0",
        "odata-maxversion": "4.0",
        **extra,
    }


def test_engaged_this_week_verbatim(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get(f"{BASE}/emails", params={"fetchXml": ENGAGED_THIS_WEEK}, headers=_h(world))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith("/api/data/v9.2/$metadata#emails")
    assert [row["subject"] for row in body["value"]] == ["hot"]  # not noisy, old or theirs
    row = body["value"][0]
    assert row["opencount"] == 5 and row["lastopenedtime"].endswith("Z")
    assert "_regardingobjectid_value" in row and "regardingobjectid" not in row
    assert not any(v is None for v in row.values())


def test_annotations_only_when_preferred(client: TestClient, world: dict[str, Any]) -> None:
    prefer = 'odata.include-annotations="*"'
    r = client.get(
        f"{BASE}/emails", params={"fetchXml": ENGAGED_THIS_WEEK}, headers=_h(world, prefer=prefer)
    )
    row = r.json()["value"][0]
    assert r.headers["preference-applied"] == prefer
    assert row["opencount@OData.Community.Display.V1.FormattedValue"] == "5"
    assert row["_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    assert (
        row["_regardingobjectid_value@OData.Community.Display.V1.FormattedValue"] == "Dana Fischer"
    )
    assert r.json()["@Microsoft.Dynamics.CRM.morerecords"] is False


def test_admin_sees_all_rep_sees_own(client: TestClient, world: dict[str, Any]) -> None:
    xml = '<fetch><entity name="email"><attribute name="subject"/></entity></fetch>'
    mine = {
        r["subject"]
        for r in client.get(f"{BASE}/emails", params={"fetchXml": xml}, headers=_h(world)).json()[
            "value"
        ]
    }
    everyone = {
        r["subject"]
        for r in client.get(
            f"{BASE}/emails", params={"fetchXml": xml}, headers=_h(world, "admin")
        ).json()["value"]
    }
    assert mine == {"hot", "noisy", "old"} and everyone == mine | {"theirs"}
    theirs = world["ids"]["theirs"]
    r = client.get(f"{BASE}/emails({theirs})", headers=_h(world))
    assert r.status_code == 404 and r.json()["error"]["code"] == "0x80040217"


def test_retrieve_by_id_with_select(client: TestClient, world: dict[str, Any]) -> None:
    hot = world["ids"]["hot"]
    r = client.get(
        f"{BASE}/emails({hot})", params={"$select": "subject,opencount"}, headers=_h(world)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#emails/$entity")
    assert (body["subject"], body["opencount"], body["activityid"]) == ("hot", 5, str(hot))
    assert "sender" not in body and body["@odata.etag"].startswith('W/"')


def test_opt_in_flow_patch_verbatim(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(update(usersettings).values(emailengagementoptin=False))
    rep = world["rep"]
    r = client.patch(
        f"{BASE}/usersettingscollection({rep})",
        json={"allowemailcredentials": True},
        headers=_h(world, "admin", **{"content-type": "application/json"}),
    )
    assert r.status_code == 204, r.text
    assert r.headers["odata-entityid"].endswith(f"/usersettingscollection({rep})")
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(usersettings.c.emailengagementoptin).where(
                    usersettings.c.systemuserid == rep
                )
            ).scalar()
            is True
        )
    r = client.patch(
        f"{BASE}/usersettingscollection({rep})",
        json={"emailengagementoptin": False},
        headers=_h(world, "rep", prefer="return=representation"),
    )
    assert r.status_code == 200 and r.json()["emailengagementoptin"] is False
    r = client.patch(
        f"{BASE}/usersettingscollection({rep})",
        json={"allowemailcredentials": True},
        headers=_h(world, "other"),
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x80040220"


def test_patch_contact_do_not_track_and_preconditions(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    with engine.connect() as conn:
        party = parties.find(conn, "dana@contoso.test")
    assert party is not None
    url = f"{BASE}/contacts({party[1]})"
    etag = client.get(url, headers=_h(world)).json()["@odata.etag"]
    r = client.patch(url, json={"followemail": False}, headers=_h(world, **{"if-match": etag}))
    assert r.status_code == 204
    r = client.patch(url, json={"followemail": True}, headers=_h(world, **{"if-match": etag}))
    assert r.status_code == 412
    r = client.patch(url, json={"fullname": "X"}, headers=_h(world, **{"if-none-match": "*"}))
    assert r.status_code == 412
    missing = f"{BASE}/contacts({uuid.uuid4()})"
    r = client.patch(missing, json={"fullname": "New"}, headers=_h(world, **{"if-match": "*"}))
    assert r.status_code == 404 and "Does Not Exist" in r.json()["error"]["message"]
    assert client.patch(missing, json={"fullname": "New"}, headers=_h(world)).status_code == 204


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "needle"),
    [
        (
            "/usersettingscollections",
            {},
            404,
            "",
            "Resource not found for the segment 'usersettingscollections'.",
        ),
        ("/emails", {"fetchXml": "<fetch><entity name='email'>"}, 400, "0x80040201", ""),
        (
            "/emails",
            {"fetchXml": "<fetch><entity name='email'><attribute name='foo'/></entity></fetch>"},
            400,
            "0x80041103",
            "doesn't contain attribute with Name = 'foo'",
        ),
        ("/contacts", {"fetchXml": "<fetch><entity name='email'/></fetch>"}, 400, "0x80041128", ""),
        (
            "/emails",
            {"fetchXml": ENGAGED_THIS_WEEK, "utm_source": "x"},
            400,
            "0x0",
            "The query parameter utm_source is not supported",
        ),
        (
            "/emails",
            {
                "fetchXml": "<fetch><entity name='email'><filter><condition attribute="
                "'subject' operator='contains' value='x'/></filter></entity></fetch>"
            },
            400,
            "",
            "Unknown Condition Operator: contains",
        ),
        (
            "/emails",
            {
                "fetchXml": "<fetch><entity name='email'><filter><condition attribute="
                "'subject' operator='eq' value=\"x' OR 1=1 --\"/></filter></entity></fetch>"
            },
            200,
            None,
            "",
        ),
    ],
)
def test_errors_are_dataverse_shaped(
    client: TestClient,
    world: dict[str, Any],
    path: str,
    params: dict[str, str],
    status: int,
    code: str | None,
    needle: str,
) -> None:
    r = client.get(f"{BASE}{path}", params=params, headers=_h(world))
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["value"] == []  # the injection attempt is only a string
        return
    error = r.json()["error"]
    if code:
        assert error["code"] == code
    assert needle in error["message"]


@pytest.mark.parametrize(
    "key",
    [
        "------------------------------------",  # 36 characters of the old route pattern
        "0-0000000000000000000000000000000-00",  # 32 hex digits, dashes out of place
        "{00000000-0000-0000-0000-000000000000}",
        "not-a-guid",
        "",
    ],
)
def test_a_key_that_is_not_a_guid_is_a_syntax_error(
    client: TestClient, world: dict[str, Any], key: str
) -> None:
    """Dataverse answers 400 0x80060888 to any key that is not a GUID (issue #10: it was
    a 500 when the text matched the route's pattern)."""
    for method in ("GET", "PATCH"):
        r = client.request(
            method, f"{BASE}/contacts({key})", json={"fullname": "x"}, headers=_h(world)
        )
        assert r.status_code == 400, (method, r.text)
        error = r.json()["error"]
        assert (error["code"], error["message"]) == (
            "0x80060888",
            "Bad Request - Error in query syntax.",
        )
    r = client.get(f"{BASE}/nosuchset({key})", headers=_h(world))
    assert r.status_code == 404  # an unknown entity set is still named as such


def test_an_unknown_stored_time_zone_does_not_break_queries(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    """A zone stored before names were checked (or by hand) counts as UTC."""
    with engine.begin() as conn:
        conn.execute(
            update(usersettings)
            .where(usersettings.c.systemuserid == world["rep"])
            .values(timezonename="Mars/Olympus_Mons")
        )
    headers = _h(world, prefer='odata.include-annotations="*"')
    r = client.get(f"{BASE}/emails", params={"fetchXml": ENGAGED_THIS_WEEK}, headers=headers)
    assert r.status_code == 200, r.text
    [row] = r.json()["value"]
    when = datetime.fromisoformat(row["lastopenedtime"].replace("Z", "+00:00"))
    assert row["lastopenedtime@OData.Community.Display.V1.FormattedValue"] == when.strftime(
        "%m/%d/%Y %I:%M %p"
    )
    r = client.get(f"{BASE}/emails({world['ids']['hot']})", headers=_h(world))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"nosuchcolumn": 1}, "0x80041103"),
        ({"modifiedon": "2026-01-01"}, "0x80041100"),
        ({"emailengagementoptin": "yes"}, "0x80040203"),
    ],
)
def test_patch_refusals(
    client: TestClient, world: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    r = client.patch(f"{BASE}/usersettingscollection({world['rep']})", json=body, headers=_h(world))
    assert r.status_code == 400 and r.json()["error"]["code"] == code


def test_patch_organization_needs_admin(client: TestClient, world: dict[str, Any]) -> None:
    who = client.get(f"{BASE}/WhoAmI", headers=_h(world)).json()
    assert who["UserId"] == str(world["rep"])
    org = who["OrganizationId"]
    body = {"isemailmonitoringallowed": False}
    assert (
        client.patch(f"{BASE}/organizations({org})", json=body, headers=_h(world)).status_code
        == 403
    )
    assert (
        client.patch(
            f"{BASE}/organizations({org})", json=body, headers=_h(world, "admin")
        ).status_code
        == 204
    )
    assert client.get(f"{BASE}/WhoAmI").status_code == 401


def test_curl_sends_the_published_requests(tmp_path: Any) -> None:
    need(shutil.which("curl") is not None, "curl", "apt-get install curl")
    server = LiveServer(tmp_path / "data", ingest=False)
    cli(server.env, "init")
    key = (
        cli(server.env, "users", "add", "admin@northwind.test", "--role", "admin", "--key")
        .stdout.strip()
        .rsplit(" ", 1)[-1]
    )
    user_id = cli(server.env, "users", "add", "new.rep@northwind.test").stdout.split("(")[1][:36]
    server.start()
    try:
        auth = [
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "OData-MaxVersion: 4.0",
            "-H",
            "OData-Version: 4.0",
            "-H",
            "Accept: application/json",
        ]
        patch = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PATCH",
                *auth,
                "-H",
                "Content-Type: application/json",
                "-d",
                '{"allowemailcredentials": true}',
                f"{server.url}/api/data/v9.2/usersettingscollection({user_id})",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert patch.stdout == "204"
        get = subprocess.run(
            [
                "curl",
                "-s",
                "-G",
                *auth,
                "--data-urlencode",
                f"fetchXml={ENGAGED_THIS_WEEK}",
                f"{server.url}/api/data/v9.2/emails",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"value":[]' in get.stdout.replace(" ", "")
        listed = cli(server.env, "users", "list").stdout
        assert any("new.rep" in line and "yes" in line for line in listed.splitlines())
        assert (
            httpx.get(
                f"{server.url}/api/data/v9.2/WhoAmI", headers={"authorization": f"Bearer {key}"}
            ).status_code
            == 200
        )
    finally:
        server.kill(15)
