"""`mailsignal init` and `serve` (cli/server.py), run for real: the data directory and
database are private (0700 / 0600), and `serve` stops on SIGTERM within 5 s even while
a runaway query holds a worker, leaving no query behind in PostgreSQL (issue #10)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url

from conftest import LiveServer, cli
from helpers import throwaway_certificate
from runaway import RUNAWAY, pg_active, served, wait_until, worker_pids


def test_init_makes_the_data_dir_and_database_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    server = LiveServer(data)
    old = os.umask(0o022)  # the common default, under which both used to be world-readable
    try:
        result = cli(server.env, "init")
    finally:
        os.umask(old)
    assert "warning" not in result.stderr
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("mailsignal.db", "mailsignal.db-wal", "mailsignal.db-shm", "secret.key"):
        if (data / name).exists():
            assert (data / name).stat().st_mode & 0o777 == 0o600, name
    assert (data / "mailsignal.db").exists()


def test_init_warns_about_an_open_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    result = cli(LiveServer(data).env, "init")
    assert "open to other users (mode 755)" in result.stderr
    assert (data / "mailsignal.db").stat().st_mode & 0o777 == 0o600


def test_sigterm_stops_serve_during_a_runaway_query(tmp_path: Path, db_url: str) -> None:
    server, key = served(tmp_path / "data", db_url, query_timeout_seconds="120")
    assert server.proc is not None
    pid = server.proc.pid
    assert worker_pids(pid)
    database = str(make_url(db_url).database)
    admin = create_engine(db_url) if db_url.startswith("postgresql") else None

    def ask() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server goes away under it
            httpx.get(
                f"{server.url}/api/data/v9.2/interactionforemails",
                params={"fetchXml": RUNAWAY},
                headers={"authorization": f"Bearer {key}"},
                timeout=60,
            )

    asking = threading.Thread(target=ask, daemon=True)
    try:
        asking.start()
        if admin is not None:
            wait_until(lambda: bool(pg_active(admin, database)), 10, "the query runs")
        else:
            time.sleep(1.5)  # SQLite runs it in the worker: give it time to get going
        start = time.monotonic()
        os.kill(pid, signal.SIGTERM)  # the server process only, as a service manager does
        server.proc.wait(10)
        took = time.monotonic() - start
        assert took < 5, took
        print(f"serve exited {took:.2f} s after SIGTERM during the runaway query")  # pytest -s
        # Its granian workers and ingest worker went with it (serve runs in its own group).
        wait_until(lambda: _group_gone(pid), 2, "every serve process exits")
        if admin is not None:
            # PostgreSQL notices the dead client within a second or two and stops.
            wait_until(lambda: not pg_active(admin, database), 5, "the query is gone")
    finally:
        server.kill(9)
        if admin is not None:
            admin.dispose()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_serve_refuses_a_tls_setting_it_cannot_use(tmp_path: Path) -> None:
    """`tls_cert` without `tls_key`, a key others can read, or a pair that does not
    match: `serve` says which, and never starts serving plain http instead."""
    server = LiveServer(tmp_path / "data")
    cli(server.env, "init")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, key = throwaway_certificate(tmp_path / "a")
    _, other_key = throwaway_certificate(tmp_path / "b")
    open_key = tmp_path / "open.pem"
    open_key.write_bytes(key.read_bytes())
    open_key.chmod(0o644)
    cases = [
        ({"MAILSIGNAL_TLS_CERT": str(cert)}, "needs both tls_cert and tls_key"),
        ({"MAILSIGNAL_TLS_CERT": str(cert), "MAILSIGNAL_TLS_KEY": str(open_key)}, "chmod 600"),
        (
            {"MAILSIGNAL_TLS_CERT": str(cert), "MAILSIGNAL_TLS_KEY": str(other_key)},
            "are not a certificate and its key",
        ),
        (
            {"MAILSIGNAL_TLS_CERT": str(tmp_path / "none.pem"), "MAILSIGNAL_TLS_KEY": str(key)},
            "does not exist",
        ),
    ]
    for env, message in cases:
        result = cli({**server.env, **env}, "serve", "--no-ingest", check=False)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
