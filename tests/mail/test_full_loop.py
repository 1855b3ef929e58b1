"""The whole loop as one test (issue #4), every component real:

a rep submits through the relay (smtplib, STARTTLS, AUTH) -> the relay instruments the
recipient's copy and forwards it to an upstream SMTP server -> which delivers it into the
recipient's mailbox on a real Dovecot -> the test fetches it over IMAP and renders it in
chromium (pixel fetched from the real tracker, a link clicked) -> the recipient replies,
and an out-of-office auto-responder replies too, into the rep's mailbox -> `mailsignal
sync-replies` reads the rep's mailbox -> the email shows one human open, one human
click, one reply and one labelled auto-reply.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from conftest import LiveServer, cli, free_port, need
from helpers import LandingPage
from mail.test_imap import CONF, NOBODY
from mail.test_relay import Clock, Relay, make_cert
from mailsignal.settings import Settings
from mailsignal.store.db import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.browser]
REP, BUYER = "rep@northwind.test", "dana@contoso.test"
PASSWORDS = {REP: "rep-imap-pass", BUYER: "dana-imap-pass"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)


class Mailboxes:
    """A private Dovecot with a mailbox for the rep and one for the recipient."""

    def __init__(self) -> None:
        exe = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
        need(exe is not None, "Dovecot", "apt-get install dovecot-imapd")
        need(os.geteuid() == 0, "root for Dovecot", "run as root (CI does)")
        self.base = Path(tempfile.mkdtemp(prefix="ms-loop-"))
        self.base.chmod(0o755)
        lines = []
        for user, password in PASSWORDS.items():
            home = self.base / "home" / user
            home.mkdir(parents=True)
            os.chown(home, NOBODY, NOBODY)
            lines.append(f"{user}:{{PLAIN}}{password}:{NOBODY}:{NOBODY}::{home}::")
        (self.base / "passwd").write_text("\n".join(lines) + "\n")
        self.port = free_port()
        conf = self.base / "dovecot.conf"
        conf.write_text(CONF.format(base=self.base, name=self.base.name, port=self.port))
        self.log = (self.base / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [str(exe), "-F", "-c", str(conf)],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.login(REP).logout()
                return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.base / "stderr.log").read_text()) from None
                time.sleep(0.1)

    def login(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(user, PASSWORDS[user])
        return imap

    def deliver(self, user: str, raw: bytes) -> None:
        imap = self.login(user)
        typ, data = imap.append("INBOX", None, imaplib.Time2Internaldate(time.time()), raw)
        assert typ == "OK", data
        imap.logout()

    def fetch_all(self, user: str) -> list[bytes]:
        imap = self.login(user)
        imap.select("INBOX", readonly=True)
        _typ, ids = imap.search(None, "ALL")
        found = []
        for num in ids[0].split():
            _t, parts = imap.fetch(num, "(BODY.PEEK[])")
            found.append(bytes(parts[0][1]))  # type: ignore[index]
        imap.logout()
        return found

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        self.proc.wait(20)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


class DeliveringUpstream:
    """The smarthost: accepts mail and delivers it into the recipients' Dovecot mailboxes."""

    def __init__(self, boxes: Mailboxes) -> None:
        self.boxes = boxes
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            if rcpt in PASSWORDS:
                self.boxes.deliver(rcpt, envelope.original_content)
        return "250 2.0.0 delivered"


@pytest.fixture
def boxes() -> Iterator[Mailboxes]:
    mailboxes = Mailboxes()
    yield mailboxes
    mailboxes.close()


