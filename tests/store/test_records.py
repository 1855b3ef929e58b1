"""Single records for the Web API (store/records.py): read, create, update, and the
display names of looked-up records."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from mailsignal.errors import InputError, NotFoundError
from mailsignal.store import parties, records, users
from mailsignal.store.catalog import CATALOG

CONTACT = CATALOG.entities["contact"]
ACCOUNT = CATALOG.entities["account"]
SETTINGS = CATALOG.entities["usersettings"]


def test_get_create_and_update(engine: Engine) -> None:
    new = uuid.uuid4()
    with engine.begin() as conn:
        assert records.get(conn, CONTACT, new) is None
        records.create(conn, CONTACT, new, {"emailaddress1": "dana@contoso.test"})
        row = records.get(conn, CONTACT, new)
        assert row is not None
        assert (row["contactid"], row["fullname"], row["emailaddress1"]) == (
            new,
            None,  # null unless given, as Dataverse leaves it (#11, C.11)
            "dana@contoso.test",
        )
        blank = uuid.uuid4()
        records.create(conn, CONTACT, blank, {"fullname": "  "})
        assert (records.get(conn, CONTACT, blank) or {})["fullname"] is None
        account = uuid.uuid4()
        records.create(conn, ACCOUNT, account, {"name": "Contoso"})
        created = records.get(conn, ACCOUNT, account)
        assert created is not None and created["name"] == "Contoso"
    time.sleep(0.01)
    with engine.begin() as conn:
        records.update_columns(conn, CONTACT, new, {"fullname": "Dana Fischer"})
        after = records.get(conn, CONTACT, new)
    assert after is not None and after["fullname"] == "Dana Fischer"
    assert after["modifiedon"] > row["modifiedon"]  # stamped by the store


def test_update_stamps_only_where_there_is_a_stamp(engine: Engine) -> None:
    with engine.begin() as conn:
        user = users.add(conn, "Rep", "rep@x.test")
        records.update_columns(conn, SETTINGS, user, {"timezonename": "Europe/Berlin"})
        row = records.get(conn, SETTINGS, user)
    assert row is not None and row["timezonename"] == "Europe/Berlin"


def test_display_names(engine: Engine) -> None:
    with engine.begin() as conn:
        contact = parties.add(conn, "contact", "Dana Fischer", "dana@contoso.test")
        account = parties.add(conn, "account", "Contoso", None)
        user = users.add(conn, "Lee Rep", "lee@x.test")
        names = records.display_names(
            conn,
            {
                ("contact", contact),
                ("account", account),
                ("systemuser", user),
                ("usersettings", user),  # no primary name: left out
                ("lead", uuid.uuid4()),  # no such record: left out
                ("nosuchentity", uuid.uuid4()),
            },
        )
        assert records.display_names(conn, set()) == {}
    assert names == {contact: "Dana Fischer", account: "Contoso", user: "Lee Rep"}


# --- values a column cannot hold: refused alike on both backends (#10) ----------------------


def _count(engine: Engine) -> int:
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(CONTACT.table)).scalar_one())


@pytest.mark.parametrize(
    ("entity", "values", "reason"),
    [
        (CONTACT, {"fullname": "x" * 201}, "length"),
        (CONTACT, {"fullname": "a\x00b"}, "nul"),
        (CONTACT, {"emailaddress1": "dana\ud800@contoso.test"}, "surrogate"),
        (SETTINGS, {"timezonename": None}, "null"),
        (SETTINGS, {"timezonecode": 2**31}, "range"),
        (SETTINGS, {"timezonecode": -(2**31) - 1}, "range"),
        (SETTINGS, {"timezonecode": 10**5000}, "range"),
    ],
)
def test_values_that_do_not_fit_are_an_input_error(
    engine: Engine, entity: Any, values: dict[str, Any], reason: str
) -> None:
    """SQLite kept each of these (or raised OverflowError); PostgreSQL raised a DataError:
    a 500 either way, and a difference between the backends."""
    with engine.begin() as conn:
        user = users.add(conn, "Rep", "rep@x.test")
    record = user if entity is SETTINGS else uuid.uuid4()
    before = _count(engine)
    with pytest.raises(InputError) as refused, engine.begin() as conn:
        if entity is SETTINGS:
            records.update_columns(conn, entity, record, values)
        else:
            records.create(conn, entity, record, values)
    assert refused.value.detail == {"field": next(iter(values)), "reason": reason}
    assert _count(engine) == before
    assert len(refused.value.message) < 200  # a 5,000-digit number is not repeated


def test_a_lookup_must_name_a_record(engine: Engine) -> None:
    """An unknown account in parentcustomerid broke the foreign key (IntegrityError)."""
    missing = uuid.uuid4()
    gone = f"account With Id = {missing} Does Not Exist"
    with pytest.raises(NotFoundError, match=gone), engine.begin() as conn:
        records.create(conn, CONTACT, uuid.uuid4(), {"parentcustomerid": missing})
    with engine.begin() as conn:
        account = parties.add(conn, "account", "Contoso", None)
        contact = uuid.uuid4()
        records.create(conn, CONTACT, contact, {"parentcustomerid": account})
        records.update_columns(conn, CONTACT, contact, {"parentcustomerid": None})
    assert _count(engine) == 1


def test_column_limits_are_the_schemas() -> None:
    from mailsignal.store import columns, schema

    assert columns.misfit(schema.email, {"subject": "x" * 800}) is None
    assert columns.misfit(schema.email, {"subject": "x" * 801}) is not None
    assert columns.misfit(schema.emaildelivery, {"deliveryid": 2**63 - 1}) is None  # BigInteger
    assert columns.misfit(schema.emaildelivery, {"deliveryid": 2**63}) is not None
    assert columns.misfit(schema.email, {"torecipients": "x" * 100_000}) is None  # Text
    assert columns.misfit(schema.email, {"noiseflag": True}) is None
