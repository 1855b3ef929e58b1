"""The panel as a person uses it: Debian's chromium driven by Playwright against a real
`mailsignal serve` with the demo loaded (issue 12).

A rep signs in with the keyboard, sees the feed, and a person's click made while the
page is open appears in it without a reload; opens the story email ("opened nine
times") and sees the machine events labelled with their reasons; follows to the contact
and its score explanation; runs Engaged This Week and exports it as CSV. A rep's URL to
another rep's email is 404; the manager sees the team's mail; a form without its CSRF
token is refused; five wrong passwords slow sign-in down. axe-core (pinned,
tests/web/panel/axe) finds no serious or critical violation on any page at 1280 and 375
pixels wide, and each page's screenshot is written under the test output folder
(`MAILSIGNAL_SCREENSHOTS`, else the test's tmp dir).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, cli, need

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
WIDTHS = (1280, 375)


def _sign_ins(server: LiveServer) -> dict[str, str]:
    text = (server.data_dir / "demo-sign-ins.txt").read_text()
    return dict(re.findall(r"^(\S+@\S+)\s+(\S+)", text, re.M))


def _axe(page: Any) -> list[str]:
    """The serious and critical violations axe-core finds on the page as it is (axe is
    an init script of the context: CDP injects it past the page's CSP)."""
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


def _check(page: Any, shots: Path, name: str) -> None:
    """Both widths: no serious/critical axe violation, no horizontal scrolling of the
    page itself at 375 px, and a screenshot of each."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert _axe(page) == [], f"{name} at {width}px"
        if width == 375:
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name} scrolls sideways at 375px by {overflow}px"
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def demo_server(tmp_path: Path) -> Any:
    need(Path(CHROMIUM).exists(), "chromium", "apt-get install chromium")
    need(AXE.exists(), "axe-core", "run `npm ci --prefix tests/web/panel/axe`")
    server = LiveServer(tmp_path / "data")
    cli(server.env, "init")
    cli(server.env, "demo")
    server.start()
    yield server
    server.kill(15)


def _click_as_a_person(server: LiveServer, key: str) -> str:
    """Alice sends a new email through the API; its recipient clicks its link from a
    browser. Returns the subject."""
    subject = f"Pilot pricing {int(time.time())}"
    r = httpx.post(
        f"{server.url}/api/v1/emails",
        headers={"authorization": f"Bearer {key}"},
        json={
            "sender": "alice@northwind.test",
            "recipients": ["jordan.blake@tailspin.test"],
            "subject": subject,
            "html": '<p>Hello Jordan, <a href="https://www.example.com/pilot">the pilot</a></p>',
            # Sent a while ago: a click seconds after delivery is what scanners do.
            "sent_at": (datetime.now(UTC) - timedelta(minutes=20)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    msg = message_from_string(r.json()["deliveries"][0]["mime"], policy=policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("html",))
    assert body is not None
    link = re.search(r'href="([^"]*/c/[^"]+)"', body.get_content())
    assert link is not None
    hit = httpx.get(link[1].replace("&amp;", "&"), headers={"user-agent": CHROME_UA})
    assert hit.status_code == 302
    return subject


def test_a_rep_a_manager_and_the_story(demo_server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    server = demo_server
    shots = Path(os.environ.get("MAILSIGNAL_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    passwords = _sign_ins(server)
    key = cli(server.env, "users", "key", "create", "alice@northwind.test").stdout.strip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        context.add_init_script(path=str(AXE))
        page = context.new_page()
        page.set_default_timeout(15_000)

        # The API explorer draws the API from its vendored Swagger UI, under the CSP.
        problems: list[str] = []
        page.on(
            "console", lambda m: problems.append(m.text) if "Content Security" in m.text else None
        )
        page.goto(f"{server.url}/api/v1/docs")
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() > 10 and problems == []

        # Sign in with the keyboard only.
        page.goto(f"{server.url}/")
        assert "/login" in page.url
        _check(page, shots, "login")
        page.keyboard.press("Tab")  # the skip link
        page.locator("#address").focus()
        page.keyboard.type("alice@northwind.test")
        page.keyboard.press("Tab")
        page.keyboard.type(passwords["alice@northwind.test"])
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/")
        expect(page.locator("h1")).to_be_visible()
        _check(page, shots, "feed")

        # A person's click while the feed is open appears without a reload.
        subject = _click_as_a_person(server, key)
        expect(page.locator("#feed-items")).to_contain_text(subject, timeout=30_000)

        # The story email: nine opens, the machines labelled with their reasons.
        page.goto(f"{server.url}/emails?q=Discovery")
        _check(page, shots, "emails")
        page.get_by_role("link", name=re.compile("Discovery call follow-up")).first.click()
        expect(page.locator("h1")).to_contain_text("Discovery call follow-up")
        text = page.locator("main").inner_text()
        assert "machine" in text and "forward" in text and "person" in text
        _check(page, shots, "email")
        story_url = page.url

        # On to the contact and its score explanation.
        page.get_by_role("link", name=re.compile("Jordan Blake")).first.click()
        expect(page.locator("h1")).to_contain_text("Jordan Blake")
        assert "score" in page.locator("main").inner_text().lower()
        _check(page, shots, "contact")

        # Engaged This Week, and its CSV.
        page.goto(f"{server.url}/views")
        _check(page, shots, "views")
        page.get_by_role("link", name=re.compile("^Engaged This Week$")).first.click()
        expect(page.locator("table")).to_be_visible()
        _check(page, shots, "view")
        with page.expect_download() as download:
            page.get_by_role("link", name=re.compile("CSV", re.I)).first.click()
        csv_text = Path(download.value.path()).read_text("utf-8")
        assert csv_text.splitlines()[0].startswith(("subject", '"subject"', "\ufeff"))

        # The overview: the month in two charts, reached from the main navigation.
        # With the keyboard only: Tab to the link in the main navigation, then Enter.
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == "Overview":
                break
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Overview")
        expect(page.get_by_role("img", name="Events per day, last 30 days")).to_be_visible()
        share = page.get_by_role("list", name="Machine share by recipient mail environment")
        expect(share).to_be_visible()
        assert "Microsoft 365" in page.locator("main").inner_text()
        _check(page, shots, "overview")

        # A form without its CSRF token changes nothing.
        refused = page.request.post(f"{server.url}/logout", form={"csrf": "forged"})
        assert refused.status == 403
        page.context.clear_cookies()

        # Ben (another rep) may not open Alice's email: 404, as for one that does not exist.
        ben = "a password for Ben only"
        cli(server.env, "users", "password", "ben@northwind.test", "--stdin", input_text=ben)
        page.goto(f"{server.url}/login")
        page.fill("#address", "ben@northwind.test")
        page.fill("#password", ben)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        assert page.goto(story_url).status == 404
        page.context.clear_cookies()

        # Maria, who manages Alice and Ben, sees both.
        page.goto(f"{server.url}/login")
        page.fill("#address", "maria@northwind.test")
        page.fill("#password", passwords["maria@northwind.test"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        page.goto(story_url)
        expect(page.locator("h1")).to_contain_text("Discovery call follow-up")
        page.goto(f"{server.url}/emails")
        assert "ben@northwind.test" in page.locator("main").inner_text()
        page.context.clear_cookies()

        # The admin's page.
        page.goto(f"{server.url}/login")
        page.fill("#address", "admin@northwind.test")
        page.fill("#password", passwords["admin@northwind.test"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/admin")
        expect(page.locator("h1")).to_contain_text("Admin")
        _check(page, shots, "admin")
        page.context.clear_cookies()

        # Five wrong passwords slow the next attempt down.
        for _ in range(5):
            page.goto(f"{server.url}/login")
            page.fill("#address", "alice@northwind.test")
            page.fill("#password", "not her password at all")
            page.click("button[type=submit]")
            expect(page.locator(".alert")).to_be_visible()
        page.goto(f"{server.url}/login")
        page.fill("#address", "alice@northwind.test")
        page.fill("#password", passwords["alice@northwind.test"])
        page.click("button[type=submit]")
        expect(page.locator(".alert")).to_contain_text("Too many failed attempts")
        browser.close()
