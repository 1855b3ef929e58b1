"""Issue 11 A.6: the Dataverse client libraries Dynamics developers use, unchanged and
pinned, against a real `mailsignal serve` with the demo data.

The Node client (`dynamics-web-api`, tests/clients/node) runs as `node run.mjs`, which
performs every call and prints one JSON object of results; this test asserts on it. Its
node_modules come from `npm ci --prefix tests/clients/node` (`.ci/run` does it).
Microsoft's Python SDK (`powerplatform-dataverse-client`, the dev extra) refuses anything
but https, so the server answers https itself (`tls_cert` / `tls_key`) with a throwaway
certificate, trusted through REQUESTS_CA_BUNDLE; the links it returns (`@odata.nextLink`)
are then https too, as they are behind a real deployment's TLS."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from conftest import LiveServer, cli, need
from helpers import throwaway_certificate

NODE_CLIENT = Path(__file__).parents[1] / "clients" / "node"
SEED_FETCHXML = (
    Path(__file__).parents[2] / "src" / "mailsignal" / "data" / "views" / "engaged-this-week.xml"
)
# A FetchXML far longer than a URL may carry (each client sends it its own way).
LONG_FETCHXML = (
    '<fetch><entity name="email"><attribute name="subject"/><filter type="and">'
    + "".join(
        f'<condition attribute="subject" operator="ne" value="padding-{i}"/>' for i in range(300)
    )
    + "</filter></entity></fetch>"
)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def served_demo(
    data_dir: Path, db_url: str, tls: tuple[Path, Path] | None = None
) -> tuple[LiveServer, str, str]:
    """A served instance on `db_url` with the demo data; (server, admin's key, admin's id)."""
    server = LiveServer(
        data_dir, ingest=False, extra_env={"MAILSIGNAL_DATABASE_URL": db_url}, tls=tls
    )
    cli(server.env, "init")
    cli(server.env, "demo", "--small")
    key = cli(server.env, "users", "key", "create", "admin@northwind.test").stdout.strip()
    users = cli({**server.env, "COLUMNS": "200"}, "users", "list").stdout  # ids unwrapped
    admin_line = next(line for line in users.splitlines() if "admin@northwind.test" in line)
    admin_id = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", admin_line)[0]
    server.start()
    return server, key, admin_id


def node_client() -> str:
    """The `node` executable, once the pinned client is installed (else skip, or fail in CI)."""
    node = shutil.which("node")
    need(node is not None, "Node.js", "install Debian's nodejs and npm")
    need(
        (NODE_CLIENT / "node_modules" / "dynamics-web-api").is_dir(),
        "the dynamics-web-api client",
        "run `npm ci --prefix tests/clients/node`",
    )
    return str(node)


def run_node_client(node: str, server: LiveServer, key: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "MAILSIGNAL_URL": server.url + "/",
        "MAILSIGNAL_KEY": key,
        "MAILSIGNAL_FETCHXML": str(SEED_FETCHXML),
    }
    out = subprocess.run(
        [node, "run.mjs"],
        cwd=NODE_CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: dict[str, Any] = json.loads(out.stdout)
    return results


def ok(results: dict[str, Any], step: str) -> Any:
    """The value of a client call that must have succeeded."""
    outcome = results[step]
    assert outcome["ok"], f"{step} failed: {outcome['error']}"
    return outcome["value"]


def test_dynamics_web_api_drives_the_web_api(tmp_path: Path, db_url: str) -> None:
    node = node_client()
    server, key, admin_id = served_demo(tmp_path / "data", db_url)
    try:
        results = run_node_client(node, server, key)
    finally:
        server.kill(15)

    assert ok(results, "whoAmI")["UserId"] == admin_id

    # retrieveMultiple with $select, $filter (and, contains), $orderby and $top.
    rows = ok(results, "retrieveMultiple")["value"]
    subjects = [row["subject"] for row in rows]
    assert subjects and all("logistics" in s.lower() for s in subjects)
    assert subjects == sorted(subjects, reverse=True)
    allowed = {"@odata.etag", "activityid", "subject", "opencount", "_regardingobjectid_value"}
    assert all(set(row) <= allowed and row["opencount"] > 0 for row in rows)
    assert all(row["@odata.etag"].startswith('W/"') for row in rows)

    contacts = ok(results, "retrieveMultipleExpand")["value"]
    assert contacts and all(row["emailaddress1"] for row in contacts)
    assert any(isinstance(row.get("parentcustomerid_account"), dict) for row in contacts)
    assert all(
        row["parentcustomerid_account"] is None or set(row["parentcustomerid_account"]) >= {"name"}
        for row in contacts
    )

    assert ok(results, "count") == 5
    # retrieveAll follows @odata.nextLink ($skiptoken) through pages of 2.
    every_subject = [row["subject"] for row in ok(results, "retrieveAll")["value"]]
    assert len(every_subject) == len(set(every_subject)) == 5
    page = ok(results, "retrieveMultiplePage")
    assert len(page["value"]) == 2 and "$skiptoken=" in unquote(page["oDataNextLink"])

    # FetchXML paging with Dataverse's cookie, round-tripped by the client across 3 pages.
    first = ok(results, "fetchFirstPage")
    assert len(first["value"]) == 2 and first["PagingInfo"]["nextPage"] == 2
    every = ok(results, "fetchAll")["value"]
    assert len(every) == 5 and len({row["activityid"] for row in every}) == 5
    assert [row["subject"] for row in every] == sorted(row["subject"] for row in every)

    seed = ok(results, "seedFetchXml")["value"]
    assert seed and all(1 < row["opencount"] < 20 and row["lastopenedtime"] for row in seed)

    # A FetchXML longer than a URL: the client sends it through $batch by itself.
    assert len(ok(results, "longFetchXmlViaBatch")["value"]) == 5

    # retrieve / update with ETags.
    before = ok(results, "retrieve")
    assert GUID.match(before["contactid"]) and before["@odata.etag"].startswith('W/"')
    assert ok(results, "updateIfMatch") is True
    assert ok(results, "updateStaleEtag") is False  # 412, which the client reports as false
    after = ok(results, "retrieveAfterUpdate")
    assert after["fullname"] == "Renamed By Client"
    assert after["@odata.etag"] != before["@odata.etag"]

    # The published opt-in flow: PATCH usersettings, by its Dataverse and alias names.
    assert ok(results, "optInPatch") is True
    assert ok(results, "optInAliasPatch") is True
    settings = ok(results, "optInRead")
    assert settings["systemuserid"] == admin_id and settings["emailengagementoptin"] is True

    # startBatch/executeBatch: a GET, a PATCH in a change set, then a GET that sees it.
    listed, _updated, reread = ok(results, "batch")
    assert len(listed["value"]) == 2
    assert reread["followemail"] is True and reread["contactid"] == before["contactid"]

    # Metadata look-ups.
    tables = ok(results, "retrieveEntities")["value"]
    assert [(t["LogicalName"], t["EntitySetName"]) for t in tables] == [("contact", "contacts")]
    assert ok(results, "retrieveEntity")["EntitySetName"] == "emails"
    names = {a["LogicalName"] for a in ok(results, "retrieveAttributes")["value"]}
    assert {"contactid", "fullname", "emailaddress1"} <= names
    assert ok(results, "retrieveAttribute")["AttributeType"] == "Integer"
    picklists = {a["LogicalName"]: a for a in ok(results, "retrievePicklists")["value"]}
    assert picklists["interactiontype"]["OptionSet"]["Options"]
    assert ok(results, "csdlMetadata").startswith("<?xml")

    # Every call was answered: nothing failed that the test did not look at.
    assert [step for step, outcome in results.items() if not outcome["ok"]] == []


class ApiKeyCredential:
    """An azure-core TokenCredential whose token is a MailSignal API key."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.key, int(time.time()) + 3600)