def _reply(original: EmailMessage, *, auto: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Dana Fischer <{BUYER}>"
    msg["To"] = REP
    msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    msg["Message-ID"] = make_msgid(domain="contoso.test")
    msg["In-Reply-To"] = original["Message-ID"]
    msg["References"] = original["Message-ID"]
    if auto:
        msg["Subject"] = f"Automatic reply: {original['Subject']}"
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content("I am out of the office until Monday with limited access to email.")
    else:
        msg["Subject"] = f"Re: {original['Subject']}"
        msg.set_content("Thanks, the pricing looks good. Can we talk on Tuesday?\n\n> Hi Dana")
    return msg.as_bytes(policy=policy.SMTP)


def test_relay_mailbox_browser_replies_end_to_end(boxes: Mailboxes, tmp_path: Path) -> None:
    need(Path(CHROMIUM).exists(), "chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # The tracker, REST API and ingest worker: a real `mailsignal serve`. A 2 s delivery
    # window (default 10 s) lets the test read the mail seconds after sending without the
    # open being taken for a delivery-time scan.
    data = tmp_path / "data"
    server = LiveServer(data, extra_env={"MAILSIGNAL_DELIVERY_WINDOW_SECONDS": "2"})
    cli(server.env, "init")
    key = (
        cli(server.env, "users", "add", REP, "--opt-in", "--key").stdout.strip().rsplit(" ", 1)[-1]
    )
    server.start()
    cert, tls_key = make_cert(tmp_path)
    upstream = DeliveringUpstream(boxes)
    upstream.controller.start()
    settings = Settings(
        data_dir=data,
        base_url=server.url,
        relay_tls_cert=cert,
        relay_tls_key=tls_key,
        smarthost=f"127.0.0.1:{upstream.port}",
        smarthost_security="none",
        delivery_window_seconds=2,
    )
    engine = make_engine(settings.db_url)
    relay = Relay(settings, engine, Clock()).start()
    landing = ThreadingHTTPServer(("127.0.0.1", 0), LandingPage)
    threading.Thread(target=landing.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{landing.server_address[1]}/pricing?q=1"
    try:
        # 1. The rep sends through the relay.
        msg = EmailMessage()
        msg["From"] = f"Rep <{REP}>"
        msg["To"] = BUYER
        msg["Subject"] = "Pricing for Q1"
        msg["Message-ID"] = "<loop-1@northwind.test>"
        msg.set_content(f"Hi Dana, pricing: {target}")
        msg.add_alternative(
            f'<p>Hi Dana, our <a id="p" href="{target}">pricing</a>.</p>', subtype="html"
        )
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(cert)))
            smtp.login(REP, key)
            smtp.send_message(msg)
        relay.settle()

        # 2. The copy is in Dana's mailbox; fetch it over IMAP like her mail client.
        [raw] = boxes.fetch_all(BUYER)
        received = message_from_bytes(raw, policy=policy.default)
        assert isinstance(received, EmailMessage)
        html_part = received.get_body(("html",))
        assert html_part is not None
        html = html_part.get_content()
        assert "/o/" in html and target not in html

        # 3. She reads it in a browser: the pixel loads, she clicks the link.
        time.sleep(2.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                ],
            )
            page = browser.new_page(user_agent=CHROME_UA)
            page.set_content(html, wait_until="load")
            time.sleep(1.0)
            with page.expect_navigation():
                page.click("#p")
            assert page.url == target
            browser.close()

        # 4. She replies; her out-of-office replies too. Both land in the rep's mailbox.
        boxes.deliver(REP, _reply(received, auto=False))
        boxes.deliver(REP, _reply(received, auto=True))
        cli(
            server.env,
            "mailbox",
            "set",
            REP,
            "--host",
            "127.0.0.1",
            "--port",
            str(boxes.port),
            "--security",
            "none",
            "--password-stdin",
            input_text=PASSWORDS[REP],
        )
        synced = cli(server.env, "sync-replies")
        assert "Traceback" not in synced.stderr

        # 5. One human open, one human click, one reply, one labelled auto-reply.
        auth = {"authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 20
        while True:
            emails = httpx.get(f"{server.url}/api/v1/emails", headers=auth).json()["value"]
            row = emails[0]
            if row["humanlinksclickedcount"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (row["humanopencount"], row["humanlinksclickedcount"], row["replycount"]) == (
            1,
            1,
            1,
        ), row
        events = httpx.get(
            f"{server.url}/api/v1/emails/{row['activityid']}/events", headers=auth
        ).json()["value"]
        replies = [e for e in events if e["interactiontype"] == 3]
        assert sorted(e["verdict"] for e in replies) == ["human", "machine"]
        auto = next(e for e in replies if e["verdict"] == "machine")
        assert "reply.auto_submitted" in [r["rule"] for r in auto["reasons"]["fired"]]
    finally:
        landing.shutdown()
        landing.server_close()
        relay.stop()
        upstream.controller.stop()
        engine.dispose()
        server.kill(15)
