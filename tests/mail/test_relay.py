"""The SMTP relay end to end: real clients (smtplib, swaks) over TLS with AUTH, the real
relay (aiosmtpd + Outgoing + spool + worker), and a real upstream smarthost
(aiosmtpd writing a Maildir). Database tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import errno
import mailbox
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from conftest import free_port, need
from helpers import throwaway_certificate, tracked_urls
from mailsignal.keyring import load_keyring
from mailsignal.mail.outbound import Spool
from mailsignal.mail.server import RelayServer
from mailsignal.outgoing import Outgoing
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.db import make_engine
from mailsignal.store.schema import email, emaildelivery
from mailsignal.tokens import Signer

REP = "rep@northwind.test"
BUYER = "buyer@client.test"  # a contact who allows tracking
PRIVATE = "private@client.test"  # a contact with followemail = false
HTML = (
    "<html><body><p>Hi Dana,</p><p>Our <a href='https://northwind.test/pricing'>pricing</a> "
    "and the <a href='https://northwind.test/case-study'>case study</a>.</p></body></html>"
)


class Clock:
    """A clock the test moves; the relay and its worker read it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (helpers.throwaway_certificate)."""
    return throwaway_certificate(tmp)


class Upstream:
    """The smarthost: aiosmtpd writing each message it accepts into a Maildir."""

    def __init__(self, root: Path) -> None:
        self.maildir = mailbox.Maildir(root, create=True)
        self.port = free_port()
        self.received: list[tuple[str, list[str], bytes]] = []
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.maildir.add(envelope.original_content)
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 OK stored"

    def start(self) -> Upstream:
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[bytes]:
        return [data for _f, rcpts, data in self.received if address in rcpts]


class Relay:
    """The real RelayServer on its own event-loop thread."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = free_port()
        self.server = RelayServer(
            settings,
            engine,
            Signer(*load_keyring(settings.secret_file)),
            host="127.0.0.1",
            port=self.port,
            clock=clock,
            auth_fail_delay=0.01,
        )

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self) -> Relay:
        self.thread.start()
        self.call(self.server.start())
        return self

    def settle(self) -> None:
        """Wait for the deliveries the relay kicked off."""
        self.call(self.server.worker.drain())

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def world(
    tmp_path: Path, settings: Settings, engine: Engine
) -> Iterator[tuple[Settings, Upstream, dict[str, str]]]:
    """Users (a rep, an admin), contacts, a TLS certificate and a running upstream."""
    cert, key = make_cert(tmp_path)
    upstream = Upstream(tmp_path / "upstream").start()
    with engine.begin() as conn:
        keys = {
            REP: users.create_api_key(conn, users.add(conn, "Rep", REP, opt_in=True)),
            "admin@northwind.test": users.create_api_key(
                conn, users.add(conn, "Ops", "admin@northwind.test", role="admin")
            ),
        }
        parties.add(conn, "contact", "Dana Buyer", BUYER)
        parties.add(conn, "contact", "Pat Private", PRIVATE, follow=False)
    relay_settings = settings.model_copy(
        update={
            "relay_tls_cert": cert,
            "relay_tls_key": key,
            "smarthost": f"127.0.0.1:{upstream.port}",
            "smarthost_security": "none",
        }
    )
    yield relay_settings, upstream, keys
    upstream.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def relay(world: Any, engine: Engine, clock: Clock) -> Iterator[Relay]:
    relay = Relay(world[0], engine, clock).start()
    yield relay
    relay.stop()


def sales_email(message_id: str | None = "<q1-pricing@northwind.test>") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Rep <{REP}>"
    msg["To"] = BUYER
    msg["Cc"] = PRIVATE
    msg["Subject"] = "Pricing for Q1"
    msg["Date"] = "Fri, 27 Nov 2026 09:00:00 +0000"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Hi Dana, pricing: https://northwind.test/pricing")
    msg.add_alternative(HTML, subtype="html")
    return msg.as_bytes(policy=policy.SMTP)


def connect(relay: Relay, cert: Path, key: str | None = None, user: str = REP) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", relay.port, timeout=30)
    client.starttls(context=ssl.create_default_context(cafile=str(cert)))
    client.ehlo()
    if key is not None:
        client.login(user, key)
    return client


