"""The Dataverse Web API subset: published queries and flows, sent as a stock client sends
them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from conftest import LiveServer, cli, need
from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
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


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$filter": "subject eq 'hot'"}, "The query parameter $filter is not supported"),
        ({"$top": "1"}, "The query parameter $top is not supported"),
        ([("$select", "subject"), ("$select", "opencount")], "specified more than once"),
    ],
)
def test_retrieve_by_id_refuses_the_options_it_does_not_apply(
    client: TestClient, world: dict[str, Any], params: Any, message: str
) -> None:
    """By id, `$filter` and the rest were ignored with a 200 (#11): refused instead
    (`$expand` is applied: test_webapi_odata.test_expand_on_a_single_record)."""
    hot = world["ids"]["hot"]
    r = client.get(f"{BASE}/emails({hot})", params=params, headers=_h(world))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "0x80060888"
    assert message in r.json()["error"]["message"]


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
            "0x80060888",
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
            "0x80060888",
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


ALL_MINE = (
    '<fetch><entity name="email"><attribute name="subject"/>'
    '<order attribute="subject"/></entity></fetch>'
)


@pytest.mark.parametrize(
    "annotations",
    [
        "Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords",
        "Microsoft.Dynamics.CRM.*",
        "*",
    ],
)
def test_paging_as_the_python_sdk_does(
    client: TestClient, world: dict[str, Any], annotations: str
) -> None:
    """Every name of a quoted Prefer list counts, and the cookie round-trips the way
    powerplatform-dataverse-client 1.1's FetchXmlQuery sends it back."""
    prefer = f'odata.include-annotations="{annotations}"'
    xml, seen = ALL_MINE.replace("<fetch>", '<fetch count="2">'), []
    for _ in range(5):
        r = client.get(f"{BASE}/emails", params={"fetchXml": xml}, headers=_h(world, prefer=prefer))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [row["subject"] for row in body["value"]]
        if not body["@Microsoft.Dynamics.CRM.morerecords"]:
            break
        outer = ET.fromstring(body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"])  # noqa: S314
        assert outer.get("istracking") == "False"
        fetch = ET.fromstring(xml)  # noqa: S314 - the test's own query
        fetch.set("paging-cookie", unquote(unquote(outer.get("pagingcookie", ""))))
        fetch.set("page", outer.get("pagenumber", ""))
        xml = ET.tostring(fetch, encoding="unicode")
    assert seen == ["hot", "noisy", "old"]


def test_every_row_has_an_etag_and_maxpagesize_a_next_link(
    client: TestClient, world: dict[str, Any]
) -> None:
    r = client.get(
        f"{BASE}/emails",
        params={"fetchXml": ALL_MINE},
        headers=_h(world, prefer="odata.maxpagesize=2"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["preference-applied"] == "odata.maxpagesize=2"
    assert [row["subject"] for row in body["value"]] == ["hot", "noisy"]
    assert all(row["@odata.etag"].startswith('W/"') for row in body["value"])
    assert not any("modifiedon" in row for row in body["value"])  # read, not selected
    following = client.get(body["@odata.nextLink"], headers=_h(world, prefer="odata.maxpagesize=2"))
    rest = following.json()
    assert [row["subject"] for row in rest["value"]] == ["old"] and "@odata.nextLink" not in rest


def test_who_am_i_with_parentheses(client: TestClient, world: dict[str, Any]) -> None:
    plain = client.get(f"{BASE}/WhoAmI", headers=_h(world)).json()
    called = client.get(f"{BASE}/WhoAmI()", headers=_h(world)).json()
    assert plain == called and called["UserId"] == str(world["rep"])


def test_routes_of_more_than_one_segment(client: TestClient, world: dict[str, Any]) -> None:
    hot = world["ids"]["hot"]
    count = client.get(f"{BASE}/emails/$count", headers=_h(world))
    assert (count.status_code, count.text) == (200, "3")  # the rep's own three
    admin = client.get(f"{BASE}/emails/$count", headers=_h(world, "admin"))
    assert admin.text == "4"
    subject = client.get(f"{BASE}/emails({hot})/subject", headers=_h(world))
    assert subject.status_code == 200, subject.text
    assert subject.json()["value"] == "hot"
    assert subject.json()["@odata.context"].endswith(f"$metadata#emails({hot})/subject")
    lookup = client.get(f"{BASE}/emails({hot})/_regardingobjectid_value", headers=_h(world))
    assert uuid.UUID(lookup.json()["value"])
    theirs = client.get(f"{BASE}/emails({world['ids']['theirs']})/subject", headers=_h(world))
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "0x80040217")
    for path, status in (
        (f"/emails({hot})/nope", 400),
        ("/emails/a/b", 404),
        (f"/emails({hot})/subject/$value", 404),
        ("/nosuchset/$count", 404),
    ):
        r = client.get(f"{BASE}{path}", headers=_h(world))
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"]["code"] == "0x80060888", path


def test_usersettings_key_and_allowemailcredentials(
    client: TestClient, world: dict[str, Any]
) -> None:
    r = client.get(
        f"{BASE}/usersettingscollection({world['rep']})",
        params={"$select": "allowemailcredentials,timezonename"},
        headers=_h(world),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["systemuserid"] == str(world["rep"])
    assert body["allowemailcredentials"] is True and "emailengagementoptin" not in body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/emails", 405),
        ("DELETE", "/WhoAmI", 405),
        ("PATCH", "/emails", 405),
        ("GET", "/", 404),
    ],
)
def test_no_error_without_a_dataverse_code(
    client: TestClient, world: dict[str, Any], method: str, path: str, status: int
) -> None:
    r = client.request(method, f"{BASE}{path}", headers=_h(world), json={})
    assert r.status_code == status, r.text
    code = r.json()["error"]["code"]
    assert code.startswith("0x8") and code != "0x0", code


def test_malformed_fetchxml_is_invalid_xml(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get(
        f"{BASE}/emails", params={"fetchXml": "<fetch><entity name='email'>"}, headers=_h(world)
    )
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["message"]) == (400, "0x80040201", "Invalid XML.")
    assert error["innererror"]["message"]  # what exactly is wrong, for a person
    r = client.get(f"{BASE}/emails", params={"fetchXml": ALL_MINE}, headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "0x80072560"


def _batch_part(boundary: str, method: str, url: str, body: str | None = None) -> str:
    """One part as powerplatform-dataverse-client 1.1 serialises it (absolute URL, CRLF)."""
    inner = [f"{method} {url} HTTP/1.1"]
    if body is not None:
        inner.append("Content-Type: application/json; type=entry")
    inner.append("")
    if body is not None:
        inner.append(body)
    head = (
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    )
    return head + "\r\n" + "\r\n".join(inner) + "\r\n"


def _batch_answers(r: httpx.Response) -> list[tuple[int, str]]:
    """(status, body) of each answer, change set answers flattened."""
    import re

    found = re.findall(r"HTTP/1\.1 (\d{3})[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]*)", r.text)
    return [(int(status), body) for status, body in found]


def test_batch_runs_a_long_fetchxml_and_a_change_set(
    client: TestClient, world: dict[str, Any]
) -> None:
    api = "http://testserver/api/data/v9.2"
    padding = "".join(
        f'<condition attribute="subject" operator="ne" value="{i:05d}{"x" * 40}"/>'
        for i in range(450)
    )
    long_xml = ALL_MINE.replace("</entity>", f'<filter type="and">{padding}</filter></entity>')
    assert len(long_xml) > 32_000  # more than a URL may carry
    contact = uuid.uuid4()
    changeset = "changeset_1"
    body = (
        _batch_part("batch_1", "GET", f"{api}/emails?fetchXml={quote(long_xml)}")
        + '--batch_1\r\nContent-Type: multipart/mixed; boundary="changeset_1"\r\n\r\n'
        + _batch_part(changeset, "PATCH", f"{api}/contacts({contact})", '{"fullname": "Bo"}')
        + f"--{changeset}--\r\n"
        + _batch_part("batch_1", "GET", f"contacts({contact})?$select=fullname")
        + "--batch_1--\r\n"
    )
    r = client.post(
        f"{BASE}/$batch",
        content=body.encode(),
        headers=_h(world, **{"content-type": 'multipart/mixed; boundary="batch_1"'}),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    answers = _batch_answers(r)
    assert [status for status, _ in answers] == [200, 204, 200]
    assert [row["subject"] for row in json.loads(answers[0][1])["value"]] == [
        "hot",
        "noisy",
        "old",
    ]
    assert json.loads(answers[2][1])["fullname"] == "Bo"


def test_batch_stops_at_the_first_failure_and_keeps_its_key(
    client: TestClient, world: dict[str, Any]
) -> None:
    theirs = world["ids"]["theirs"]
    body = (
        _batch_part("b", "GET", f"emails({theirs})")  # not the rep's: 404
        + _batch_part("b", "GET", "WhoAmI()")
        + _batch_part("b", "GET", "/api/v1/emails")  # not the Web API: refused
        + "--b--\r\n"
    )
    headers = _h(world, **{"content-type": "multipart/mixed; boundary=b"})
    r = client.post(f"{BASE}/$batch", content=body.encode(), headers=headers)
    assert [s for s, _ in _batch_answers(r)] == [404]
    r = client.post(
        f"{BASE}/$batch",
        content=body.encode(),
        headers={**headers, "prefer": "odata.continue-on-error"},
    )
    answers = _batch_answers(r)
    assert [s for s, _ in answers] == [404, 200, 404]
    assert json.loads(answers[1][1])["UserId"] == str(world["rep"])
    assert json.loads(answers[2][1])["error"]["code"] == "0x80060888"
    anonymous = client.post(
        f"{BASE}/$batch", content=body.encode(), headers={"content-type": headers["content-type"]}
    )
    assert anonymous.status_code == 401
    plain = client.post(f"{BASE}/$batch", content=b"x", headers=_h(world))
    assert (plain.status_code, plain.json()["error"]["code"]) == (400, "0x80048d19")
