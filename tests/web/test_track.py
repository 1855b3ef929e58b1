from __future__ import annotations

import sqlite3
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

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)


def _make(tmp_path: Path, **extra: object) -> Tracker:
    create_secret(tmp_path / "secret.key")
    settings = Settings(data_dir=tmp_path, base_url="http://track.test", **extra)  # type: ignore[arg-type]
    return create_app(settings)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Tracker]:
    tracker = _make(tmp_path)
    yield tracker
    tracker.journal.close()


def _rows(app: Tracker) -> list[tuple[object, ...]]:
    with sqlite3.connect(app.journal.path) as conn:
        return conn.execute(
            "SELECT kind, delivery, link, ip, ua, method, headers FROM hit"
        ).fetchall()


def test_pixel_records_then_answers_gif(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.OPEN, 17)
    with TestClient(app) as client:
        r = client.get(f"/o/{token}.gif", headers={"user-agent": CHROME, "accept-language": "de"})
    assert r.status_code == 200
    assert r.content == GIF and len(GIF) == 43
    assert r.headers["content-type"] == "image/gif"
    assert "no-store" in r.headers["cache-control"]
    [(kind, delivery, link, ip, ua, method, headers)] = _rows(app)
    assert (kind, delivery, link, ua, method) == (int(TokenKind.OPEN), 17, None, CHROME, "GET")
    assert ip == "testclient"
    assert '"accept-language":"de"' in str(headers)