def test_tracked_and_untracked_copies_reach_upstream(
    relay: Relay, world: Any, engine: Engine
) -> None:
    settings, upstream, keys = world
    original = sales_email()
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        refused = client.sendmail(REP, [BUYER, PRIVATE, "bcc-only@client.test"], original)
    assert refused == {}
    relay.settle()

    [private_copy] = upstream.to(PRIVATE)
    [buyer_copy] = upstream.to(BUYER)
    [bcc_copy] = upstream.to("bcc-only@client.test")
    assert private_copy == original  # do-not-track: the bytes as the client sent them
    assert tracked_urls(buyer_copy.decode()) and tracked_urls(bcc_copy.decode())
    assert buyer_copy != bcc_copy  # each tracked recipient has their own tokens
    assert len(upstream.maildir) == 3
    assert all(rcpts == [PRIVATE] for _f, rcpts, data in upstream.received if data == original)
    assert [f for f, _r, _d in upstream.received] == [REP] * 3

    with engine.connect() as conn:
        [row] = conn.execute(select(email)).mappings().all()
        deliveries = {
            r.emailaddress: r for r in conn.execute(select(emaildelivery)).mappings().all()
        }
    assert row["messageid"] == "<q1-pricing@northwind.test>"
    assert row["subject"] == "Pricing for Q1" and row["directioncode"] is True
    assert row["senton"] is not None and row["sender"] == REP
    assert set(row["torecipients"].split(";")) == {BUYER, PRIVATE, "bcc-only@client.test"}
    assert deliveries[PRIVATE]["tracked"] is False
    assert deliveries[BUYER]["tracked"] is True and deliveries[BUYER]["status"] == "sent"
    assert list(relay.server.spool.root.glob("*.json")) == []


def test_attachments_mode_applies_to_the_relay(world: Any, engine: Engine, clock: Clock) -> None:
    import re
    from urllib.parse import urlsplit

    from starlette.testclient import TestClient

    from mailsignal.web.app import create_app

    settings, upstream, keys = world
    settings = settings.model_copy(update={"attachments_mode": "all"})
    fixture = Path(__file__).parents[1] / "fixtures" / "mail" / "html_attachment.eml"
    original = fixture.read_bytes().replace(b"\n", b"\r\n")
    [report] = [
        p for p in message_from_bytes(original, policy=policy.default).walk() if p.get_filename()
    ]
    relay = Relay(settings, engine, clock).start()
    try:
        with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
            assert client.sendmail(REP, [BUYER, PRIVATE], original) == {}
        relay.settle()
    finally:
        relay.stop()
    [tracked] = upstream.to(BUYER)
    [private] = upstream.to(PRIVATE)
    assert private == original  # do-not-track: the attachment stays, byte for byte
    copy = message_from_bytes(tracked, policy=policy.default)
    assert [p.get_filename() for p in copy.walk() if p.get_filename()] == []
    [url] = set(re.findall(r"http://track\.test/a/[A-Za-z0-9_-]+", tracked.decode()))
    app = create_app(settings)
    try:
        with TestClient(app) as web:
            got = web.get(urlsplit(url).path)
    finally:
        app.journal.close()
    assert got.status_code == 200 and got.content == report.get_payload(decode=True)


def test_recipients_are_matched_to_parties_as_find_party_does(
    settings: Settings, engine: Engine
) -> None:
    rcpts = ["both@client.test", "lead@client.test", "acct@client.test", "nobody@client.test"]
    with engine.begin() as conn:
        users.add(conn, "Rep", REP, opt_in=True)
        parties.add(conn, "contact", "Both", "both@client.test")
        parties.add(conn, "lead", "Both too", "both@client.test", follow=False)
        parties.add(conn, "lead", "Lead", "lead@client.test", follow=False)
        parties.add(conn, "account", "Account", "Acct@Client.test")
        expected = {r: parties.find(conn, r) for r in rcpts}
        service = Outgoing(Signer(*load_keyring(settings.secret_file)), settings.base_url)
        result = service.track(
            conn,
            message_from_bytes(sales_email(), policy=policy.default),
            sender=REP,
            recipients=rcpts,
        )
        rows = {r["emailaddress"]: r for r in conn.execute(select(emaildelivery)).mappings()}
        stored = conn.execute(select(email.c.activityid, email.c.emailtrackingid)).one()
    # The ids come back with the result: nobody reads them back from the row.
    assert tuple(stored) == (result.activity_id, result.tracking_id)
    assert [c.recipient for c in result.copies] == rcpts
    assert [c.delivery_id for c in result.copies] == [rows[r]["deliveryid"] for r in rcpts]
    for address in rcpts:
        party, row = expected[address], rows[address]
        found = (row["recipientobjecttypecode"], row["recipientobjectid"])
        assert found == ((party[0], party[1]) if party else (None, None))
        assert row["tracked"] is (party[2] if party else True)
    assert [c.decision.tracked for c in result.copies] == [True, False, True, True]


