"""Issue #10: one rep's query cannot pin a core. The runaway query (two outer self-joins
over 2,000 events) is stopped within `query_timeout_seconds` on the Web API and REST,
with Dataverse's error; a client that leaves cancels it; a user may run only
`max_queries_per_user` at once; a locked, stopped or silent PostgreSQL answers 503 within
a bound instead of hanging the request. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from starlette.testclient import TestClient

from helpers import add_rep
from mailsignal import views
from mailsignal.keyring import create_secret
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.web.app import create_app
from mailsignal.web.queries import slot_dir
from runaway import RUNAWAY, cpu_seconds, pg_active, seed, served, wait_until, worker_pids

BASE = "/api/data/v9.2"
SIMPLE = '<fetch><entity name="email"><attribute name="subject"/></entity></fetch>'


def _bounded(settings: Settings, **changes: Any) -> Settings:
    fields = {"data_dir": settings.data_dir, "database_url": settings.database_url}
    return Settings(base_url="http://track.test", **fields, **changes)


@pytest.fixture
def keys(engine: Engine, settings: Settings) -> dict[str, str]:
    with engine.begin() as conn:
        rep = add_rep(conn)
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        found = {"rep": users.create_api_key(conn, rep), "admin": users.create_api_key(conn, admin)}
    seed(engine, settings.secret_file)
    views.add(settings.data_dir, "runaway", RUNAWAY)
    return found


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "accept": "application/json"}


def _active(db_url: str) -> list[str]:
    """Runaway queries running in the test database (PostgreSQL); SQLite runs none out of
    sight."""
    if not db_url.startswith("postgresql"):
        return []
    admin = create_engine(db_url)
    try:
        return pg_active(admin, str(make_url(db_url).database))
    finally:
        admin.dispose()


def test_runaway_query_is_stopped_within_the_bound(
    settings: Settings, keys: dict[str, str], db_url: str
) -> None:
    app = create_app(_bounded(settings, query_timeout_seconds=1))
    with TestClient(app) as client:
        start = time.monotonic()
        r = client.get(
            f"{BASE}/interactionforemails", params={"fetchXml": RUNAWAY}, headers=_auth(keys["rep"])
        )
        took = time.monotonic() - start
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "0x80044151"
        assert error["message"].startswith("SQL timeout expired")
        assert "query_timeout_seconds" in error["message"]
        assert took < 10, took
        print(f"runaway query, bound 1 s: answered 503 after {took:.2f} s")  # pytest -s
        # The database stopped too: nothing of the query is left running.
        assert _active(db_url) == []

        r = client.get("/api/v1/views/runaway/rows", headers=_auth(keys["rep"]))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "query_timeout"
        assert _active(db_url) == []

        # The connections are fine afterwards; an ordinary query answers.
        r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(keys["rep"]))
        assert r.status_code == 200, r.text
        assert len(r.json()["value"]) == 1


def _held_slots(folder: Path) -> int:
    """How many slot files are flock'ed now, read from /proc/locks (taking none)."""
    inodes = {str(p.stat().st_ino) for p in folder.glob("*")} if folder.is_dir() else set()
    held = 0
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "FLOCK" in parts and parts[-3].rsplit(":", 1)[-1] in inodes:
            held += 1
    return held


def test_a_user_runs_at_most_max_queries_per_user_at_once(
    settings: Settings, keys: dict[str, str]
) -> None:
    bounded = _bounded(settings, query_timeout_seconds=4, max_queries_per_user=2)
    app = create_app(bounded)
    answers: list[int] = []
    with TestClient(app) as client:

        def runaway() -> None:
            r = client.get(
                f"{BASE}/interactionforemails",
                params={"fetchXml": RUNAWAY},
                headers=_auth(keys["rep"]),
            )
            answers.append(r.status_code)

        running = [threading.Thread(target=runaway) for _ in range(2)]
        for thread in running:
            thread.start()
        wait_until(lambda: _held_slots(slot_dir(bounded)) == 2, 10, "two queries running")

        r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(keys["rep"]))
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "0x80072326"
        assert "exceeded the limit of 2" in r.json()["error"]["message"]
        assert r.headers["retry-after"] == "1"
        r = client.get("/api/v1/views/runaway/rows", headers=_auth(keys["rep"]))
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_queries"
        assert r.headers["retry-after"] == "1"
        # Another user is not held up by the rep's queries.
        r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(keys["admin"]))
        assert r.status_code == 200, r.text

        for thread in running:
            thread.join(30)
        assert answers == [503, 503]
        assert _held_slots(slot_dir(bounded)) == 0
        r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(keys["rep"]))
        assert r.status_code == 200, r.text


