"""Security headers on every response of the API and its pages (issue 10, item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mailsignal.keyring import create_secret
from mailsignal.settings import Settings
from mailsignal.web.app import create_app
from mailsignal.web.headers import SecurityHeaders


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    create_secret(tmp_path / "secret.key")
    app = create_app(Settings(data_dir=tmp_path, max_body_bytes=2048))
    with TestClient(app, follow_redirects=False) as c:
        yield c
    app.journal.close()


def _assert_common(r: httpx.Response) -> str:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    return csp


def test_every_api_answer_carries_them(client: TestClient) -> None:
    answers = {
        "healthz": client.get("/healthz"),
        "openapi": client.get("/api/v1/openapi.json"),
        "401": client.get("/api/v1/emails"),
        "404": client.get("/no/such/page"),
        "413": client.post("/api/v1/emails", content=b"{" + b" " * 4096 + b"}"),
        "webapi": client.get("/api/data/v9.2/WhoAmI"),
    }
    assert {k: r.status_code for k, r in answers.items()} == {
        "healthz": 200,
        "openapi": 200,
        "401": 401,
        "404": 404,
        "413": 413,
        "webapi": 401,
    }
    for r in answers.values():
        assert _assert_common(r) == "default-src 'none'; frame-ancestors 'none'"


def test_panel_pages_get_the_strict_html_policy(client: TestClient) -> None:
    """The panel's pages (issue 12) run no inline script or style and load nothing from
    elsewhere; its stylesheet and script come from /static."""
    r = client.get("/login")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = _assert_common(r)
    assert csp.startswith("default-src 'self'") and "unsafe-inline" not in csp
    assert 'href="/static/panel.css"' in r.text and "<style" not in r.text
    assert "style=" not in r.text and "<script>" not in r.text
    css = client.get("/static/panel.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_api_explorer_loads_only_its_own_assets(client: TestClient) -> None:
    """Swagger UI from the vendored copy (issue 12): no CDN, no inline script; only
    `data:` images beyond the pages' policy, for the icons in its stylesheet."""
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and "cdn." not in r.text and "<script>" not in r.text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in r.text
    csp = _assert_common(r)
    assert csp.startswith("default-src 'self'") and "img-src 'self' data:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for asset in ("vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def _page(_request: Request) -> Response:
    return HTMLResponse("<p>hello</p>")


def _own_policy(_request: Request) -> Response:
    return HTMLResponse(
        "<p>framed</p>",
        headers={
            "content-security-policy": "frame-ancestors 'self'",
            "x-frame-options": "SAMEORIGIN",
        },
    )


def test_html_gets_the_strict_policy_and_an_apps_own_header_wins() -> None:
    app = SecurityHeaders(Starlette(routes=[Route("/page", _page), Route("/own", _own_policy)]))
    with TestClient(app) as c:
        page, own = c.get("/page"), c.get("/own")
    csp = _assert_common(page)
    assert csp.startswith("default-src 'self'") and "object-src 'none'" in csp
    assert "base-uri 'none'" in csp and "unsafe-inline" not in csp
    assert own.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert own.headers["x-frame-options"] == "SAMEORIGIN"
    assert own.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
