"""OData query options on Web API collections (issue 11, A.1), as a client sends them:
each request against its expected JSON, on SQLite and PostgreSQL, under row access."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from starlette.testclient import TestClient

from helpers import add_rep, track_html
from mailsignal.errors import FetchXmlQueryError
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.schema import email
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

BASE = "/api/data/v9.2"
NO_PROPERTY = "Could not find a property named"
CRM = "Microsoft.Dynamics.CRM"


@pytest.fixture
def world(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Three emails of the rep's and one of another rep's, to contacts of two accounts."""
    signer = Signer(*load_keyring(settings.secret_file))
    now = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        rep = add_rep(conn)
        other = add_rep(conn, "other@northwind.test")
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        northwind = parties.add(conn, "account", "Northwind", None)
        contoso = parties.add(conn, "account", "Contoso", None)
        dana = parties.add(conn, "contact", "Dana Fischer", "dana@contoso.test", parent=contoso)
        parties.add(conn, "contact", "Ada Lovelace", "ada@northwind.test", parent=northwind)
        parties.add(conn, "contact", "Alan Turing", None)
        ids = {}
        for subject, owner, opens, opened in (
            ("hot", rep, 5, now - timedelta(days=1)),
            ("cold", rep, 0, None),
            ("100% off", rep, 2, now - timedelta(days=3)),
            ("theirs", other, 7, now),
        ):
            result = track_html(conn, signer, ["dana@contoso.test"])
            conn.execute(
                update(email)
                .where(email.c.activityid == result.activity_id)
                .values(subject=subject, opencount=opens, lastopenedtime=opened, ownerid=owner)
            )
            ids[subject] = result.activity_id
        keys = {
            who: users.create_api_key(conn, uid)
            for who, uid in (("rep", rep), ("other", other), ("admin", admin))
        }
    return {"ids": ids, "keys": keys, "dana": dana, "northwind": northwind, "contoso": contoso}


@pytest.fixture
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def get(
    client: TestClient, world: dict[str, Any], path: str, who: str = "rep", **params: str
) -> Any:
    headers = {
        "authorization": f"Bearer {world['keys'][who]}",
        "accept": "application/json",
        "odata-version": "4.0",
        "odata-maxversion": "4.0",
    }
    return client.get(
        f"{BASE}/{path}", params={f"${k}": v for k, v in params.items()}, headers=headers
    )


def values(response: Any) -> list[dict[str, Any]]:
    """The rows without their ETag and primary key (checked present, then set aside)."""
    assert response.status_code == 200, response.text
    rows = []
    for row in response.json()["value"]:
        assert row.pop("@odata.etag", "W/").startswith("W/")
        row.pop("activityid", None) or row.pop("contactid")
        rows.append(row)
    return rows


# (who, query options, expected rows): the fixture pairs.
EMAIL_CASES = [
    ("rep", {"select": "subject", "filter": "opencount eq 5"}, [{"subject": "hot"}]),
    ("rep", {"select": "subject", "filter": "opencount ne 5", "orderby": "subject"},
     [{"subject": "100% off"}, {"subject": "cold"}]),
    ("rep", {"select": "subject,opencount", "filter": "opencount gt 2"},
     [{"subject": "hot", "opencount": 5}]),
    ("rep", {"select": "subject", "filter": "opencount ge 2", "orderby": "opencount"},
     [{"subject": "100% off"}, {"subject": "hot"}]),
    ("rep", {"select": "subject", "filter": "opencount lt 2"}, [{"subject": "cold"}]),
    ("rep", {"select": "subject", "filter": "opencount le 2", "orderby": "subject desc"},
     [{"subject": "cold"}, {"subject": "100% off"}]),
    ("rep", {"select": "subject", "filter": "contains(subject,'0%')"}, [{"subject": "100% off"}]),
    ("rep", {"select": "subject", "filter": "startswith(subject,'HO')"}, [{"subject": "hot"}]),
    ("rep", {"select": "subject", "filter": "endswith(subject,'old')"}, [{"subject": "cold"}]),
    ("rep", {"select": "subject", "filter": "lastopenedtime eq null"}, [{"subject": "cold"}]),
    ("rep", {"select": "subject", "filter": "lastopenedtime ne null and not (opencount eq 5)"},
     [{"subject": "100% off"}]),
    ("rep", {"select": "subject", "orderby": "subject",
             "filter": "opencount eq 5 or contains(subject,'c') or opencount eq 7"},
     [{"subject": "cold"}, {"subject": "hot"}]),
    ("rep", {"select": "subject", "filter": "lastopenedtime ge 2026-03-09T00:00:00Z"},
     [{"subject": "hot"}]),
    ("admin", {"select": "subject", "filter": "opencount gt 1", "orderby": "opencount desc",
               "top": "2"}, [{"subject": "theirs"}, {"subject": "hot"}]),
    ("other", {"select": "subject,opencount"}, [{"subject": "theirs", "opencount": 7}]),
    ("rep", {"select": "subject", "filter": "subject eq 'theirs'"}, []),  # another rep's email
    ("rep", {"select": "opencount", "orderby": "opencount desc,subject", "top": "2"},
     [{"opencount": 5}, {"opencount": 2}]),
]  # fmt: skip


