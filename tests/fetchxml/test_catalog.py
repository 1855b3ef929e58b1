"""The compiler knows only the catalog it is given (fetchxml is pure logic).

A toy catalog whose tables are not store.schema's: queries compile over its tables,
entities it lacks are unknown, and the row-level rule of an "owned-email" entity reads
the catalog's own email table.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid
from sqlalchemy.dialects import sqlite

from mailsignal.errors import FetchXmlQueryError
from mailsignal.fetchxml import AttributeInfo, Caller, Catalog, EntityInfo, compile_fetch, parse
from mailsignal.fetchxml.catalog import DOTNET

NOW = datetime(2026, 3, 11, 12, 30, tzinfo=UTC)
REP = Caller(uuid.UUID(int=7), is_admin=False)
_meta = MetaData()
MAIL = Table(
    "mail_archive",
    _meta,
    Column("activityid", Uuid, primary_key=True),
    Column("subject", String),
    Column("ownerid", Uuid),
)
HITS = Table(
    "hits",
    _meta,
    Column("interactionforemailid", Uuid, primary_key=True),
    Column("emailactivityid", Uuid),
    Column("interactiontype", Integer),
)


def _columns(entity: str, kinds: dict[str, str]) -> dict[str, AttributeInfo]:
    return {
        name: AttributeInfo(entity, name, kind, DOTNET[kind])  # type: ignore[arg-type]
        for name, kind in kinds.items()
    }


TOY = Catalog(
    (
        EntityInfo(
            "email",
            MAIL,
            "emails",
            "activityid",
            "subject",
            "owner",
            _columns("email", {"activityid": "uuid", "subject": "string", "ownerid": "uuid"}),
        ),
        EntityInfo(
            "interactionforemail",
            HITS,
            "interactionforemails",
            "interactionforemailid",
            None,
            "owned-email",
            _columns(
                "interactionforemail",
                {
                    "interactionforemailid": "uuid",
                    "emailactivityid": "uuid",
                    "interactiontype": "int",
                },
            ),
        ),
    )
)


def sql(xml: str, caller: Caller = REP, catalog: Catalog = TOY) -> str:
    compiled = compile_fetch(parse(xml), caller, catalog, now=NOW, dialect_name="sqlite")
    return str(compiled.select.compile(dialect=sqlite.dialect()))


def test_catalog_finds_entities_by_name_and_by_set() -> None:
    assert TOY.entity("email") is TOY.entity_set("emails")
    assert TOY.entity("emails") is None and TOY.entity_set("email") is None
    assert set(TOY.entities) == {"email", "interactionforemail"}


def test_queries_compile_over_the_given_tables() -> None:
    text = sql('<fetch><entity name="email"><attribute name="subject"/></entity></fetch>')
    assert "FROM mail_archive AS t0" in text
    assert "t0.ownerid = ?" in text  # the rep's rule on the catalog's table


def test_owned_email_rule_reads_the_catalogs_email_table() -> None:
    text = sql('<fetch><entity name="interactionforemail"><all-attributes/></entity></fetch>')
    assert "FROM hits AS t0" in text
    assert "t0.emailactivityid IN (SELECT mail_archive.activityid" in text
    assert "FROM email" not in text


def test_owned_email_needs_an_email_entity() -> None:
    (hits,) = (e for e in TOY.entities.values() if e.name == "interactionforemail")
    with pytest.raises(ValueError, match="no email entity"):
        sql('<fetch><entity name="interactionforemail"/></fetch>', catalog=Catalog([hits]))


def test_entities_outside_the_catalog_are_unknown() -> None:
    with pytest.raises(FetchXmlQueryError) as caught:
        sql('<fetch><entity name="contact"/></fetch>')
    assert caught.value.error_code == "0x80041102"
    with pytest.raises(FetchXmlQueryError) as caught:
        sql(
            '<fetch><entity name="email"><link-entity name="contact" from="contactid" '
            'to="activityid"/></entity></fetch>'
        )
    assert caught.value.error_code == "0x80041102"


def test_an_admin_reads_without_a_rule() -> None:
    admin = Caller(uuid.UUID(int=1), is_admin=True)
    assert "WHERE" not in sql('<fetch><entity name="interactionforemail"/></fetch>', admin)
