"""urls.py: every tracking URL it writes parses back to its token and the kind its path
promises, and nothing else parses as a tracking URL."""

from __future__ import annotations

import pytest

from mailsignal.model import TokenKind
from mailsignal.tokens import Signer
from mailsignal.urls import TrackingUrls, parse_path, parse_url

SIGNER = Signer({1: b"k" * 32}, 1)
URLS = TrackingUrls(SIGNER, "https://t.example")


def test_pixel_round_trip() -> None:
    url = URLS.pixel(7)
    assert url.startswith("https://t.example/o/") and url.endswith(".gif")
    token, expect = parse_url(url) or ("", None)
    assert expect is TokenKind.OPEN
    claims = SIGNER.verify(token, expect)
    assert (claims.kind, claims.delivery_id, claims.link_id) == (TokenKind.OPEN, 7, None)


def test_click_round_trip_carries_the_destination() -> None:
    url = URLS.click(7, 3, "https://example.com/pricing?a=1&b=ü")
    assert url.startswith("https://t.example/c/")
    found = parse_url(url)
    assert found is not None and found[1] is None  # a click path promises no one kind
    claims = SIGNER.verify(found[0], found[1])
    assert (claims.kind, claims.delivery_id, claims.link_id) == (TokenKind.CLICK, 7, 3)
    assert claims.url == "https://example.com/pricing?a=1&b=ü"


def test_honeypot_looks_like_a_click() -> None:
    url = URLS.honeypot(7, 9)
    assert url.startswith("https://t.example/c/")
    found = parse_url(url)
    assert found is not None and found[1] is None
    claims = SIGNER.verify(*found)
    assert (claims.kind, claims.delivery_id, claims.link_id) == (TokenKind.HONEYPOT, 7, 9)


@pytest.mark.parametrize("filename", [None, "deck.pdf", "Angebot Müller/2025?.pdf"])
def test_download_round_trip_with_or_without_a_file_name(filename: str | None) -> None:
    url = URLS.download(7, 11, filename)
    assert url.startswith("https://t.example/a/")
    assert url.count("/") == (5 if filename else 4)  # the name is one path segment
    found = parse_url(url)
    assert found is not None and found[1] is TokenKind.ATTACHMENT
    claims = SIGNER.verify(*found)
    assert (claims.kind, claims.delivery_id, claims.link_id) == (TokenKind.ATTACHMENT, 7, 11)


def test_base_url_trailing_slash_is_not_doubled() -> None:
    assert TrackingUrls(SIGNER, "https://t.example/").pixel(1) == URLS.pixel(1)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/o/TOKEN.gif", ("TOKEN", TokenKind.OPEN)),
        ("/o/TOKEN", ("TOKEN", TokenKind.OPEN)),  # the pixel answers without .gif too
        ("/o/", ("", TokenKind.OPEN)),  # the signer refuses the empty token
        ("/c/TOKEN", ("TOKEN", None)),
        ("/a/TOKEN", ("TOKEN", TokenKind.ATTACHMENT)),
        ("/a/TOKEN/report.html", ("TOKEN", TokenKind.ATTACHMENT)),
    ],
)
def test_request_paths(path: str, expected: tuple[str, TokenKind | None]) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/healthz",
        "/api/v1/emails",
        "/o",
        "/c",
        "/oo/TOKEN",
        "/O/TOKEN.gif",
        "/x/o/TOKEN.gif",
        "o/TOKEN.gif",
        "https://t.example/",
        "https://t.example/p/TOKEN",
        "https://t.example/prefix/c/TOKEN",
        "http://[::1/o/TOKEN.gif",  # not a URL at all
        "",
    ],
)
def test_foreign_paths_are_not_tracking_urls(url: str) -> None:
    assert parse_url(url) is None
    if url.startswith("/") or not url:
        assert parse_path(url) is None


def test_only_the_path_of_a_url_counts() -> None:
    token = URLS.pixel(5).rsplit("/", 1)[1].removesuffix(".gif")
    for url in (
        f"/o/{token}.gif?utm_source=x",
        f"http://edge.example:8080/o/{token}.gif#frag",
        f"//cdn.example/o/{token}.gif",
    ):
        assert parse_url(url) == (token, TokenKind.OPEN)


def test_aggregate_pixel_is_an_open_path_with_its_own_kind_of_token() -> None:
    """Issue 13: the aggregate pixel goes to the same route as every pixel; the token,
    not the path, says it names an email's pixel and no recipient."""
    url = URLS.aggregate_pixel(5)
    assert url.startswith("https://t.example/o/") and url.endswith(".gif")
    assert url == URLS.aggregate_pixel(5)  # one URL for every copy that carries it
    found = parse_url(url)
    assert found is not None and found[1] is TokenKind.OPEN
    claims = SIGNER.verify(found[0])
    assert (claims.kind, claims.delivery_id, claims.link_id) == (TokenKind.AGGREGATE_OPEN, 5, None)