def test_swaks_over_starttls_and_implicit_tls(
    world: Any, engine: Engine, clock: Clock, tmp_path: Path
) -> None:
    need(shutil.which("swaks") is not None, "swaks", "apt-get install swaks")
    settings, upstream, keys = world
    eml = tmp_path / "q1.eml"
    eml.write_bytes(sales_email())
    for implicit in (False, True):
        relay = Relay(
            settings.model_copy(update={"relay_implicit_tls": implicit}), engine, clock
        ).start()
        try:
            out = subprocess.run(
                ["swaks", "--server", f"127.0.0.1:{relay.port}"]
                + (["--tlsc"] if implicit else ["--tls"])
                + ["--auth", "LOGIN", "--auth-user", REP, "--auth-password", keys[REP]]
                + ["--from", REP, "--to", BUYER, "--data", f"@{eml}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            assert "<~  250 2.0.0 OK queued as" in out.stdout
            relay.settle()
        finally:
            relay.stop()
    assert len(upstream.to(BUYER)) == 2


def test_auth_rules(relay: Relay, world: Any) -> None:
    settings, _upstream, keys = world
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as plain:
        plain.ehlo()
        assert "auth" not in plain.esmtp_features  # never offered in clear text
        assert plain.docmd("AUTH", "PLAIN")[0] == 538
        code, text = plain.mail(REP)
        assert (code, text[:5]) == (530, b"5.7.0")
    with connect(relay, settings.relay_tls_cert) as client:
        client.user, client.password = REP, "msk_000000000000_wrong"
        for _ in range(5):
            with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
                client.auth("PLAIN", client.auth_plain)
            assert (bad.value.smtp_code, bad.value.smtp_error[:5]) == (535, b"5.7.8")
        # Rate-limited now: even the right key is refused, temporarily.
        client.user, client.password = REP, keys[REP]
        with pytest.raises(smtplib.SMTPAuthenticationError) as limited:
            client.auth("PLAIN", client.auth_plain)
        assert (limited.value.smtp_code, limited.value.smtp_error[:5]) == (454, b"4.7.0")
    with connect(relay, settings.relay_tls_cert) as client:  # someone else's key
        client.user, client.password = "admin@northwind.test", keys[REP]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("LOGIN", client.auth_login, initial_response_ok=False)


def test_sender_rules(relay: Relay, world: Any) -> None:
    settings, _upstream, keys = world
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        code, text = client.mail("ceo@northwind.test")
        assert (code, text[:5]) == (550, b"5.7.1")
        assert client.mail(REP)[0] == 250
        assert client.rcpt("not an address@x")[0] in (501, 553)
    with connect(
        relay, settings.relay_tls_cert, keys["admin@northwind.test"], "admin@northwind.test"
    ) as client:
        assert client.mail(REP)[0] == 250  # an admin may relay for a known user
        client.rset()
        code, text = client.mail("stranger@elsewhere.test")
        assert (code, text[:5]) == (550, b"5.7.1")


def test_bad_messages_get_exact_statuses(relay: Relay, world: Any, engine: Engine) -> None:
    settings, upstream, keys = world
    small = settings.relay_max_message_bytes
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        code, text = client.mail(REP, [f"SIZE={small + 1}"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        for body in (
            b"just a line of text, no header block\r\n",
            b"From: rep@northwind.test\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        ):
            client.mail(REP)
            client.rcpt(BUYER)
            code, text = client.data(body)
            assert (code, text[:5]) == (554, b"5.6.0"), text
    with engine.connect() as conn:
        assert conn.execute(select(email)).all() == []
    assert upstream.received == []


def test_too_big_without_size_declared(world: Any, engine: Engine, clock: Clock) -> None:
    settings, upstream, keys = world
    relay = Relay(settings.model_copy(update={"relay_max_message_bytes": 4096}), engine, clock)
    relay.start()
    try:
        with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
            client.mail(REP)
            client.rcpt(BUYER)
            code, text = client.data(sales_email() + (b"x" * 70 + b"\r\n") * 80)
            assert (code, text[:5]) == (552, b"5.3.4")
    finally:
        relay.stop()
    assert upstream.received == []


def test_missing_message_id_and_eight_bit_headers(relay: Relay, world: Any, engine: Engine) -> None:
    settings, upstream, keys = world
    raw = sales_email(message_id=None).replace(
        b"Subject: Pricing for Q1", "Subject: Angebot für Q1 – Grüße".encode()
    )
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, [BUYER, PRIVATE], raw) == {}
    relay.settle()
    with engine.connect() as conn:
        row = conn.execute(select(email)).mappings().one()
    assert row["messageid"].startswith("<") and row["messageid"].endswith("@northwind.test>")
    assert "Angebot f" in row["subject"]
    for data in (upstream.to(BUYER)[0], upstream.to(PRIVATE)[0]):
        sent = message_from_bytes(data, policy=policy.default)
        assert sent["Message-ID"] == row["messageid"]  # replies will match the record
        assert "Angebot für Q1".encode() in data  # the 8-bit header went out as it came
    assert upstream.to(PRIVATE)[0].endswith(raw)  # untouched apart from the added id


def test_smtputf8(relay: Relay, world: Any, engine: Engine) -> None:
    settings, upstream, keys = world
    raw = sales_email().replace(f"Cc: {PRIVATE}".encode(), "Cc: jörg@client.test".encode())
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        client.sendmail(REP, [BUYER, "jörg@client.test"], raw, mail_options=["SMTPUTF8"])
    relay.settle()
    assert len(upstream.to("jörg@client.test")) == 1


def test_upstream_down_queues_then_delivers(
    relay: Relay, world: Any, engine: Engine, clock: Clock
) -> None:
    settings, upstream, keys = world
    upstream.stop()
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, [BUYER, PRIVATE], sales_email()) == {}
    relay.settle()  # the first attempt fails: connection refused
    spool: Spool = relay.server.spool
    queued = [spool.load(i) for i in spool.ready()]
    assert len(queued) == 2 and all(q and q.attempts == 1 for q in queued)
    assert all(q and "connecting to" in q.last_error for q in queued)

    upstream.start()
    clock.now += 30  # not due yet: the backoff holds it back
    relay.call(relay.server.worker.run_once())
    assert upstream.received == []
    clock.now += 60
    relay.call(relay.server.worker.run_once())
    assert len(upstream.to(BUYER)) == 1 and len(upstream.to(PRIVATE)) == 1
    assert spool.ready() == []


def test_store_or_spool_trouble_is_a_451_and_nothing_half_done(
    relay: Relay, world: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, upstream, keys = world

    def db_down(*_a: Any, **_k: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    def disk_full(*_a: Any, **_k: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    real_stage = Spool.stage
    calls = {"n": 0}

    def second_copy_fails(self: Spool, *a: Any, **k: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            disk_full()
        return real_stage(self, *a, **k)

    for target, fake in (
        ((Outgoing, "track"), db_down),
        ((Spool, "stage"), disk_full),
        ((Spool, "stage"), second_copy_fails),
    ):
        with monkeypatch.context() as m:
            m.setattr(*target, fake)
            with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
                client.mail(REP)
                client.rcpt(BUYER)
                client.rcpt(PRIVATE)
                code, text = client.data(sales_email())
            assert (code, text[:5]) == (451, b"4.3.0")
    with engine.connect() as conn:
        assert conn.execute(select(email)).all() == []  # rolled back
    spool_files = [p for p in relay.server.spool.root.iterdir() if p.is_file()]
    assert spool_files == []
    assert upstream.received == []


def test_many_senders_at_once(relay: Relay, world: Any, engine: Engine) -> None:
    settings, upstream, _keys = world
    senders = [f"rep{i}@northwind.test" for i in range(5)]
    with engine.begin() as conn:
        keys = {s: users.create_api_key(conn, users.add(conn, s, s, opt_in=True)) for s in senders}
    errors: list[BaseException] = []

    def send(n: int) -> None:
        sender = senders[n % len(senders)]
        try:
            with connect(relay, settings.relay_tls_cert, keys[sender], sender) as client:
                for k in range(2):
                    raw = sales_email(f"<m{n}-{k}@northwind.test>").replace(
                        f"From: Rep <{REP}>".encode(), f"From: <{sender}>".encode()
                    )
                    assert client.sendmail(sender, [BUYER, PRIVATE], raw) == {}
        except BaseException as exc:  # surfaced below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    relay.settle()
    with engine.connect() as conn:
        assert len(conn.execute(select(email.c.messageid)).all()) == 40
    assert len(upstream.to(BUYER)) == 40 and len(upstream.to(PRIVATE)) == 40


def test_plain_auth_only_from_localhost_when_allowed(
    world: Any, engine: Engine, clock: Clock
) -> None:
    settings, upstream, keys = world
    local = settings.model_copy(
        update={
            "relay_tls_cert": None,
            "relay_tls_key": None,
            "relay_allow_plain_auth_localhost": True,
        }
    )
    relay = Relay(local, engine, clock).start()
    try:
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
            client.login(REP, keys[REP])
            assert client.sendmail(REP, [BUYER], sales_email()) == {}
        relay.settle()
    finally:
        relay.stop()
    assert len(upstream.to(BUYER)) == 1


def test_dkim_signs_after_instrumenting(
    world: Any, engine: Engine, clock: Clock, tmp_path: Path
) -> None:
    import base64

    import dkim

    settings, upstream, keys = world
    # The key as an operator makes one (openssl), in the PKCS#1 PEM dkimpy reads.
    key_file = tmp_path / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(key_file), "2048"],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key_file), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signed = settings.model_copy(update={"dkim_key_file": key_file, "dkim_selector": "ms1"})
    relay = Relay(signed, engine, clock).start()
    try:
        with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
            client.sendmail(REP, [BUYER, PRIVATE], sales_email())
        relay.settle()
    finally:
        relay.stop()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"ms1._domainkey.northwind.test."
        return record

    for data in upstream.to(BUYER) + upstream.to(PRIVATE):
        assert data.startswith(b"DKIM-Signature:") and b"d=northwind.test" in data[:600]
        assert dkim.verify(data, dnsfunc=dns)


def test_relay_command_runs_in_the_foreground_and_stops_on_ctrl_c(
    world: Any, tmp_path: Path
) -> None:
    settings, upstream, keys = world
    port = free_port()
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_RELAY_PORT": str(port),
        "MAILSIGNAL_RELAY_TLS_CERT": str(settings.relay_tls_cert),
        "MAILSIGNAL_RELAY_TLS_KEY": str(settings.relay_tls_key),
        "MAILSIGNAL_SMARTHOST": str(settings.smarthost),
        "MAILSIGNAL_SMARTHOST_SECURITY": "none",
        "MAILSIGNAL_LOG_LEVEL": "warning",
    }
    # Run as cli.py will mount it: the Typer command function itself.
    code = "import typer; from mailsignal.cli.relay import relay; typer.run(relay)"
    log = (tmp_path / "relay.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=30)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "relay.log").read_text()
                time.sleep(0.1)
        client.starttls(context=ssl.create_default_context(cafile=str(settings.relay_tls_cert)))
        client.ehlo()
        client.login(REP, keys[REP])
        assert client.sendmail(REP, [BUYER], sales_email()) == {}
        client.quit()
        deadline = time.monotonic() + 30
        while not upstream.to(BUYER):
            assert time.monotonic() < deadline, "the relay never forwarded"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, (tmp_path / "relay.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert "relay: stopping" in (tmp_path / "relay.log").read_text()


# --- headers: Bcc, X-MailSignal-Id (#4) -------------------------------------------------


def test_bcc_is_stripped_from_every_copy_and_still_recorded(
    relay: Relay, world: Any, engine: Engine
) -> None:
    settings, upstream, keys = world
    base = sales_email()
    original = base.replace(
        b"Subject:",
        b"Bcc: boss@northwind.test,\r\n secret-partner@elsewhere.test\r\n"
        b"Resent-Bcc: audit@northwind.test\r\nSubject:",
        1,
    )
    rcpts = [BUYER, PRIVATE, "secret-partner@elsewhere.test"]
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, rcpts, original) == {}
    relay.settle()
    copies = [data for _f, _r, data in upstream.received]
    assert len(copies) == 3  # two tracked copies, one untracked
    for data in copies:
        names = {k.lower() for k in message_from_bytes(data, policy=policy.default)}
        assert not names & {"bcc", "resent-bcc"}
        assert b"secret-partner" not in data and b"boss@" not in data
    # Apart from the Bcc field the untracked copy is the client's bytes.
    assert upstream.to(PRIVATE)[0] == base
    with engine.connect() as conn:
        row = conn.execute(select(email)).mappings().one()
    assert "secret-partner@elsewhere.test" in row["torecipients"].split(";")


def test_tracked_copies_carry_x_mailsignal_id_and_replies_match_by_it(
    relay: Relay, world: Any, engine: Engine
) -> None:
    from mailsignal.pipeline.replies import IncomingMessage, Outcome, store_messages

    settings, upstream, keys = world
    # A client's own X-MailSignal-Id (a resent draft, say) must not survive: it would
    # point replies and bounces at another email.
    raw = sales_email().replace(b"Subject:", b"X-MailSignal-Id: <forged@elsewhere>\r\nSubject:")
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, [BUYER, PRIVATE, "bcc-only@client.test"], raw) == {}
    relay.settle()
    with engine.connect() as conn:
        row = conn.execute(select(email)).mappings().one()
    header = f"X-MailSignal-Id: <{row['emailtrackingid']}>".encode()
    for address in (BUYER, "bcc-only@client.test"):
        [data] = upstream.to(address)
        assert data.startswith(header + b"\r\n")
        sent = message_from_bytes(data, policy=policy.default)
        assert sent.get_all("X-MailSignal-Id") == [f"<{row['emailtrackingid']}>"]
    [private] = upstream.to(PRIVATE)  # do-not-track: no id of ours on it
    assert b"x-mailsignal-id" not in private.lower()

    # A reply that lost In-Reply-To and References (a ticketing system that kept our
    # header) is matched by the id alone.
    reply = (
        b"From: Dana Buyer <buyer@client.test>\r\nTo: rep@northwind.test\r\n"
        b"Subject: Re: Pricing for Q1\r\nMessage-ID: <r1@client.test>\r\n"
        b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n" + header + b"\r\n\r\nLooks good.\r\n"
    )
    # A bounce from a smarthost that rewrote our Message-ID still returns the header.
    rewritten = upstream.to("bcc-only@client.test")[0].replace(
        b"<q1-pricing@northwind.test>", b"<rewritten-by-smarthost@relay.example>"
    )
    bounce = (
        b"From: MAILER-DAEMON@relay.example\r\nTo: rep@northwind.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@relay.example>\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n"
        b"\r\nFinal-Recipient: rfc822; bcc-only@client.test\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + rewritten.partition(b"\r\n\r\n")[0]
        + b"\r\n--B--\r\n"
    )
    with engine.begin() as conn:
        outcomes = store_messages(
            conn, [IncomingMessage(reply, "reply"), IncomingMessage(bounce, "bounce")], settings
        )
    assert [o for o, _e in outcomes] == [Outcome.REPLY, Outcome.BOUNCE]
    with engine.connect() as conn:
        statuses = {r.emailaddress: r.status for r in conn.execute(select(emaildelivery))}
        assert conn.execute(select(email.c.replycount)).scalar_one() == 1
    assert statuses["bcc-only@client.test"] == "failed" and statuses[BUYER] == "sent"


# --- DATA read in pieces (server.py) -----------------------------------------------------


def test_data_reader_keeps_bytes_dots_and_limits(relay: Relay, world: Any) -> None:
    settings, upstream, keys = world
    body = (
        b".a line that starts with a dot\r\n..two dots\r\n.\r\n"  # smtplib stuffs these
        b"a line ending in a dot.\r\n" + b"x" * 998 + b"\r\nend\r\n"
    )
    raw = (
        b"From: Rep <rep@northwind.test>\r\nTo: private@client.test\r\nSubject: dots\r\n"
        b"Message-ID: <dots@northwind.test>\r\n\r\n" + body
    )
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, [PRIVATE], raw) == {}
        client.mail(REP)
        client.rcpt(PRIVATE)
        code, text = client.data(raw.replace(b"x" * 998, b"x" * 1000))
        assert (code, text[:5]) == (500, b"5.5.2")  # a line over 998 characters (+ slack)
        assert client.sendmail(REP, [PRIVATE], raw) == {}  # the session goes on
    relay.settle()
    assert [data for _f, _r, data in upstream.received] == [raw, raw]  # byte for byte


# --- group commit ------------------------------------------------------------------------


def test_messages_accepted_together_commit_together_and_fail_alone(
    relay: Relay, world: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailsignal.errors import InputError
    from mailsignal.mail.submitted import Submitted

    real_track = Outgoing.track

    def track(self: Outgoing, conn: Any, prepared: Any, **kw: Any) -> Any:
        if "Refuse me" in str(prepared.msg["Subject"]):
            raise InputError("sender rep@northwind.test is disabled")
        return real_track(self, conn, prepared, **kw)

    monkeypatch.setattr(Outgoing, "track", track)
    handler = relay.server.handler
    messages = [
        Submitted(REP, [BUYER, PRIVATE], [], sales_email(f"<g{n}@northwind.test>"))
        for n in range(3)
    ]
    messages[1].raw = messages[1].raw.replace(b"Pricing for Q1", b"Refuse me")
    messages.append(Submitted(REP, [BUYER], [], b"no header block at all\r\n"))
    results = handler.accept_group(messages)
    assert isinstance(results[1], InputError) and isinstance(results[3], Exception)
    ok = [r for r in results if isinstance(r, tuple)]
    assert len(ok) == 2 and all(len(queued) == 2 for _a, queued in ok)  # tracked + untracked
    with engine.connect() as conn:
        assert sorted(conn.execute(select(email.c.messageid)).scalars()) == [
            "<g0@northwind.test>",
            "<g2@northwind.test>",
        ]
    spool = relay.server.spool
    assert sorted(spool.ready()) == sorted(i for _a, queued in ok for i in queued)


# --- AUTH failures counted across relay processes ------------------------------------------


def test_auth_failure_limit_is_shared_by_relay_processes(
    world: Any, engine: Engine, clock: Clock
) -> None:
    settings, _upstream, keys = world
    # Two relays on one data directory, as `relay_workers` runs them (each its own
    # limiter object: only the file under data_dir is shared).
    first, second = Relay(settings, engine, clock).start(), Relay(settings, engine, clock).start()
    try:
        with connect(first, settings.relay_tls_cert) as client:
            client.user, client.password = REP, "msk_000000000000_wrong"
            for _ in range(5):
                with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
                    client.auth("PLAIN", client.auth_plain)
                assert bad.value.smtp_code == 535
        with connect(second, settings.relay_tls_cert) as client:
            client.user, client.password = REP, keys[REP]
            with pytest.raises(smtplib.SMTPAuthenticationError) as limited:
                client.auth("PLAIN", client.auth_plain)
            assert (limited.value.smtp_code, limited.value.smtp_error[:5]) == (454, b"4.7.0")
    finally:
        first.stop()
        second.stop()
    # ... and across a restart; only that login from that address (see tests/mail/test_auth.py).
    third = Relay(settings, engine, clock).start()
    try:
        with connect(third, settings.relay_tls_cert) as client:
            client.user, client.password = REP, keys[REP]
            with pytest.raises(smtplib.SMTPAuthenticationError) as limited:
                client.auth("PLAIN", client.auth_plain)  # same login and address: still limited
            assert limited.value.smtp_code == 454
        admin = "admin@northwind.test"
        with connect(third, settings.relay_tls_cert, keys[admin], admin):
            pass  # another login from the same address is not
    finally:
        third.stop()


# --- several relay processes -------------------------------------------------------------


def test_relay_workers_share_the_port_queue_and_database(world: Any, tmp_path: Path) -> None:
    settings, upstream, keys = world
    port = free_port()
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_RELAY_PORT": str(port),
        "MAILSIGNAL_RELAY_WORKERS": "2",
        "MAILSIGNAL_RELAY_TLS_CERT": str(settings.relay_tls_cert),
        "MAILSIGNAL_RELAY_TLS_KEY": str(settings.relay_tls_key),
        "MAILSIGNAL_SMARTHOST": str(settings.smarthost),
        "MAILSIGNAL_SMARTHOST_SECURITY": "none",
        "MAILSIGNAL_LOG_LEVEL": "warning",
    }
    code = "import typer; from mailsignal.cli.relay import relay; typer.run(relay)"
    with (tmp_path / "relay.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while b"2 processes" not in (tmp_path / "relay.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "relay.log"
            ).read_text()
            time.sleep(0.1)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert children  # the second relay process

        def send(n: int) -> None:
            client = smtplib.SMTP("127.0.0.1", port, timeout=30)
            client.starttls(context=ssl.create_default_context(cafile=str(settings.relay_tls_cert)))
            client.login(REP, keys[REP])
            for k in range(3):
                raw = sales_email(f"<w{n}-{k}@northwind.test>")
                assert client.sendmail(REP, [BUYER, PRIVATE], raw) == {}
            client.quit()

        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        deadline = time.monotonic() + 60
        while len(upstream.received) < 48:
            assert time.monotonic() < deadline, f"{len(upstream.received)} of 48 delivered"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, (tmp_path / "relay.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(upstream.to(BUYER)) == 24 and len(upstream.to(PRIVATE)) == 24
    ids = [message_from_bytes(d)["Message-ID"] for d in upstream.to(PRIVATE)]
    assert len(set(ids)) == 24  # each message once: no entry delivered by both processes
    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            assert len(conn.execute(select(email.c.messageid)).all()) == 24
    finally:
        engine.dispose()
    assert list((settings.data_dir / "outbound").glob("*.json")) == []


# --- the recipient lookup uses an index (migration 0006) -----------------------------------


def test_recipient_lookup_is_an_index_search(engine: Engine) -> None:
    from mailsignal.store.schema import contact

    addresses = ["dana@client.test", "pat@client.test"]
    query = select(contact.c.contactid).where(func.lower(contact.c.emailaddress1).in_(addresses))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: force the choice
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_contact_emailaddress1_lower" in plan, plan


# --- hostile input: a permanent refusal, nothing recorded (#10) ------------------------------


def _nested(depth: int) -> bytes:
    """A message whose body sits `depth` multiparts deep."""
    head = f"From: {REP}\r\nTo: {BUYER}\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opened = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    closed = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    body = "Content-Type: text/html\r\n\r\n<a href='https://northwind.test/x'>x</a>\r\n"
    return (head + opened + body + closed).encode()


def test_mime_nested_too_deep_is_a_permanent_554(relay: Relay, world: Any, engine: Engine) -> None:
    from mailsignal.instrument import MAX_DEPTH

    settings, upstream, keys = world
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        for depth in (2000, MAX_DEPTH + 1):
            client.mail(REP)
            client.rcpt(BUYER)
            code, text = client.data(_nested(depth))
            assert (code, text[:5]) == (554, b"5.6.0"), text  # not 451: a retry fails again
            assert b"nest more than 100 levels" in text
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(email)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(emaildelivery)).scalar() == 0
        assert client.sendmail(REP, [BUYER], _nested(MAX_DEPTH)) == {}
    relay.settle()
    assert len(upstream.to(BUYER)) == 1 and tracked_urls(upstream.to(BUYER)[0].decode())


def test_junk_headers_and_links_are_stored_or_refused_alike_on_both_backends(
    relay: Relay, world: Any, engine: Engine
) -> None:
    """A NUL or raw 8-bit bytes in Subject and a link, a NUL in a Message-ID: SQLite kept
    them, PostgreSQL refused them with a 451 (a DataError), so clients retried forever."""
    settings, upstream, keys = world
    junk = (
        f"From: {REP}\r\nTo: {BUYER}\r\nSubject: caf\xe9 \x00 x\r\n"
        "Message-ID: <junk-1@northwind.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<a href='https://northwind.test/\x00a'>t\x00x</a> <a href='HTTPS://Northwind.test/Up'>u</a>"
        "\r\n"
    ).encode("latin-1")
    with connect(relay, settings.relay_tls_cert, keys[REP]) as client:
        assert client.sendmail(REP, [BUYER], junk) == {}
        client.mail(REP)
        client.rcpt(BUYER)
        code, text = client.data(junk.replace(b"<junk-1@", b"<junk\x00-2@"))
        assert (code, text[:5]) == (554, b"5.6.0"), text
    relay.settle()
    with engine.connect() as conn:
        [row] = conn.execute(select(email)).mappings().all()
        from mailsignal.store.schema import trackedlink

        urls = conn.execute(select(trackedlink.c.url)).scalars().all()
    assert row["subject"] == "caf\ufffd \ufffd x"
    assert urls == ["https://Northwind.test/Up"]  # the NUL link is left as it was, untracked
    [copy] = upstream.to(BUYER)
    assert b"https://northwind.test/\x00a" in copy


def test_hostile_mime_is_queued_or_refused_for_good(
    relay: Relay, world: Any, engine: Engine
) -> None:
    """Hypothesis over the MIME strategies (tests/instrument/mime_strategies.py): every
    message is accepted (250) or refused with a 5xx, never a 451 that has the client retry
    the same bytes forever, and a refused one leaves no row behind."""
    from hypothesis import HealthCheck, given, settings

    from instrument.mime_strategies import messages  # type: ignore[import-not-found]

    settings_, _upstream, keys = world

    def counts() -> tuple[int, int]:
        with engine.connect() as conn:
            return (
                conn.execute(select(func.count()).select_from(email)).scalar_one(),
                conn.execute(select(func.count()).select_from(emaildelivery)).scalar_one(),
            )

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(raw=messages)
    def send(raw: bytes) -> None:
        before = counts()
        with connect(relay, settings_.relay_tls_cert, keys[REP]) as client:
            client.mail(REP)
            client.rcpt(BUYER)
            code, text = client.data(raw)
        assert code == 250 or 500 <= code < 600, (code, text)
        if code != 250:
            assert counts() == before, text

    send()