@pytest.mark.parametrize("bad", ["garbage", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x" * 9000])
def test_bad_pixel_token_serves_gif_and_records_nothing(app: Tracker, bad: str) -> None:
    with TestClient(app) as client:
        r = client.get(f"/o/{bad}.gif")
    assert r.status_code == 200 and r.content == GIF
    assert _rows(app) == []


def test_truncated_pixel_token_records_nothing(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.OPEN, 5)
    with TestClient(app) as client:
        assert client.get(f"/o/{token[:-3]}.gif").content == GIF
    assert _rows(app) == []


def test_click_redirects_only_to_signed_url(app: Tracker) -> None:
    url = "https://example.com/pricing?a=1&b=2"
    token = app.signer.sign(TokenKind.CLICK, 3, 9, url)
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{token}", headers={"user-agent": CHROME})
    assert r.status_code == 302
    assert r.headers["location"] == url
    assert r.headers["referrer-policy"] == "no-referrer"
    [(kind, delivery, link, *_)] = _rows(app)
    assert (kind, delivery, link) == (int(TokenKind.CLICK), 3, 9)


def test_non_ascii_url_is_percent_encoded(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.CLICK, 3, 9, "https://example.com/grüße?q=a b")
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{token}")
    assert r.headers["location"] == "https://example.com/gr%C3%BC%C3%9Fe?q=a%20b"


@pytest.mark.parametrize("suffix", ["", "x", "AAAA"])
def test_tampered_click_shows_invalid_page_never_redirects(app: Tracker, suffix: str) -> None:
    token = app.signer.sign(TokenKind.CLICK, 3, 9, "https://example.com/")
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{token[:-2]}{suffix}")
    assert r.status_code == 404
    assert "location" not in r.headers
    assert "expired or invalid" in r.text
    assert _rows(app) == []


def test_open_token_on_click_route_is_invalid(app: Tracker) -> None:
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{app.signer.sign(TokenKind.OPEN, 1)}")
    assert r.status_code == 404 and _rows(app) == []


def test_non_http_url_is_never_redirected(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.CLICK, 1, 1, "javascript:alert(1)")
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{token}")
    assert r.status_code == 404 and "location" not in r.headers


def test_head_is_recorded_other_methods_refused(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.OPEN, 2)
    with TestClient(app) as client:
        assert client.head(f"/o/{token}.gif").status_code == 200
        assert client.post(f"/o/{token}.gif").status_code == 405
    assert [r[5] for r in _rows(app)] == ["HEAD"]


def test_honeypot_answers_page_and_records(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.HONEYPOT, 4, 11)
    with TestClient(app, follow_redirects=False) as client:
        r = client.get(f"/c/{token}")
    assert r.status_code == 200 and "location" not in r.headers
    assert [(r[0], r[2]) for r in _rows(app)] == [(int(TokenKind.HONEYPOT), 11)]


def test_forwarded_for_ignored_from_untrusted_peer(app: Tracker) -> None:
    token = app.signer.sign(TokenKind.OPEN, 2)
    with TestClient(app) as client:
        client.get(f"/o/{token}.gif", headers={"x-forwarded-for": "203.0.113.9"})
    assert _rows(app)[0][3] == "testclient"


def test_forwarded_for_believed_from_trusted_proxy(tmp_path: Path) -> None:
    app = _make(tmp_path, trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"])
    token = app.signer.sign(TokenKind.OPEN, 2)
    with TestClient(app, client=("127.0.0.1", 5555)) as client:
        # spoofed left entry, real client, then an inner trusted proxy
        client.get(
            f"/o/{token}.gif", headers={"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.2.3"}
        )
    assert _rows(app)[0][3] == "198.51.100.7"
    app.journal.close()


def test_a_journal_that_cannot_be_written_still_answers(app: Tracker) -> None:
    """A full journal (SQLite's real SQLITE_FULL, forced by capping its size): the pixel
    and the click answer as always; the hits wait in memory and go in once it has room."""
    conn = app.journal._conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    click = app.signer.sign(TokenKind.CLICK, 1, 1, "https://example.com/")
    big = {"accept": "x" * 6000}  # a row bigger than a page: it needs pages the cap refuses
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(f"/c/{click}", headers=big).status_code == 302
        pixel = client.get(f"/o/{app.signer.sign(TokenKind.OPEN, 1)}.gif", headers=big)
        assert pixel.content == GIF
        assert app.journal.health().buffered == 2 and _rows(app) == []
        conn.execute("PRAGMA max_page_count = 1073741823")
        deadline = time.monotonic() + 15
        while app.journal.health().buffered and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [r[0] for r in _rows(app)] == [int(TokenKind.CLICK), int(TokenKind.OPEN)]


def test_an_upper_case_scheme_still_redirects(app: Tracker) -> None:
    """Mail already sent carries links rewritten from `HTTPS://...` (issue 10, item 6)."""
    with TestClient(app, follow_redirects=False) as client:
        for url in ("HTTPS://Example.com/x", "Http://example.com/y"):
            r = client.get(f"/c/{app.signer.sign(TokenKind.CLICK, 3, 9, url)}")
            assert (r.status_code, r.headers["location"]) == (302, url)
        r = client.get(f"/c/{app.signer.sign(TokenKind.CLICK, 3, 9, 'JavaScript:alert(1)')}")
        assert r.status_code == 404 and "location" not in r.headers
    assert len(_rows(app)) == 2


def test_the_trackers_pages_carry_security_headers(app: Tracker) -> None:
    with TestClient(app, follow_redirects=False) as client:
        pages = [
            client.get("/c/not-a-token"),
            client.get(f"/c/{app.signer.sign(TokenKind.HONEYPOT, 4, 11)}"),
            client.get(f"/a/{app.signer.sign(TokenKind.ATTACHMENT, 4, 5)}"),
        ]
    assert [p.status_code for p in pages] == [404, 200, 410]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_the_urls_outgoing_writes_are_answered_as_their_kind(app: Tracker) -> None:
    from urllib.parse import urlsplit

    from mailsignal.urls import TrackingUrls

    urls = TrackingUrls(app.signer, "http://track.test")
    with TestClient(app, follow_redirects=False) as client:

        def get(url: str) -> Any:
            return client.get(urlsplit(url).path, headers={"user-agent": CHROME})

        assert get(urls.pixel(4)).content == GIF
        assert get(urls.click(4, 2, "https://example.com/x")).headers["location"] == (
            "https://example.com/x"
        )
        assert get(urls.honeypot(4, 3)).content.startswith(b"<!doctype html>")
        assert get(urls.download(4, 5, "deck.pdf")).status_code == 410  # no such file here
        assert get("/oo/not-ours").status_code == 404
    assert [row[:3] for row in _rows(app)] == [
        (int(TokenKind.OPEN), 4, None),
        (int(TokenKind.CLICK), 4, 2),
        (int(TokenKind.HONEYPOT), 4, 3),
    ]
