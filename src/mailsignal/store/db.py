"""Engines and migrations: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError

from ..engagement import half_power
from ..errors import ConfigError, StoreError
from .bounds import Watchdog

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while ingest writes; FULL makes each commit survive power loss.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # 64 MiB of page cache (the default is 2 MiB): the event indexes of a busy instance
    # stay in memory while ingest appends to them.
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()
    # Score aging in SQL (store/scores.py) calls engagement's own decay; PostgreSQL's
    # power() is the same C pow() Python's `**` calls, so both backends agree with it.
    dbapi_conn.create_function("ms_half_power", 2, half_power, deterministic=True)


class RawJson(str):
    """JSON text already written by `json_text`: a JSON column stores it as it is.

    Thousands of events a batch share a few hundred distinct classifications; their
    reasons are serialised once each (`json_text`) rather than once per row.
    """

    __slots__ = ()


def json_text(value: Any) -> RawJson:
    """`value` serialised as every JSON column is (see `json_dumps`)."""
    return RawJson(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())


def json_dumps(value: Any) -> str:
    """JSON columns' serialiser: orjson, about ten times the stdlib's speed on the facts and
    reasons every event carries (a fifth of ingest time went to json.dumps)."""
    if type(value) is RawJson:
        return str.__str__(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# Seconds to wait for PostgreSQL to accept a connection unless the URL sets
# `connect_timeout`: a server that does not answer becomes a 503, not a hung request.
CONNECT_TIMEOUT = 5
# Past its statement timeout, how long a web connection may stay out before the watchdog
# cuts it: time for the server's own timeout to arrive, and for the rest of the request.
WATCHDOG_GRACE = 5.0


def make_engine(url: str, *, serve_seconds: float | None = None, **kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL with MailSignal's connection settings.

    Errors never carry bound parameters (`hide_parameters`): they are logged, and the
    values are people's addresses and message ids. A new SQLite file is created 0600 (and
    its directory 0700); its -wal and -shm files inherit the mode.

    `serve_seconds` is for the web server's engine: on PostgreSQL each statement gets that
    `statement_timeout`, a pooled connection is waited for that long at most, and a
    connection held longer than that plus `WATCHDOG_GRACE` is cut (bounds.Watchdog), so a
    stopped or frozen server costs a request a 503 within a bound, never a hang.
    """
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            _create_private(Path(path))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        if "+psycopg" not in url.split("://", 1)[0]:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        args = kwargs.setdefault("connect_args", {})
        query = make_url(url).query
        if "connect_timeout" not in query:
            args.setdefault("connect_timeout", CONNECT_TIMEOUT)
        if serve_seconds is None:
            kwargs.setdefault("pool_pre_ping", True)
            engine = create_engine(url, **kwargs)
        else:
            options = " ".join(
                filter(None, [str(query.get("options", "")), args.get("options", "")])
            )
            args["options"] = f"{options} -c statement_timeout={int(serve_seconds * 1000)}".strip()
            kwargs.setdefault("pool_timeout", serve_seconds)
            engine = create_engine(url, **kwargs)
            _watch_checkouts(engine, Watchdog(serve_seconds + WATCHDOG_GRACE))
        event.listen(engine, "connect", _pg_session)
        return engine
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://")


def _create_private(path: Path) -> None:
    """Create the SQLite file and its directory for this user only (0600 / 0700); ones
    that exist already keep the mode their owner gave them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    """A query keeps running after its client died until PostgreSQL next writes to it;
    from version 14 the server checks the socket every second while it works instead,
    so a killed server process frees its queries' CPU at once."""
    if dbapi_conn.info.server_version >= 140000:
        dbapi_conn.execute("SET client_connection_check_interval = 1000")
        dbapi_conn.commit()


def _watch_checkouts(engine: Engine, watchdog: Watchdog) -> None:
    """Arm the watchdog while a connection is out of the pool, pinging it first under the
    watchdog (pool_pre_ping's own ping could wait forever on a stopped server)."""

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        watchdog.arm(dbapi_conn)
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # the pool replaces the connection with a fresh one
            watchdog.disarm(dbapi_conn)
            raise DisconnectionError(str(exc)) from exc

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            watchdog.disarm(dbapi_conn)

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a deferred transaction that reads and then writes fails with SQLITE_BUSY,
    rather than waiting, when another process committed in between."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent), then refresh SQLite's
    planner statistics."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {exc}") from exc
    analyze(engine)


def analyze(engine: Engine) -> None:
    """Refresh SQLite's planner statistics, sampled (`analysis_limit`: milliseconds on a
    10M-event file). Without them SQLite guesses that `ownerid = ?` finds ten rows and
    reads a rep's every event to show the newest fifty (1.3 s vs 4 ms at 10M events,
    bench/ui.py). `migrate` runs it, and the ingest worker's hourly sweep keeps it
    current as the tables grow. PostgreSQL's autovacuum does this by itself."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")


def is_initialised(engine: Engine) -> bool:
    try:
        return inspect(engine).has_table("alembic_version")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the database: {exc}") from exc


def ping(engine: Engine) -> None:
    """One cheap round trip (`SELECT 1`), for readiness checks."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the database: {exc}") from exc
