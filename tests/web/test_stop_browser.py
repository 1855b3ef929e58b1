"""Stop tracking as a recipient does it (issue 13): Debian's chromium, driven by
Playwright against a real `mailsignal serve`, opens the stop-tracking link of a really
instrumented copy, reads the page and presses the button. Then a new open of that copy
is answered but not stored (counted as dropped), and the next copy to the address is
sent untracked. axe-core finds no serious or critical violation on the page (before and
after) at 1280 and 375 pixels; screenshots go to MAILSIGNAL_SCREENSHOTS (else tmp).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, cli, need

pytestmark = pytest.mark.browser
DANA = "dana@contoso.test"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "panel" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)


def _check(page: Any, shots: Path, name: str) -> None:
    """At 1280 and 375 px: no serious or critical axe-core violation, no sideways
    scrolling at 375, and a screenshot of each (as tests/web/panel/test_browser.py)."""
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        found = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.help)"
        )
        assert list(found) == [], f"{name} at {width}px"
        if width == 375:
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name} scrolls sideways at 375px by {overflow}px"
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    need(Path(CHROMIUM).exists(), "chromium", "apt-get install chromium")
    need(AXE.exists(), "axe-core", "run `npm ci --prefix tests/web/panel/axe`")
    live = LiveServer(tmp_path / "data")
    cli(live.env, "init")
    live.start()
    yield live
    live.kill(15)


def _send(server: LiveServer, key: str, subject: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/api/v1/emails",
        headers={"authorization": f"Bearer {key}"},
        json={
            "sender": "alice@northwind.test",
            "recipients": [DANA],
            "subject": subject,
            "html": '<p>Hallo Dana, <a href="https://www.example.com/pilot">der Pilot</a></p>',
            "text": "Hallo Dana, https://www.example.com/pilot",
        },
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _html(copy: dict[str, Any]) -> str:
    msg = message_from_string(copy["mime"], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _events(server: LiveServer, key: str, activity: str) -> int:
    r = httpx.get(
        f"{server.url}/api/v1/emails/{activity}/events",
        headers={"authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    return len(r.json()["value"])


def _wait(what: Any, expected: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := what()) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == expected


def test_a_recipient_stops_tracking_in_a_browser(server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("MAILSIGNAL_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    added = cli(server.env, "users", "add", "alice@northwind.test", "--opt-in", "--key")
    key = added.stdout.strip().splitlines()[-1].split()[-1]
    sent = _send(server, key, "Pilot")
    copy = sent["deliveries"][0]
    assert copy["tracked"]
    html = _html(copy)
    pixel = re.search(r'src="([^"]*/o/[^"]+)"', html)
    stop = re.search(r'href="([^"]*/p/[^"]+)"', html)
    assert pixel and stop, html
    stop_url = stop[1].replace("&amp;", "&")
    assert stop_url.endswith("?l=en")
    # Ingest works: an open before the choice is stored.
    assert httpx.get(pixel[1], headers={"user-agent": CHROME_UA}).status_code == 200
    _wait(lambda: _events(server, key, sent["activityid"]), 1)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(locale="de-DE")
        context.add_init_script(path=str(AXE))
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(stop_url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Stop tracking my email")
        expect(page.locator("html")).to_have_attribute("lang", "en")  # the copy's language
        _check(page, shots, "stop-tracking")
        page.get_by_role("button", name="Stop tracking my email").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Tracking is stopped")
        _check(page, shots, "stop-tracking-done")
        # Without the copy's language, the page speaks the browser's.
        page.goto(stop_url.split("?")[0])
        expect(page.get_by_role("heading", level=1)).to_have_text("Das Tracking ist beendet")
        browser.close()

    # A new open of the copy is answered as ever, but not stored: counted as dropped.
    assert httpx.get(pixel[1], headers={"user-agent": CHROME_UA}).status_code == 200

    def dropped() -> list[dict[str, Any]]:
        found = cli(server.env, "privacy", "dropped", "--json").stdout
        return [{k: r[k] for k in ("reason", "hits")} for r in json.loads(found)]

    _wait(dropped, [{"reason": "recipient.opted_out", "hits": 1}])
    assert _events(server, key, sent["activityid"]) == 1
    # The next copy to the address is not instrumented, and says why.
    again = _send(server, key, "Pilot, second")["deliveries"][0]
    assert not again["tracked"] and again["untracked_reasons"] == ["recipient.opted_out"]
    assert "/o/" not in again["mime"] and "/p/" not in again["mime"]
