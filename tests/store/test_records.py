"""Single records for the Web API (store/records.py): read, create, update, and the
display names of looked-up records."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Engine

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
            "",  # the primary name is required; empty unless given
            "dana@contoso.test",
        )
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
