"""Users and API keys in the store, on SQLite and PostgreSQL: keys that can be listed and
revoked, users that can be disabled (never the last admin), sessions that notice, and a
key's last use written at most every few minutes and never waited for."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from helpers import add_rep
from mailsignal.errors import AuthError, InputError, NotFoundError
from mailsignal.store import users
from mailsignal.store.db import writing
from mailsignal.store.schema import apikey, utcnow


@pytest.fixture
def people(engine: Engine) -> dict[str, uuid.UUID]:
    with engine.begin() as conn:
        return {
            "rep": add_rep(conn),
            "admin": add_rep(conn, "admin@northwind.test", role="admin"),
        }


def _last_used(engine: Engine, key: str) -> object:
    with engine.connect() as conn:
        return conn.execute(
            select(apikey.c.lastusedon).where(apikey.c.prefix == users.key_prefix(key))
        ).scalar_one()


def test_keys_are_listed_without_secrets_and_revoked_for_good(
    engine: Engine, people: dict[str, uuid.UUID]
) -> None:
    with engine.begin() as conn:
        first = users.create_api_key(conn, people["rep"], "outlook")
        second = users.create_api_key(conn, people["rep"], "crm")
        theirs = users.create_api_key(conn, people["admin"])
    assert users.authenticate(engine, first)["systemuserid"] == people["rep"]
    with engine.begin() as conn:
        listed = users.list_api_keys(conn, people["rep"])
        assert [k["name"] for k in listed] == ["outlook", "crm"]
        assert set(listed[0]) == {"prefix", "name", "createdon", "lastusedon", "revokedon"}
        assert listed[0]["prefix"] == users.key_prefix(first)
        assert listed[0]["lastusedon"] is not None and listed[1]["lastusedon"] is None
        # Only the owner's keys with `user_id`; a second revocation changes nothing.
        prefix = users.key_prefix(theirs)
        assert users.revoke_api_keys(conn, [prefix], user_id=people["rep"]) == 0
        assert users.revoke_api_keys(conn, [users.key_prefix(first)]) == 1
        assert users.revoke_api_keys(conn, [users.key_prefix(first)]) == 0
        revoked_on = users.list_api_keys(conn, people["rep"])[0]["revokedon"]
        assert revoked_on is not None
        assert users.api_key_owner(conn, prefix) == people["admin"]
        assert users.api_key_owner(conn, "000000000000") is None
    with pytest.raises(AuthError, match="revoked"):
        users.authenticate(engine, first)
    users.authenticate(engine, second)
    with engine.begin() as conn:
        assert users.revoke_all_api_keys(conn, people["rep"]) == 1
        assert users.list_api_keys(conn, people["rep"])[0]["revokedon"] == revoked_on
    with pytest.raises(AuthError):
        users.authenticate(engine, second)
    users.authenticate(engine, theirs)


@pytest.mark.parametrize("bad", ["", "msk", "msk__x", "nope_abc_def", "Bearer msk_x"])
def test_malformed_keys_are_refused(engine: Engine, bad: str) -> None:
    with pytest.raises(AuthError):
        users.authenticate(engine, bad)


def test_a_disabled_user_is_refused_everywhere_at_once(
    engine: Engine, people: dict[str, uuid.UUID]
) -> None:
    with engine.begin() as conn:
        key = users.create_api_key(conn, people["rep"])
    with writing(engine) as conn:
        user = users.set_disabled(conn, people["rep"], True, by=people["admin"])
        assert user["isdisabled"] is True
        assert users.set_disabled(conn, people["rep"], True)["isdisabled"]  # idempotent
    with pytest.raises(AuthError, match="disabled"):
        users.authenticate(engine, key)
    with engine.connect() as conn, pytest.raises(AuthError, match="disabled"):
        users.session_user(conn, people["rep"])
    with writing(engine) as conn:
        assert users.set_disabled(conn, people["rep"], False)["isdisabled"] is False
        assert users.by_id(conn, people["rep"])["isdisabled"] is False
    assert users.authenticate(engine, key)["systemuserid"] == people["rep"]


def test_session_user_checks_the_key_too(engine: Engine, people: dict[str, uuid.UUID]) -> None:
    with engine.begin() as conn:
        key = users.create_api_key(conn, people["rep"])
        other = users.create_api_key(conn, people["admin"])
    prefix = users.key_prefix(key)
    with engine.connect() as conn:
        assert users.session_user(conn, people["rep"], prefix)["systemuserid"] == people["rep"]
        with pytest.raises(AuthError, match="revoked"):  # not the user's key
            users.session_user(conn, people["rep"], users.key_prefix(other))
        with pytest.raises(AuthError):
            users.session_user(conn, uuid.uuid4())
    with engine.begin() as conn:
        users.revoke_api_keys(conn, [prefix])
    with engine.connect() as conn, pytest.raises(AuthError, match="revoked"):
        users.session_user(conn, people["rep"], prefix)


def test_no_one_disables_themselves_or_the_last_admin(
    engine: Engine, people: dict[str, uuid.UUID]
) -> None:
    with writing(engine) as conn:
        with pytest.raises(InputError, match="yourself"):
            users.set_disabled(conn, people["admin"], True, by=people["admin"])
        with pytest.raises(InputError, match="last enabled admin"):
            users.set_disabled(conn, people["admin"], True)
        with pytest.raises(NotFoundError):
            users.set_disabled(conn, uuid.uuid4(), True)
        second = add_rep(conn, "ops@northwind.test", role="admin")
    with writing(engine) as conn:
        users.set_disabled(conn, second, True, by=people["admin"])
    with writing(engine) as conn, pytest.raises(InputError, match="last enabled admin"):
        users.set_disabled(conn, people["admin"], True)
    with writing(engine) as conn:  # a rep is no admin: disabling them is always allowed
        users.set_disabled(conn, people["rep"], True, by=people["admin"])


def test_last_use_is_written_at_most_every_few_minutes(
    engine: Engine, people: dict[str, uuid.UUID]
) -> None:
    with engine.begin() as conn:
        key = users.create_api_key(conn, people["rep"])
    start = utcnow()
    users.authenticate(engine, key, now=start)
    assert _last_used(engine, key) == start
    users.authenticate(engine, key, now=start + users.LAST_USED_EVERY - timedelta(seconds=1))
    assert _last_used(engine, key) == start  # not written again
    later = start + users.LAST_USED_EVERY + timedelta(seconds=1)
    users.authenticate(engine, key, now=later)
    assert _last_used(engine, key) == later


@pytest.fixture
def held_lock(engine: Engine, db_url: str) -> Iterator[None]:
    """Another connection holds what stamping a key's last use would need: SQLite's
    write lock (BEGIN IMMEDIATE, as ingest and the relay take it), or on PostgreSQL the
    apikey rows (SELECT ... FOR UPDATE, as a revocation in progress holds them)."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
        holder.close()
        return
    with engine.connect() as holder:
        holder.execute(select(apikey).with_for_update())
        yield
        holder.rollback()


def test_a_read_never_waits_for_the_last_use_stamp(
    engine: Engine, people: dict[str, uuid.UUID], request: pytest.FixtureRequest
) -> None:
    with engine.begin() as conn:
        key = users.create_api_key(conn, people["rep"])
    waits = _busy_timeout(engine)
    request.getfixturevalue("held_lock")
    started = time.monotonic()
    assert users.authenticate(engine, key)["systemuserid"] == people["rep"]
    assert time.monotonic() - started < 5  # SQLite's busy timeout is 10 s
    assert _last_used(engine, key) is None  # skipped, not waited for
    assert _busy_timeout(engine) == waits  # the pooled connection waits as before


def _busy_timeout(engine: Engine) -> object:
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return None
        return conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
