"""A real browser reads a tracked email: Debian's chromium, driven by Playwright, with a
normal Chrome user agent, fetches the pixel and clicks a link through the real server."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, need
from helpers import LandingPage

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _events(server: LiveServer, key: str, email_id: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{server.url}/api/v1/emails/{email_id}/events",
            headers={"authorization": f"Bearer {key}"},
        )
        events: list[dict[str, Any]] = r.json()["value"]
        if len(events) >= want:
            return events
        time.sleep(0.2)
    raise AssertionError(f"only {len(events)} events after 20 s")


def test_chromium_open_and_click_are_human(live_server: tuple[LiveServer, str]) -> None:
    need(Path(CHROMIUM).exists(), "chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    server, key = live_server
    landing = ThreadingHTTPServer(("127.0.0.1", 0), LandingPage)
    threading.Thread(target=landing.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{landing.server_address[1]}/pricing?utm_source=mail&x=1"
    html = (
        f'<html><body><p>Hello Dana,</p><p>Here is our <a id="pricing" href="{target}">'
        "pricing</a>.</p><p>Best, Rep</p></body></html>"
    )
    sent = (datetime.now(UTC) - timedelta(minutes=12)).isoformat()
    r = httpx.post(
        f"{server.url}/api/v1/emails",
        headers={"authorization": f"Bearer {key}"},
        json={
            "sender": "rep@northwind.test",
            "recipients": ["dana@contoso.test"],
            "subject": "Pricing",
            "html": html,
            "sent_at": sent,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    msg = message_from_string(created["deliveries"][0]["mime"], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("html",))
    assert body is not None
    rendered = body.get_content()
    assert "/o/" in rendered and target not in rendered

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(user_agent=CHROME_UA)
            page.set_content(rendered, wait_until="load")  # the mail client renders the mail
            assert (
                page.evaluate("document.images[0].complete && document.images[0].naturalWidth") == 1
            )
            time.sleep(1.0)  # a person reads before clicking
            with page.expect_navigation():
                page.click("#pricing")
            assert page.url == target
            assert page.locator("h1").inner_text() == "Pricing page"
            browser.close()
    finally:
        landing.shutdown()
        landing.server_close()

    events = _events(server, key, created["activityid"], 2)
    assert [(e["interactiontype"], e["verdict"]) for e in events] == [(0, "human"), (1, "human")]
    assert events[0]["interactionuseragent"] == CHROME_UA
    assert events[1]["interactedcomponenttext"] == target
    email = httpx.get(
        f"{server.url}/api/v1/emails/{created['activityid']}",
        headers={"authorization": f"Bearer {key}"},
    ).json()
    assert (email["opencount"], email["humanopencount"]) == (1, 1)
    assert (email["linksclickedcount"], email["humanlinksclickedcount"]) == (1, 1)
