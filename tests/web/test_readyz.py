"""`/readyz` names what is wrong, and turns green again once it is not (issue 10).

The journal is made unwritable with SQLite's real SQLITE_FULL by capping its size on the
writer's connection (see tests/store/test_journal.py); tests/web/test_diskfull.py does
it with a real full filesystem under a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailsignal.keyring import create_secret
from mailsignal.model import TokenKind
from mailsignal.settings import Settings
from mailsignal.web.app import create_app
from mailsignal.web.track import GIF, Tracker

BIG = {"accept": "x" * 6000}  # a row bigger than a page: it needs pages the cap refuses


def _app(tmp_path: Path, **extra: Any) -> Tracker:
    create_secret(tmp_path / "secret.key")
    return create_app(Settings(data_dir=tmp_path, base_url="http://track.test", **extra))


def _cap(app: Tracker, full: bool) -> None:
    conn = app.journal._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0] if full else 1 << 30
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _ready(client: TestClient, seconds: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while (r := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.05)
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Tracker]:
    tracker = _app(tmp_path)
    yield tracker
    tracker.journal.close()


def test_ready_when_the_journal_and_the_database_are(app: Tracker) -> None:
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["status"] == "ready" and r.json()["journal"]["writable"] is True
        assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("spool", "buffer_max", "codes"),
    [
        (False, 100, ["journal_unwritable", "hits_in_memory"]),
        (True, 100, ["journal_unwritable", "spool_in_use"]),
        (False, 0, ["journal_unwritable", "hits_lost"]),
    ],
    ids=["memory", "spool", "lost"],
)
def test_red_while_hits_wait_or_were_lost_then_green(
    tmp_path: Path, spool: bool, buffer_max: int, codes: list[str]
) -> None:
    app = _app(
        tmp_path,
        journal_spool_dir=tmp_path / "spool" if spool else None,
        journal_buffer_max=buffer_max,
    )
    token = app.signer.sign(TokenKind.OPEN, 7)
    with TestClient(app) as client:
        _cap(app, full=True)
        assert client.get(f"/o/{token}.gif", headers=BIG).content == GIF
        r = client.get("/readyz")
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "not_ready"
        assert [p["code"] for p in error["problems"]] == codes
        assert "the hit journal cannot be written" in error["message"]
        assert client.get("/healthz").status_code == 200, "liveness is not readiness"

        _cap(app, full=False)
        body = _ready(client)
        lost = body["journal"]["lost"]
        assert body["status"] == "ready"
        assert body.get("warnings", []) == (
            [{"code": "hits_lost", "message": "1 hits were lost since this process started"}]
            if lost
            else []
        )
    app.journal.close()
    assert lost == (1 if "hits_lost" in codes else 0)


def test_red_while_the_database_is_unreachable(tmp_path: Path) -> None:
    # nothing listens on port 9: the connection is refused at once
    app = _app(tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    with TestClient(app) as client:
        r = client.get("/readyz")
    app.journal.close()
    assert r.status_code == 503
    assert [p["code"] for p in r.json()["error"]["problems"]] == ["store_unavailable"]
    assert "127.0.0.1" not in r.text, "no connection details to the public"
