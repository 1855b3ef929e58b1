"""Engines (store/db.py): errors carry no bound values, a new SQLite database is private,
and PostgreSQL connections are bounded (issue #10)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from mailsignal.store import users
from mailsignal.store.db import CONNECT_TIMEOUT, make_engine
from mailsignal.store.schema import systemuser


def test_errors_do_not_carry_bound_values(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    with engine.begin() as conn:
        existing = users.add(conn, "Dana", "dana.private@contoso.test")
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    engine.echo = True  # log every statement, as a debugging operator would
    try:
        with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
            conn.execute(
                insert(systemuser).values(
                    systemuserid=existing,
                    fullname="Dana Again",
                    internalemailaddress="dana.private@contoso.test",
                )
            )
    finally:
        engine.echo = False
    assert "parameters hidden" in str(raised.value)
    for text in (str(raised.value), caplog.text):
        assert "dana.private@contoso.test" not in text
        assert "Dana Again" not in text


def test_a_new_sqlite_database_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh' / 'mailsignal.db'}")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
        engine.dispose()
    finally:
        os.umask(old)
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700
    for name in ("mailsignal.db", "mailsignal.db-wal", "mailsignal.db-shm"):
        path = tmp_path / "fresh" / name
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, name


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_connections_time_out(db_url: str) -> None:
    bare = db_url.split("?", 1)[0]
    engine = make_engine(bare)
    served = make_engine(bare, serve_seconds=2.5)
    try:
        with engine.connect() as conn:
            parameters = conn.connection.driver_connection.info.get_parameters()
            assert parameters["connect_timeout"] == str(CONNECT_TIMEOUT)
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        with served.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2500ms"
            if conn.connection.driver_connection.info.server_version >= 140000:
                interval = conn.exec_driver_sql("SHOW client_connection_check_interval")
                assert interval.scalar() == "1s"
    finally:
        served.dispose()
        engine.dispose()


def test_migrate_leaves_sqlite_planner_statistics(engine: Engine) -> None:
    """SQLite plans by guesses without `sqlite_stat1`; migrate (and the worker's hourly
    sweep) ANALYZE, sampled, so the panel's feed reads an owner's newest events by index
    (bench/ui.py: 1.3 s without, milliseconds with)."""
    from mailsignal.store.db import analyze

    if engine.dialect.name != "sqlite":
        analyze(engine)  # nothing to do: autovacuum keeps PostgreSQL's
        return
    with engine.begin() as conn:
        users.add(conn, "Rep", "rep@x.test")
    analyze(engine)
    with engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1")}
    assert "systemuser" in tables