def attempt(results: dict[str, Any], step: str, call: Callable[[], Any]) -> None:
    """Run one SDK call and record its value or its error, as run.mjs does."""
    try:
        results[step] = {"ok": True, "value": call()}
    except Exception as error:
        results[step] = {"ok": False, "error": f"{type(error).__name__}: {error}"}


def test_dataverse_python_sdk_drives_the_web_api(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from PowerPlatform.Dataverse.client import DataverseClient
    except ImportError:
        need(False, "powerplatform-dataverse-client", "pip install -e '.[dev]'")
    cert, cert_key = throwaway_certificate(tmp_path)
    server, key, admin_id = served_demo(tmp_path / "data", db_url, tls=(cert, cert_key))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    seed = SEED_FETCHXML.read_text()
    every_email = (
        '<fetch count="2"><entity name="email"><attribute name="subject"/>'
        '<order attribute="subject"/></entity></fetch>'
    )
    results: dict[str, Any] = {}
    try:
        with DataverseClient(server.url, ApiKeyCredential(key)) as c:
            first = c.records.list("contact", select=["fullname"], top=1).first()
            assert first is not None, "the demo data has contacts"
            contact_id = str(first["contactid"])
            attempt(results, "tablesGet", lambda: c.tables.get("contact"))
            attempt(
                results,
                "list",
                lambda: [
                    dict(r)
                    for r in c.records.list(
                        "email",
                        select=["subject", "opencount"],
                        filter="opencount gt 0 and contains(subject,'logistics')",
                        orderby=["subject desc"],
                        top=5,
                    )
                ],
            )
            attempt(
                results,
                "listPages",
                lambda: [len(p) for p in c.records.list_pages("email", page_size=2)],
            )
            attempt(
                results,
                "fetchXmlPages",
                lambda: [
                    [r["subject"] for r in page]
                    for page in c.query.fetchxml(every_email).execute_pages()
                ],
            )
            attempt(
                results, "seedFetchXml", lambda: [dict(r) for r in c.query.fetchxml(seed).execute()]
            )
            attempt(
                results,
                "retrieve",
                lambda: dict(c.records.retrieve("contact", contact_id, select=["fullname"]) or {}),
            )
            attempt(
                results,
                "updateText",
                lambda: c.records.update("contact", contact_id, {"fullname": "Renamed By SDK"}),
            )
            attempt(
                results,
                "retrieveAfterUpdate",
                lambda: dict(c.records.retrieve("contact", contact_id, select=["fullname"]) or {}),
            )
            attempt(results, "longFetchXml", lambda: len(c.query.fetchxml(LONG_FETCHXML).execute()))
            attempt(results, "tablesList", lambda: c.tables.list())
            attempt(
                results,
                "optInPatch",
                lambda: c.records.update("usersettings", admin_id, {"emailengagementoptin": True}),
            )
            attempt(
                results,
                "optInRead",
                lambda: dict(
                    c.records.retrieve("usersettings", admin_id, select=["emailengagementoptin"])
                    or {}
                ),
            )

            def batch() -> list[tuple[int, Any]]:
                request = c.batch.new()
                request.records.list("email", select=["subject"], top=2)
                request.records.update("contact", contact_id, {"followemail": True})
                request.records.retrieve("contact", contact_id, select=["followemail"])
                return [(r.status_code, r.data) for r in request.execute().responses]

            attempt(results, "batch", batch)
    finally:
        server.kill(15)

    info = ok(results, "tablesGet")
    assert (info["entity_set_name"], info["primary_id_attribute"]) == ("contacts", "contactid")
    rows = ok(results, "list")
    assert rows and all("logistics" in row["subject"].lower() for row in rows)
    assert [r["subject"] for r in rows] == sorted((r["subject"] for r in rows), reverse=True)
    # list_pages(page_size=2) follows @odata.nextLink ($skiptoken) across three pages.
    assert ok(results, "listPages") == [2, 2, 1]
    pages = ok(results, "fetchXmlPages")
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [subject for page in pages for subject in page]
    assert flat == sorted(flat) and len(set(flat)) == 5
    assert all(1 < row["opencount"] < 20 for row in ok(results, "seedFetchXml"))
    assert GUID.match(ok(results, "retrieve")["contactid"])
    # Before a PATCH with a string value the SDK reads the table's picklists
    # (EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.
    # PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet(...)); a table with
    # none answered 400 where Dataverse answers an empty collection.
    assert ok(results, "retrieveAfterUpdate")["fullname"] == "Renamed By SDK"
    assert ok(results, "longFetchXml") == 5
    # tables.list() asks EntityDefinitions?$filter=IsPrivate eq false.
    assert "contact" in str(ok(results, "tablesList"))
    assert ok(results, "optInPatch") is None
    assert ok(results, "optInRead")["emailengagementoptin"] is True
    (list_status, listed), (update_status, _), (read_status, reread) = ok(results, "batch")
    assert (list_status, update_status, read_status) == (200, 204, 200)
    assert len(listed["value"]) == 2 and reread["followemail"] is True
