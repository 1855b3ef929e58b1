"""Metadata as Dataverse serves it (issue 11 A.2): `EntityDefinitions`, per-table
`Attributes`, the typed casts the Python SDK reads and `$metadata`, generated from the
catalog, on SQLite and PostgreSQL. Each request is sent as the client library sends it."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import add_rep
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.web.app import create_app

BASE = "/api/data/v9.2"


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with engine.begin() as conn:
        key = users.create_api_key(conn, add_rep(conn))
    with TestClient(create_app(settings)) as c:
        yield c, {"authorization": f"Bearer {key}", "accept": "application/json"}


def _get(client: tuple[TestClient, dict[str, str]], path: str, **params: str) -> Any:
    c, headers = client
    return c.get(f"{BASE}/{path}", params=params, headers=headers)


def _contact_id() -> str:
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "https://mailsignal/metadata"), "contact"))


def test_sdk_resolves_a_table(client: Any) -> None:
    """powerplatform-dataverse-client 1.1 `_entity_set_from_schema_name`."""
    r = _get(
        client,
        "EntityDefinitions",
        **{
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'contact'",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["value"] == [
        {
            "MetadataId": _contact_id(),
            "LogicalName": "contact",
            "EntitySetName": "contacts",
            "PrimaryIdAttribute": "contactid",
        }
    ]


def test_sdk_reads_a_table_and_the_same_by_key(client: Any) -> None:
    """`_get_entity_by_table_schema_name`, then the record by LogicalName and MetadataId."""
    select = (
        "MetadataId,LogicalName,SchemaName,EntitySetName,PrimaryNameAttribute,PrimaryIdAttribute"
    )
    r = _get(
        client,
        "EntityDefinitions",
        **{"$select": select, "$filter": "LogicalName eq 'usersettings'"},
    )
    [row] = r.json()["value"]
    assert row == {
        "MetadataId": row["MetadataId"],
        "LogicalName": "usersettings",
        "SchemaName": "UserSettings",
        "EntitySetName": "usersettingscollection",
        "PrimaryNameAttribute": None,
        "PrimaryIdAttribute": "systemuserid",
    }
    by_name = _get(client, "EntityDefinitions(LogicalName='usersettings')").json()
    by_id = _get(client, f"EntityDefinitions({row['MetadataId']})").json()
    assert by_name == by_id and by_name["ObjectTypeCode"] == 150
    assert by_name["@odata.context"].endswith("$metadata#EntityDefinitions/$entity")
    assert len(_get(client, "EntityDefinitions").json()["value"]) == 8


def test_attributes_and_one_attribute(client: Any) -> None:
    r = _get(
        client,
        f"EntityDefinitions({_contact_id()})/Attributes",
        **{"$select": "LogicalName,AttributeType", "$filter": "LogicalName eq 'emailaddress1'"},
    )
    [row] = r.json()["value"]
    assert (row["LogicalName"], row["AttributeType"]) == ("emailaddress1", "String")
    assert row["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    one = _get(
        client, f"EntityDefinitions({_contact_id()})/Attributes(LogicalName='parentcustomerid')"
    )
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["AttributeType"], body["Targets"], body["AttributeTypeName"]) == (
        "Lookup",
        ["account"],
        {"Value": "LookupType"},
    )
    again = _get(
        client, f"EntityDefinitions(LogicalName='contact')/Attributes({body['MetadataId']})"
    )
    assert again.json()["LogicalName"] == "parentcustomerid"
    names = [
        a["LogicalName"]
        for a in _get(client, "EntityDefinitions(LogicalName='contact')/Attributes").json()["value"]
    ]
    assert "fullname" in names and "engagementscore" in names


def test_picklist_cast_with_option_set(client: Any) -> None:
    """The SDK's `_bulk_fetch_picklists`, verbatim."""
    r = _get(
        client,
        "EntityDefinitions(LogicalName='interactionforemail')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        **{"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    )
    assert r.status_code == 200, r.text
    [row] = r.json()["value"]
    assert row["LogicalName"] == "interactiontype"
    labels = {
        o["Value"]: o["Label"]["LocalizedLabels"][0]["Label"] for o in row["OptionSet"]["Options"]
    }
    assert labels == {0: "Email Open", 1: "Link Open", 2: "Attachment Open", 3: "Email Reply"}
    none = _get(
        client,
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
    )
    assert none.json()["value"] == []
    boolean = _get(
        client,
        "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='followemail')/"
        "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
        **{"$expand": "OptionSet"},
    ).json()
    assert boolean["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"] == "Allow"


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "message"),
    [
        ("EntityDefinitions(LogicalName='nosuch')", {}, 404, "0x80040217", "nosuch"),
        (
            "EntityDefinitions",
            {"$filter": "startswith(LogicalName,'c')"},
            400,
            "0x80060888",
            "$filter",
        ),
        ("EntityDefinitions", {"$expand": "Attributes"}, 400, "0x80060888", "$expand"),
        ("EntityDefinitions", {"$select": "Nope"}, 400, "0x80060888", "'Nope'"),
        ("EntityDefinitions(not-a-guid)", {}, 400, "0x80060888", "syntax"),
        ("EntityDefinitions(LogicalName='contact')/Keys", {}, 404, "0x80060888", "'Keys'"),
        (
            "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.Nope",
            {},
            404,
            "0x80060888",
            "segment",
        ),
        (
            "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='nope')",
            {},
            404,
            "0x80040217",
            "nope",
        ),
    ],
)
def test_metadata_refusals_are_dataverse_shaped(
    client: Any, path: str, params: dict[str, str], status: int, code: str, message: str
) -> None:
    r = _get(client, path, **params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and message in error["message"]


def test_csdl_lists_the_tables(client: Any) -> None:
    r = _get(client, "$metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.text)  # noqa: S314 - our own answer
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    sets = {e.get("Name"): e.get("EntityType") for e in root.iter(f"{edm}EntitySet")}
    assert sets["usersettingscollection"] == "Microsoft.Dynamics.CRM.usersettings"
    email = next(e for e in root.iter(f"{edm}EntityType") if e.get("Name") == "email")
    props = {p.get("Name"): p.get("Type") for p in email.iter(f"{edm}Property")}
    assert props["subject"] == "Edm.String" and props["_regardingobjectid_value"] == "Edm.Guid"
    assert props["senton"] == "Edm.DateTimeOffset" and props["opencount"] == "Edm.Int32"


def test_metadata_needs_a_key(client: Any) -> None:
    c, _ = client
    for path in ("EntityDefinitions", "$metadata"):
        r = c.get(f"{BASE}/{path}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "0x80072560"


def test_a_cast_no_column_has_is_an_empty_collection(client: Any) -> None:
    """The Python SDK reads a table's picklists before every PATCH with a string; on a
    table with none this answered 400, so `records.update` could not rename a contact."""
    r = _get(
        client,
        "EntityDefinitions(LogicalName='contact')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        **{"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["value"] == []


def test_is_private_filter_as_the_sdk_lists_tables(client: Any) -> None:
    """`tables.list()` asks `$filter=IsPrivate eq false`: no MailSignal table is private."""
    public = _get(client, "EntityDefinitions", **{"$filter": "IsPrivate eq false"})
    assert public.status_code == 200, public.text
    assert "contact" in {row["LogicalName"] for row in public.json()["value"]}
    private = _get(client, "EntityDefinitions", **{"$filter": "IsPrivate eq true"})
    assert private.status_code == 200 and private.json()["value"] == []
