"""Running FetchXML (store/fetch.py): the caller of a stored user, and one page with its
cookie, total count and the SQLite date function, on SQLite and PostgreSQL; a query
stopped by its bound (store/bounds.py). The engine's semantics are tested case by case
in tests/fetchxml/."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, update

from helpers import add_rep
from mailsignal.errors import NotFoundError
from mailsignal.fetchxml import Caller
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.store.bounds import QueryBound, QueryCancelled, QueryTimeout
from mailsignal.store.fetch import compile_xml, execute, load_caller
from mailsignal.store.schema import usersettings
from runaway import RUNAWAY, pg_active, seed

ADMIN = Caller(uuid.UUID(int=0), is_admin=True)


def _two_users(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    with engine.begin() as conn:
        rep = users.add(conn, "Kiri Auckland", "kiri@x.test", timezone="Pacific/Auckland")
        admin = users.add(conn, "Avery Admin", "avery@x.test", role="admin")
    return rep, admin


def test_load_caller_reads_role_and_zone(engine: Engine) -> None:
    rep, admin = _two_users(engine)
    with engine.connect() as conn:
        assert load_caller(conn, rep) == Caller(rep, False, "Pacific/Auckland")
        assert load_caller(conn, admin) == Caller(admin, True, "UTC")
        with pytest.raises(NotFoundError, match="Does Not Exist"):
            load_caller(conn, uuid.UUID(int=9))


def test_pages_carry_a_cookie_and_the_total(engine: Engine) -> None:
    _two_users(engine)
    xml = (
        '<fetch count="1" returntotalrecordcount="true"><entity name="systemuser">'
        '<attribute name="fullname"/><order attribute="fullname"/></entity></fetch>'
    )
    with engine.connect() as conn:
        first = execute(conn, xml, ADMIN)
        assert [r["fullname"] for r in first.rows] == ["Avery Admin"]
        assert first.columns == ("fullname", "systemuserid")
        assert (first.entity, first.page, first.more_records) == ("systemuser", 1, True)
        assert (first.total_record_count, first.total_record_count_limit_exceeded) == (2, False)
        assert first.paging_cookie
        cookie = first.paging_cookie
        second = execute(
            conn, xml.replace("<fetch ", f'<fetch page="2" paging-cookie="{cookie}" '), ADMIN
        )
    assert [r["fullname"] for r in second.rows] == ["Kiri Auckland"]
    assert not second.more_records and second.paging_cookie is None


def test_date_grouping_runs_on_any_connection(engine: Engine) -> None:
    """On SQLite the date part is a Python function; execute installs it itself."""
    _two_users(engine)
    xml = (
        '<fetch aggregate="true"><entity name="systemuser">'
        '<attribute name="systemuserid" alias="n" aggregate="count"/>'
        '<attribute name="createdon" alias="y" groupby="true" dategrouping="year"/>'
        "</entity></fetch>"
    )
    engine.dispose()  # a fresh DBAPI connection, without the function
    with engine.connect() as conn:
        result = execute(conn, xml, ADMIN)
    assert result.rows == [{"n": 2, "y": datetime.now(UTC).year}]


def test_compile_xml_runs_nothing() -> None:
    compiled = compile_xml('<fetch><entity name="email"/></fetch>', ADMIN, dialect_name="sqlite")
    assert compiled.entity == "email" and not compiled.needs_sqlite_functions


# --- bounds (issue #10) ------------------------------------------------------------


def _rep_caller(engine: Engine, settings: Settings) -> Caller:
    with engine.begin() as conn:
        rep = add_rep(conn)
    seed(engine, settings.secret_file)
    with engine.connect() as conn:
        return load_caller(conn, rep)


def test_a_runaway_query_stops_at_its_bound(engine: Engine, settings: Settings) -> None:
    caller = _rep_caller(engine, settings)
    with engine.connect() as conn:
        start = time.monotonic()
        with pytest.raises(QueryTimeout, match="longer than 1 s"):
            execute(conn, RUNAWAY, caller, bound=QueryBound(1))
        assert time.monotonic() - start < 10
        if conn.dialect.name == "postgresql":
            # The server stopped it (statement_timeout): nothing is left running.
            assert pg_active(engine, str(engine.url.database)) == []
        conn.rollback()
        # The connection is usable again, unbounded, with SQLite's handler removed.
        result = execute(conn, '<fetch><entity name="email"/></fetch>', caller)
        assert len(result.rows) == 1


def test_cancel_stops_a_running_query_from_another_thread(
    engine: Engine, settings: Settings
) -> None:
    caller = _rep_caller(engine, settings)
    bound = QueryBound(60)
    with engine.connect() as conn:
        timer = threading.Timer(0.5, bound.cancel)
        timer.start()
        start = time.monotonic()
        with pytest.raises(QueryCancelled):
            execute(conn, RUNAWAY, caller, bound=bound)
        assert time.monotonic() - start < 10
        timer.join()
        if conn.dialect.name == "postgresql":
            assert pg_active(engine, str(engine.url.database)) == []
        conn.rollback()
        # A cancelled bound refuses to start another statement.
        with pytest.raises(QueryCancelled):
            execute(conn, '<fetch><entity name="email"/></fetch>', caller, bound=bound)


def test_an_unknown_stored_zone_counts_as_utc(engine: Engine) -> None:
    with engine.begin() as conn:
        rep = users.add(conn, "Mars Rep", "mars@x.test")
        conn.execute(
            update(usersettings)
            .where(usersettings.c.systemuserid == rep)
            .values(timezonename="Mars/Olympus_Mons")
        )
    with engine.connect() as conn:
        caller = load_caller(conn, rep)
        assert caller.time_zone == "UTC"
        assert execute(conn, '<fetch><entity name="email"/></fetch>', caller).rows == []


def test_an_entity_naming_no_attribute_returns_all_of_them() -> None:
    """Dataverse: no <attribute> on <entity> is the same as <all-attributes/> (#11); it
    returned only the primary key. A link-entity naming none still adds none."""
    admin = Caller(uuid.UUID(int=0), is_admin=True)
    bare = compile_xml('<fetch><entity name="contact"/></fetch>', admin, dialect_name="sqlite")
    every = compile_xml(
        '<fetch><entity name="contact"><all-attributes/></entity></fetch>',
        admin,
        dialect_name="sqlite",
    )
    assert bare.columns == every.columns and "fullname" in bare.columns
    linked = compile_xml(
        '<fetch><entity name="contact"><attribute name="fullname"/>'
        '<link-entity name="account" from="accountid" to="parentcustomerid" alias="a"/>'
        "</entity></fetch>",
        admin,
        dialect_name="sqlite",
    )
    assert not [c for c in linked.columns if c.startswith("a.")], linked.columns