@pytest.mark.parametrize(("who", "params", "expected"), EMAIL_CASES)
def test_email_queries(
    client: TestClient, world: dict[str, Any], who: str, params: dict[str, str], expected: Any
) -> None:
    response = get(client, world, "emails", who, **params)
    rows = values(response)
    if "orderby" not in params:
        rows.sort(key=lambda r: str(r))
    assert rows == expected
    assert response.json()["@odata.context"].endswith(f"$metadata#emails({params['select']})")


def test_lookup_filter_and_select(client: TestClient, world: dict[str, Any]) -> None:
    response = get(
        client,
        world,
        "contacts",
        filter=f"_parentcustomerid_value eq {world['northwind']}",
        select="fullname,_parentcustomerid_value",
    )
    assert values(response) == [
        {"fullname": "Ada Lovelace", "_parentcustomerid_value": str(world["northwind"])}
    ]
    emails = get(client, world, "emails", filter=f"_regardingobjectid_value eq {world['dana']}")
    assert {r["subject"] for r in values(emails)} == {"hot", "cold", "100% off"}


def test_no_options_returns_every_visible_row_with_all_columns(
    client: TestClient, world: dict[str, Any]
) -> None:
    response = get(client, world, "emails")
    rows = response.json()["value"]
    assert {r["subject"] for r in rows} == {"hot", "cold", "100% off"}
    assert all("@odata.etag" in r and "modifiedon" in r and "senton" in r for r in rows)
    assert response.json()["@odata.context"].endswith("$metadata#emails")