def test_a_client_that_leaves_cancels_its_query(tmp_path: Path, db_url: str) -> None:
    """Against a real server: the bound is a minute, so only the disconnect can stop it."""
    server, key = served(tmp_path / "data", db_url, query_timeout_seconds="60")
    try:
        assert server.proc is not None
        [worker] = worker_pids(server.proc.pid)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(
                f"{server.url}{BASE}/interactionforemails",
                params={"fetchXml": RUNAWAY},
                headers=_auth(key),
                timeout=1.5,
            )

        # The client is gone; within a few seconds the worker is idle again...
        def idle() -> bool:
            before = cpu_seconds(worker)
            time.sleep(0.5)
            return cpu_seconds(worker) - before < 0.1

        wait_until(idle, 5, "worker CPU released after the client left")
        # ... and so is the database.
        assert _active(db_url) == []
        r = httpx.get(f"{server.url}{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(key))
        assert r.status_code == 200, r.text
    finally:
        server.kill(15)


# --- PostgreSQL that does not answer -------------------------------------------------


# SQLite is a local file: these run on PostgreSQL only (the db_url fixture, narrowed).
POSTGRESQL_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def pg_only(db_url: str) -> str:
    assert db_url.startswith("postgresql")
    return db_url


@pytest.fixture
def lock_holder(pg_only: str) -> Iterator[Any]:
    """A connection of another program, free to take locks and hold them."""
    engine = create_engine(pg_only)
    conn = engine.connect()
    yield conn
    conn.rollback()
    conn.close()
    engine.dispose()


@POSTGRESQL_ONLY
def test_a_locked_table_answers_503_within_the_bound(
    settings: Settings, keys: dict[str, str], lock_holder: Any
) -> None:
    """A migration or an admin's open transaction holds a lock every request needs."""
    app = create_app(_bounded(settings, query_timeout_seconds=1))
    with TestClient(app) as client:
        lock_holder.execute(text("LOCK TABLE systemuser IN ACCESS EXCLUSIVE MODE"))
        start = time.monotonic()
        r = client.get("/api/v1/emails", headers=_auth(keys["rep"]))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "store_unavailable"
        r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth(keys["rep"]))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "0x80044150"  # a generic SQL error, never an empty code
        assert time.monotonic() - start < 10
        lock_holder.rollback()
        assert client.get("/api/v1/emails", headers=_auth(keys["rep"])).status_code == 200


def _backends(db_url: str, where: str = "true") -> list[int]:
    admin = create_engine(db_url)
    try:
        with admin.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :db "  # noqa: S608
                        f"AND pid <> pg_backend_pid() AND {where}"
                    ),
                    {"db": make_url(db_url).database},
                ).scalars()
            )
    finally:
        admin.dispose()


@POSTGRESQL_ONLY
def test_a_stopped_backend_answers_503_within_the_bound(
    settings: Settings, keys: dict[str, str], pg_only: str, lock_holder: Any
) -> None:
    """The server process serving a request freezes (SIGSTOP) while the request waits:
    its statement_timeout cannot fire, so the watchdog cuts the connection."""
    app = create_app(_bounded(settings, query_timeout_seconds=3))
    stopped: list[int] = []
    waiting = "wait_event_type = 'Lock'"
    try:
        with TestClient(app) as client:
            lock_holder.execute(text("LOCK TABLE email IN ACCESS EXCLUSIVE MODE"))
            answers: list[httpx.Response] = []
            request = threading.Thread(
                target=lambda: answers.append(
                    client.get("/api/v1/emails", headers=_auth(keys["rep"]))
                )
            )
            start = time.monotonic()
            request.start()
            wait_until(lambda: bool(_backends(pg_only, waiting)), 2, "the request waits")
            stopped = _backends(pg_only, waiting)
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            request.join(30)
            assert answers and answers[0].status_code == 503, answers
            assert answers[0].json()["error"]["code"] == "store_unavailable"
            assert time.monotonic() - start < 20  # the bound (3 s) + the watchdog's grace
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


@POSTGRESQL_ONLY
def test_a_stopped_pooled_connection_is_replaced(
    settings: Settings, keys: dict[str, str], pg_only: str, engine: Engine
) -> None:
    """An idle pooled connection whose backend froze: the ping on checkout is cut by the
    watchdog and the pool connects afresh, so the request is answered."""
    engine.dispose()  # only the app's own connections stay idle in the database
    app = create_app(_bounded(settings, query_timeout_seconds=1))
    stopped: list[int] = []
    try:
        with TestClient(app) as client:
            assert client.get("/api/v1/emails", headers=_auth(keys["rep"])).status_code == 200
            stopped = _backends(pg_only, "state = 'idle'")
            assert stopped
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            start = time.monotonic()
            assert client.get("/api/v1/emails", headers=_auth(keys["rep"])).status_code == 200
            assert time.monotonic() - start < 20  # a watchdog round (6 s) per stopped one
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def test_a_silent_server_answers_503_within_the_connect_timeout(tmp_path: Path) -> None:
    """A PostgreSQL that takes connections and never answers (its postmaster frozen)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads
    port = silent.getsockname()[1]
    create_secret(tmp_path / "secret.key")
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/mailsignal",
        base_url="http://track.test",
    )
    try:
        with TestClient(create_app(settings)) as client:
            start = time.monotonic()
            r = client.get("/api/v1/emails", headers=_auth("k" * 40))
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_unavailable"
            r = client.get(f"{BASE}/emails", params={"fetchXml": SIMPLE}, headers=_auth("k" * 40))
            assert r.status_code == 503, r.text
            assert time.monotonic() - start < 30  # two connects of 5 s (store.db)
    finally:
        silent.close()
