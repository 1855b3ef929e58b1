"""The store's FetchXML catalog (store/catalog.py): every column of the logical tables
is an attribute, of the kind its column type says."""

from __future__ import annotations

import uuid

import pytest

from mailsignal.store import schema
from mailsignal.store.catalog import CATALOG

SETS = {
    "email": "emails",
    "interactionforemail": "interactionforemails",
    "contact": "contacts",
    "lead": "leads",
    "account": "accounts",
    "systemuser": "systemusers",
    "usersettings": "usersettingscollection",
    "organization": "organizations",
}


def test_entities_and_their_sets() -> None:
    assert {name: e.entity_set for name, e in CATALOG.entities.items()} == SETS
    for name, entity_set in SETS.items():
        assert CATALOG.entity_set(entity_set) is CATALOG.entity(name)
    assert CATALOG.entity("apikey") is None  # tables Dataverse has no entity for


@pytest.mark.parametrize("name", sorted(SETS))
def test_attributes_are_the_table_columns(name: str) -> None:
    info = CATALOG.entities[name]
    assert info.table is schema.metadata.tables[name]
    hidden = {"systemuser": {"passwordhash"}, "interactionforemail": {"ownerid"}}.get(name, set())
    assert info.attributes == tuple(c.name for c in info.table.columns if c.name not in hidden)
    assert info.primary_key in info.attributes
    assert info.primary_name is None or info.primary_name in info.attributes
    for column, targets in info.lookups.items():
        assert column in info.attributes and all(CATALOG.entity(t) for t in targets)


@pytest.mark.parametrize(
    ("entity", "name", "kind", "dotnet", "bits"),
    [
        ("email", "activityid", "uuid", "System.Guid", 0),
        ("email", "subject", "string", "System.String", 0),
        ("email", "directioncode", "bool", "System.Boolean", 0),
        ("email", "senton", "datetime", "System.DateTime", 0),  # UtcDateTime
        ("email", "opencount", "int", "System.Int32", 32),
        ("interactionforemail", "deliveryid", "int", "System.Int64", 64),
        ("contact", "engagementscore", "float", "System.Double", 0),
        ("interactionforemail", "reasons", "json", "System.Object", 0),
    ],
)
def test_column_types_map_to_kinds(
    entity: str, name: str, kind: str, dotnet: str, bits: int
) -> None:
    info = CATALOG.entities[entity].attribute(name)
    assert info is not None
    assert (info.entity, info.name, info.kind, info.dotnet, info.int_bits) == (
        entity,
        name,
        kind,
        dotnet,
        bits,
    )


def test_row_rules() -> None:
    owners = {name: e.owner for name, e in CATALOG.entities.items()}
    assert owners == {
        "email": "owner",
        "interactionforemail": "owned-email",
        "contact": "everyone",
        "lead": "everyone",
        "account": "everyone",
        "systemuser": "self",
        "usersettings": "self",
        "organization": "everyone",
    }


def test_a_password_hash_is_not_an_attribute() -> None:
    """No query reads a password hash: not by name, not through all-attributes (#12)."""
    from mailsignal.errors import FetchXmlQueryError
    from mailsignal.fetchxml import Caller
    from mailsignal.store.fetch import compile_xml

    admin = Caller(uuid.uuid4(), True, "UTC")
    every = compile_xml(
        '<fetch><entity name="systemuser"><all-attributes/></entity></fetch>',
        admin,
        dialect_name="sqlite",
    )
    assert "passwordhash" not in every.columns and "fullname" in every.columns
    with pytest.raises(FetchXmlQueryError):
        compile_xml(
            '<fetch><entity name="systemuser"><attribute name="passwordhash"/></entity></fetch>',
            admin,
            dialect_name="sqlite",
        )