def test_count(client: TestClient, world: dict[str, Any]) -> None:
    body = get(
        client, world, "emails", "admin", count="true", top="1", filter="opencount gt 1"
    ).json()
    assert body["@odata.count"] == 3 and len(body["value"]) == 1
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 3
    body = get(client, world, "emails", count="true", select="subject").json()
    assert body["@odata.count"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"skip": "1"}, "The query parameter $skip is not supported"),
        ({"apply": "aggregate($count as n)"}, "The query parameter $apply is not supported"),
        ({"search": "hot"}, "The query parameter $search is not supported"),
        ({"filter": "nosuch eq 1"}, f"{NO_PROPERTY} 'nosuch' on type '{CRM}.email'."),
        ({"select": "subject,nosuch"}, f"{NO_PROPERTY} 'nosuch' on type '{CRM}.email'."),
        ({"filter": "opencount eq"}, "Syntax error in $filter"),
        ({"top": "-1"}, "Invalid value '-1' for $top"),
    ],
)  # fmt: skip
def test_refusals_are_dataverse_errors(
    client: TestClient, world: dict[str, Any], params: dict[str, str], message: str
) -> None:
    response = get(client, world, "emails", **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80060888" and message in error["message"]


def test_odata_options_with_fetchxml_are_refused(client: TestClient, world: dict[str, Any]) -> None:
    xml = '<fetch><entity name="email"><attribute name="subject"/></entity></fetch>'
    response = client.get(
        f"{BASE}/emails",
        params={"fetchXml": xml, "$filter": "opencount gt 1"},
        headers={"authorization": f"Bearer {world['keys']['rep']}"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80060888",
        "message": "The query parameter $filter is not supported",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter": "name eq 'engaged this week'", "select": "name,isdefault"},
         [{"name": "Engaged This Week", "isdefault": True}]),
        ({"filter": "startswith(name,'Engaged') and not endswith(name,'week')", "select": "name"},
         [{"name": "Engaged This Week (human signals)"}]),
        ({"filter": "returnedtypecode eq 'email' and isdefault eq false", "orderby": "name desc",
          "select": "name"}, [{"name": "Scanner noise last month"},
                              {"name": "Opt-in gap"},
                              {"name": "Engaged This Week (human signals)"}]),
        ({"filter": "contains(fetchxml,'last-x-days') or description eq null", "top": "1",
          "orderby": "name", "select": "name"}, [{"name": "Engaged This Week"}]),
        ({"filter": "returnedtypecode eq 'contact'"}, []),
    ],
)  # fmt: skip
def test_saved_queries_honour_options(
    client: TestClient, world: dict[str, Any], params: dict[str, str], expected: Any
) -> None:
    response = get(client, world, "savedqueries", **params)
    assert response.status_code == 200, response.text
    rows = response.json()["value"]
    assert all(row.pop("savedqueryid") for row in rows)
    assert rows == expected
    projection = f"({params['select']})" if "select" in params else ""
    assert response.json()["@odata.context"].endswith(f"#savedqueries{projection}")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "nosuch eq 1"}, f"{NO_PROPERTY} 'nosuch' on type '{CRM}.savedquery'."),
        ({"count": "true"}, "The query parameter $count is not supported"),
        ({"skip": "1"}, "The query parameter $skip is not supported"),
        ({"filter": "Microsoft.Dynamics.CRM.Today(PropertyName='name')"}, "on savedqueries"),
    ],
)  # fmt: skip
def test_saved_queries_refuse_what_they_cannot_honour(
    client: TestClient, world: dict[str, Any], params: dict[str, str], message: str
) -> None:
    response = get(client, world, "savedqueries", **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80060888" and message in error["message"]


def test_count_segment_function(engine: Engine, world: dict[str, Any]) -> None:
    """`options.count`, what `emails/$count` answers: visible rows matching `$filter`."""
    from mailsignal.store.catalog import CATALOG
    from mailsignal.store.fetch import load_caller
    from mailsignal.web.webapi import options

    emails = CATALOG.entities["email"]
    with engine.connect() as conn:
        rep, admin = (
            load_caller(conn, users.by_address(conn, address)["systemuserid"])  # type: ignore[index]
            for address in ("rep@northwind.test", "admin@northwind.test")
        )
        assert options.count(conn, emails, {}, rep) == 3
        assert options.count(conn, emails, {}, admin) == 4
        assert options.count(conn, emails, {"$filter": "opencount gt 1"}, rep) == 2
        with pytest.raises(FetchXmlQueryError, match=r"\$select is not supported"):
            options.count(conn, emails, {"$select": "subject"}, rep)


@pytest.mark.parametrize("path", ["emails", "savedqueries"])
def test_an_option_given_twice_is_refused(
    client: TestClient, world: dict[str, Any], path: str
) -> None:
    response = client.get(
        f"{BASE}/{path}?$filter=opencount%20eq%201&$filter=opencount%20eq%202",
        headers={"authorization": f"Bearer {world['keys']['rep']}"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80060888",
        "message": "Query option '$filter' was specified more than once, but it must be "
        "specified at most once.",
    }


def test_expand_single_valued_lookups(client: TestClient, world: dict[str, Any]) -> None:
    response = get(
        client,
        world,
        "contacts",
        select="fullname",
        expand="parentcustomerid_account($select=name)",
        orderby="fullname",
    )
    assert values(response) == [
        {"fullname": "Ada Lovelace", "parentcustomerid_account": {
            "accountid": str(world["northwind"]), "name": "Northwind"}},
        {"fullname": "Alan Turing", "parentcustomerid_account": None},
        {"fullname": "Dana Fischer", "parentcustomerid_account": {
            "accountid": str(world["contoso"]), "name": "Contoso"}},
    ]  # fmt: skip
    assert response.json()["@odata.context"].endswith(
        "$metadata#contacts(fullname,parentcustomerid_account(name))"
    )
    emails = get(
        client, world, "emails", select="subject", filter="subject eq 'hot'",
        expand="regardingobjectid_contact_email($select=fullname,_parentcustomerid_value)",
    )  # fmt: skip
    [row] = values(emails)
    assert row["regardingobjectid_contact_email"] == {
        "contactid": str(world["dana"]),
        "fullname": "Dana Fischer",
        "_parentcustomerid_value": str(world["contoso"]),
    }


def test_count_segment(client: TestClient, world: dict[str, Any]) -> None:
    """`emails/$count`: plain text, the caller's rows only, `$filter` honoured."""
    assert get(client, world, "emails/$count").text == "3"
    assert get(client, world, "emails/$count", "admin").text == "4"
    assert get(client, world, "emails/$count", filter="opencount gt 1").text == "2"
    refused = get(client, world, "emails/$count", select="subject")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "0x80060888"


def test_maxpagesize_pages_an_odata_query_through_skiptokens(
    client: TestClient, world: dict[str, Any]
) -> None:
    """`Prefer: odata.maxpagesize=2` over the admin's four emails: pages of 2 and 2, each
    but the last with an `@odata.nextLink` whose `$skiptoken` is Dataverse's cookie; the
    link keeps the query's options and, followed as it is, continues in order."""
    headers = {
        "authorization": f"Bearer {world['keys']['admin']}",
        "prefer": 'odata.maxpagesize=2,odata.include-annotations="*"',
    }
    url: str | None = f"{BASE}/emails?$select=subject&$orderby=subject asc&$count=true"
    pages: list[list[str]] = []
    while url:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert "odata.maxpagesize=2" in r.headers["preference-applied"]
        body = r.json()
        assert body["@odata.count"] == 4
        pages.append([row["subject"] for row in body["value"]])
        url = body.get("@odata.nextLink")
        if url:
            assert "%24skiptoken=%3Ccookie+pagenumber%3D%22" in url and "%24select=subject" in url
            assert body[f"@{CRM}.morerecords"] is True
    assert pages == [["100% off", "cold"], ["hot", "theirs"]]


def test_top_is_not_paged_and_a_foreign_skiptoken_is_refused(
    client: TestClient, world: dict[str, Any]
) -> None:
    headers = {"prefer": "odata.maxpagesize=1"}
    r = get(client, world, "emails", who="admin", top="3", select="subject")
    assert r.status_code == 200 and len(r.json()["value"]) == 3
    key = {"authorization": f"Bearer {world['keys']['admin']}", **headers}
    r = client.get(f"{BASE}/emails?$top=3", headers=key)
    assert len(r.json()["value"]) == 3 and "@odata.nextLink" not in r.json()
    assert "preference-applied" not in r.headers
    for token in ("abc", '<cookie pagenumber="2" pagingcookie="x" istracking="False" />'):
        r = get(client, world, "emails", who="admin", skiptoken=token)
        assert r.status_code == 400 and r.json()["error"]["message"] == (
            "The paging cookie is not valid."
        )
    r = get(client, world, "emails", who="admin", skiptoken="x", top="1")
    assert r.status_code == 400 and "$top" in r.json()["error"]["message"]


def test_expand_on_a_single_record(client: TestClient, world: dict[str, Any]) -> None:
    """`contacts(id)?$select=fullname&$expand=parentcustomerid_account($select=name)`: the
    account nested in the record, as on a collection; an unknown navigation is refused."""
    dana = world["dana"]
    r = get(
        client,
        world,
        f"contacts({dana})",
        select="fullname",
        expand="parentcustomerid_account($select=name)",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fullname"] == "Dana Fischer"
    assert body["parentcustomerid_account"] == {
        "accountid": str(world["contoso"]),
        "name": "Contoso",
    }
    assert "modifiedon" not in body and body["@odata.etag"].startswith('W/"')
    r = get(client, world, f"contacts({dana})", expand="ownerid_systemuser")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(NO_PROPERTY)


@pytest.mark.parametrize(("peer", "trusted"), [("127.0.0.1", True), ("192.0.2.7", False)])
def test_links_follow_a_trusted_proxy(
    settings: Settings, world: dict[str, Any], peer: str, trusted: bool
) -> None:
    """Behind a TLS-terminating proxy in `trusted_proxies`, `@odata.nextLink` and
    `@odata.context` use its X-Forwarded-Proto / -Host; from any other peer those
    headers change nothing (a client cannot send links elsewhere)."""
    proxied = settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    headers = {
        "authorization": f"Bearer {world['keys']['admin']}",
        "prefer": "odata.maxpagesize=1",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "crm.example.test",
    }
    with TestClient(create_app(proxied), client=(peer, 50000)) as c:
        body = c.get(f"{BASE}/emails?$select=subject", headers=headers).json()
    origin = "https://crm.example.test" if trusted else "http://testserver"
    assert body["@odata.nextLink"].startswith(f"{origin}{BASE}/emails?")
    assert body["@odata.context"].startswith(f"{origin}{BASE}/$metadata#emails")
