"""Engines and migrations: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..engagement import half_power
from ..errors import ConfigError, StoreError

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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL with MailSignal's connection settings."""
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        if "+psycopg" not in url.split("://", 1)[0]:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://")


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
    """Bring the schema to the newest migration (idempotent)."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {exc}") from exc


def is_initialised(engine: Engine) -> bool:
    try:
        return inspect(engine).has_table("alembic_version")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the database: {exc}") from exc
