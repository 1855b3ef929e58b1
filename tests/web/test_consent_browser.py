"""Consent as a recipient gives it (issue 13, "Consent mode"): a real `mailsignal serve`
under `tracking_basis = consent`, Debian's chromium driven by Playwright. The first copy
to a recipient without consent is untracked (no pixel, no click link) and ends with the
consent request line; its page changes nothing when opened; the recipient presses
"Allow"; the next copy is tracked and its open stored; the stop-tracking link of that
copy withdraws the consent and a further open is answered but not stored. axe-core
finds no serious or critical violation on the consent page (before and after) at 1280
and 375 pixels; screenshots go to MAILSIGNAL_SCREENSHOTS (else tmp).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, cli, need
from web.test_stop_browser import ARGS, AXE, CHROME_UA, CHROMIUM, _check, _events, _html, _wait

pytestmark = pytest.mark.browser
DANA = "dana@contoso.test"


@pytest.fixture
def server(tmp_path: Path) -> Any:
    need(Path(CHROMIUM).exists(), "chromium", "apt-get install chromium")
    need(AXE.exists(), "axe-core", "run `npm ci --prefix tests/web/panel/axe`")
    live = LiveServer(tmp_path / "data", extra_env={"MAILSIGNAL_TRACKING_BASIS": "consent"})
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
            "html": '<p>Hello Dana, <a href="https://www.example.com/pilot">the pilot</a></p>',
            "text": "Hello Dana, https://www.example.com/pilot",
        },
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_recipient_consents_in_a_browser(server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("MAILSIGNAL_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    added = cli(server.env, "users", "add", "alice@northwind.test", "--opt-in", "--key")
    key = added.stdout.strip().splitlines()[-1].split()[-1]
    first = _send(server, key, "Pilot")
    copy = first["deliveries"][0]
    assert not copy["tracked"] and copy["untracked_reasons"] == ["recipient.no_consent"]
    html = _html(copy)
    assert "/o/" not in html and "/c/" not in html and "/p/" not in html
    ask = re.search(r'href="([^"]*/k/[^"]+)"', html)
    assert ask, html
    ask_url = ask[1].replace("&amp;", "&")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(locale="en-GB").new_page()
        page.context.add_init_script(path=str(AXE))
        page.set_default_timeout(15_000)
        page.goto(ask_url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Allow tracking of my email")
        page.reload()  # shows and reloads change nothing: no consent yet
        _check(page, shots, "consent")
        history = cli(server.env, "privacy", "consent-history", DANA).stdout
        assert json.loads(history) == []
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Tracking is allowed")
        _check(page, shots, "consent-done")

        # The next copy is tracked, and its open is stored.
        sent = _send(server, key, "Pilot, second")
        second, sent_id = sent["deliveries"][0], sent["activityid"]
        assert second["tracked"] and second["untracked_reasons"] == []
        tracked = _html(second)
        pixel = re.search(r'src="([^"]*/o/[^"]+)"', tracked)
        stop = re.search(r'href="([^"]*/p/[^"]+)"', tracked)
        assert pixel and stop, tracked
        assert httpx.get(pixel[1], headers={"user-agent": CHROME_UA}).status_code == 200
        _wait(lambda: _events(server, key, sent_id), 1)

        # Withdrawal through the copy's stop-tracking link.
        page.goto(stop[1].replace("&amp;", "&"))
        page.get_by_role("button", name="Stop tracking my email").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Tracking is stopped")
        browser.close()

    assert httpx.get(pixel[1], headers={"user-agent": CHROME_UA}).status_code == 200

    def dropped() -> list[dict[str, Any]]:
        found = cli(server.env, "privacy", "dropped", "--json").stdout
        return [{k: r[k] for k in ("reason", "hits")} for r in json.loads(found)]

    _wait(dropped, [{"reason": "recipient.opted_out", "hits": 1}])
    assert _events(server, key, sent_id) == 1
    rows = json.loads(cli(server.env, "privacy", "consent-history", DANA).stdout)
    assert [(r["source"], r["current"], r["language"]) for r in rows] == [("link", False, "en")]
    assert "Allow tracking of my email" in rows[0]["consenttext"]
