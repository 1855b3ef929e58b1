"""The outbound spool and its worker: durable across crashes, retries with backoff,
RFC 3464 bounces at the deadline (a fake clock) or on a 5xx, and never a silent loss.
The smarthost is a real aiosmtpd server; the worker talks to it with aiosmtplib."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from conftest import free_port
from helpers import add_rep, track_html
from mailsignal.cli import relay as cli_relay
from mailsignal.keyring import load_keyring
from mailsignal.mail.delivery import PENDING_GRACE_SECONDS, OutboundWorker, backoff
from mailsignal.mail.outbound import Rcpt, Spool
from mailsignal.mail.server import mark_failed
from mailsignal.mail.smarthost import SendResult, SmtpTransport
from mailsignal.settings import Settings
from mailsignal.store.schema import emaildelivery
from mailsignal.tokens import Signer

REP = "rep@northwind.test"
MESSAGE = (
    b"From: Rep <rep@northwind.test>\r\nTo: dana@contoso.test\r\nSubject: Q1 pricing\r\n"
    b"Message-ID: <q1@northwind.test>\r\n\r\nHello Dana\r\n"
)


class Upstream:
    """A smarthost whose answers the test sets; it keeps what it accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted: list[tuple[str, list[str], bytes]] = []
        self.refuse_rcpt: dict[str, str] = {}
        self.data_reply: Callable[[str], str | None] = lambda _sender: None
        self.hang: threading.Event | None = None  # set: DATA waits for `release`
        self.release = threading.Event()
        self.store_before_hang = False
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        entry = (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        if self.hang is not None and not self.hang.is_set():
            if self.store_before_hang:
                self.accepted.append(entry)
            self.hang.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            return "451 4.3.0 the client went away"
        reply = self.data_reply(envelope.mail_from)
        if reply is not None:
            return reply
        self.accepted.append(entry)
        return "250 2.0.0 OK"

    def __enter__(self) -> Upstream:
        self.controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.controller.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _transport(upstream: Upstream) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", upstream.port, security="none", timeout=30)


def _stage(spool: Spool, clock: Clock, rcpts: list[Rcpt], hours: float = 48) -> str:
    entry = spool.stage(
        MESSAGE,
        mail_from=REP,
        rcpts=rcpts,
        now=clock(),
        deadline=clock() + hours * 3600,
        activity_id="3f1c0000-0000-4000-8000-000000000001",
    )
    spool.sync()
    spool.commit([entry])
    return entry


def _run(worker: OutboundWorker) -> None:
    async def once() -> None:
        try:
            await worker.run_once()
        finally:
            await worker.transport.close()  # pooled connections belong to this loop

    asyncio.run(once())


def test_spool_entries_are_invisible_until_committed(tmp_path: Path) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = spool.stage(
        MESSAGE, mail_from=REP, rcpts=[Rcpt("a@x.test", 1)], now=clock(), deadline=clock() + 60
    )
    assert spool.ready() == [] and (spool.root / f"{entry}.eml").read_bytes() == MESSAGE
    spool.commit([entry])
    assert spool.ready() == [entry]
    with spool.claim(entry) as mine, spool.claim(entry) as theirs:
        assert (mine, theirs) == (True, False)  # a second worker keeps off
    queued = spool.load(entry)
    assert queued is not None and queued.rcpts == [Rcpt("a@x.test", 1)]
    spool.done(entry)
    assert spool.ready() == [] and not any(spool.root.glob(f"{entry}*"))


def test_entries_staged_together_are_named_and_synced_at_once(tmp_path: Path) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()

    def stage(n: int) -> str:
        return spool.stage(
            MESSAGE + b"%d" % n,
            mail_from=REP,
            rcpts=[Rcpt(f"r{n}@x.test", n)],
            now=clock(),
            deadline=clock() + 60,
            durable=False,
        )

    ids = [stage(n) for n in range(4)]
    named = {p.name for p in spool.root.iterdir() if not p.name.startswith(".")}
    assert named == {"failed"}  # nothing under an entry's name before sync
    assert spool.ready() == [] and spool.pending(time.time() + 3600) == []
    spool.sync(ids[:2])
    for n, entry in enumerate(ids[:2]):
        assert (spool.root / f"{entry}.eml").read_bytes() == MESSAGE + b"%d" % n
        assert (spool.root / f"{entry}.pending").is_file()
    spool.discard(ids[2:3])
    spool.commit(ids[:2] + ids[3:])  # an entry committed without sync is synced first
    assert spool.ready() == sorted(ids[:2] + ids[3:])
    assert [p.name for p in spool.root.iterdir() if p.name.startswith(".")] == []
    queued = spool.load(ids[3])
    assert queued is not None and queued.rcpts == [Rcpt("r3@x.test", 3)]


def test_pending_entries_settle_by_the_database_after_a_crash(
    tmp_path: Path, upstream: Upstream
) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    kept = spool.stage(
        MESSAGE,
        mail_from=REP,
        rcpts=[Rcpt("kept@x.test")],
        now=clock(),
        deadline=clock() + 60,
        activity_id="committed",
    )
    lost = spool.stage(
        MESSAGE,
        mail_from=REP,
        rcpts=[Rcpt("lost@x.test")],
        now=clock(),
        deadline=clock() + 60,
        activity_id="rolled-back",
    )
    fresh = spool.stage(
        MESSAGE,
        mail_from=REP,
        rcpts=[Rcpt("fresh@x.test")],
        now=clock(),
        deadline=clock() + 60,
        activity_id="in-flight",
    )
    old = time.time() - PENDING_GRACE_SECONDS - 5
    for entry in (kept, lost):
        os.utime(spool.root / f"{entry}.pending", (old, old))
    worker = OutboundWorker(
        spool,
        _transport(upstream),
        bounce_after_seconds=3600,
        committed=lambda a: a == "committed",
        clock=clock,
    )
    _run(worker)
    assert [r for _f, r, _d in upstream.accepted] == [["kept@x.test"]]
    assert not any(spool.root.glob(f"{lost}*"))  # its client got a 4xx and resends
    assert (spool.root / f"{fresh}.pending").exists()  # a relay may still be committing it


WORKER = """
import asyncio, sys
from pathlib import Path
from mailsignal.mail.delivery import OutboundWorker
from mailsignal.mail.outbound import Spool
from mailsignal.mail.smarthost import SmtpTransport

transport = SmtpTransport("127.0.0.1", int(sys.argv[2]), security="none", timeout=60)
worker = OutboundWorker(Spool(Path(sys.argv[1])), transport, bounce_after_seconds=3600)
asyncio.run(worker.run_once())
"""


@pytest.mark.parametrize("stored_before_kill", [False, True])
def test_worker_killed_mid_delivery_loses_nothing(
    tmp_path: Path, upstream: Upstream, stored_before_kill: bool
) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = _stage(spool, clock, [Rcpt("dana@contoso.test", 7)])
    upstream.hang, upstream.store_before_hang = threading.Event(), stored_before_kill
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(spool.root), str(upstream.port)])
    try:
        assert upstream.hang.wait(60), "the worker never reached DATA"
        os.kill(proc.pid, signal.SIGKILL)  # mid-delivery: DATA sent, no reply yet
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    upstream.release.set()
    assert spool.ready() == [entry]  # still queued, and its claim died with the process

    _run(OutboundWorker(spool, _transport(upstream), bounce_after_seconds=3600, clock=clock))
    assert spool.ready() == []
    # At-least-once: if the smarthost had stored it before the crash, it gets it again.
    assert len(upstream.accepted) == (2 if stored_before_kill else 1)
    assert all(data == MESSAGE for _f, _r, data in upstream.accepted)


def test_bounce_after_the_deadline(
    tmp_path: Path, upstream: Upstream, engine: Engine, settings: Settings
) -> None:
    with engine.begin() as conn:
        add_rep(conn)
        tracked = track_html(
            conn, Signer(*load_keyring(settings.secret_file)), ["dana@contoso.test"]
        )
    delivery = tracked.copies[0].delivery_id
    upstream.data_reply = lambda sender: (
        None if sender == "<>" else "451 4.7.1 greylisted, try later"
    )
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = _stage(spool, clock, [Rcpt("dana@contoso.test", delivery)], hours=48)
    worker = OutboundWorker(
        spool,
        _transport(upstream),
        bounce_after_seconds=48 * 3600,
        clock=clock,
        mark_failed=functools.partial(mark_failed, engine),
        hostname="relay.northwind.test",
    )
    for step in (0, 60, 120, 240):
        clock.now += step
        _run(worker)
    queued = spool.load(entry)
    assert queued is not None and queued.attempts == 4 and "greylisted" in queued.last_error
    assert upstream.accepted == []

    clock.now = queued.deadline + 1
    _run(worker)
    assert spool.ready() == []
    [(sender, rcpts, data)] = upstream.accepted
    assert (sender, rcpts) == ("<>", [REP])
    report = message_from_bytes(data, policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    _text, status, headers = report.iter_parts()
    assert status.get_content_type() == "message/delivery-status"
    assert b"Final-Recipient: rfc822; dana@contoso.test" in data
    assert b"Status: 4.4.7" in data and b"Action: failed" in data
    assert b"Reporting-MTA: dns; relay.northwind.test" in data
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: Q1 pricing" in data and b"Hello Dana" not in data
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(emaildelivery.c.status).where(emaildelivery.c.deliveryid == delivery)
            ).scalar()
            == "failed"
        )


def test_permanent_refusal_bounces_at_once_for_that_recipient_only(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.refuse_rcpt["gone@contoso.test"] = "550 5.1.1 <gone@contoso.test>: no such user"
    failed: list[list[int]] = []
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    _stage(spool, clock, [Rcpt("dana@contoso.test", 1), Rcpt("gone@contoso.test", 2)])
    worker = OutboundWorker(
        spool,
        _transport(upstream),
        bounce_after_seconds=3600,
        clock=clock,
        mark_failed=failed.append,
    )
    _run(worker)
    assert spool.ready() == []
    delivered, bounce = upstream.accepted
    assert delivered[1] == ["dana@contoso.test"]
    assert bounce[:2] == ("<>", [REP])
    assert b"Status: 5.1.1" in bounce[2] and b"no such user" in bounce[2]
    assert failed == [[2]]


def test_an_undeliverable_bounce_is_set_aside_not_lost(tmp_path: Path, upstream: Upstream) -> None:
    upstream.data_reply = lambda _sender: "554 5.7.1 rejected by policy"
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = _stage(spool, clock, [Rcpt("dana@contoso.test", 1)])
    _run(OutboundWorker(spool, _transport(upstream), bounce_after_seconds=3600, clock=clock))
    assert spool.ready() == [] and upstream.accepted == []
    [aside] = spool.failed()  # the bounce itself was refused
    assert aside.bounce and aside.rcpts == [Rcpt(REP)]
    assert not any(spool.root.glob(f"{entry}*"))

    upstream.data_reply = lambda _sender: None
    assert spool.requeue_failed(aside.id, clock(), clock() + 3600)
    _run(OutboundWorker(spool, _transport(upstream), bounce_after_seconds=3600, clock=clock))
    assert [r for _f, r, _d in upstream.accepted] == [[REP]] and spool.failed() == []


def test_smarthost_down_is_temporary(tmp_path: Path) -> None:
    transport = SmtpTransport("127.0.0.1", free_port(), security="none", timeout=5)
    result = asyncio.run(transport.send(REP, ["dana@contoso.test"], MESSAGE, []))
    assert result.permanent == {} and "connecting to" in result.temporary["dana@contoso.test"]


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 30)] == [60, 120, 240, 480, 3600, 3600, 3600]


def test_outbound_cli_lists_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSIGNAL_DATA_DIR", str(tmp_path))
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = _stage(spool, clock, [Rcpt("dana@contoso.test", 1)])
    queued = spool.load(entry)
    assert queued is not None
    queued.next_attempt, queued.attempts, queued.last_error = clock() + 900, 3, "451 4.3.0 busy"
    spool.save(queued)
    runner = CliRunner()
    listed = runner.invoke(cli_relay.outbound_app, ["list"])
    assert listed.exit_code == 0 and entry in listed.output and "451 4.3.0 busy" in listed.output
    retried = runner.invoke(cli_relay.outbound_app, ["retry", entry])
    assert retried.exit_code == 0 and "1 entries due now" in retried.output
    again = spool.load(entry)
    assert again is not None and again.next_attempt <= time.time()


class Scripted:
    """A transport with scripted results, for the worker's bookkeeping alone."""

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[list[str]] = []

    async def send(self, mail_from: str, rcpts: Any, data: bytes, options: Any) -> SendResult:
        self.sent.append(list(rcpts))
        return self.results.pop(0)

    async def close(self) -> None:
        return None


def test_only_failed_recipients_are_retried(tmp_path: Path) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    transport = Scripted(SendResult(temporary={"b@x.test": "452 4.2.2 mailbox full"}), SendResult())
    entry = _stage(spool, clock, [Rcpt("a@x.test", 1), Rcpt("b@x.test", 2)])
    worker = OutboundWorker(spool, transport, bounce_after_seconds=3600, clock=clock)
    _run(worker)
    queued = spool.load(entry)
    assert queued is not None and queued.rcpts == [Rcpt("b@x.test", 2)]
    clock.now += backoff(1)
    _run(worker)
    assert transport.sent == [["a@x.test", "b@x.test"], ["b@x.test"]] and spool.ready() == []


def test_an_unreadable_envelope_is_set_aside_not_retried_forever(
    tmp_path: Path, upstream: Upstream
) -> None:
    spool, clock = Spool(tmp_path / "outbound"), Clock()
    entry = _stage(spool, clock, [Rcpt("dana@contoso.test", 1)])
    (spool.root / f"{entry}.json").write_text("{torn")
    _run(OutboundWorker(spool, _transport(upstream), bounce_after_seconds=3600, clock=clock))
    assert spool.ready() == [] and upstream.accepted == []
    assert (spool.failed_dir / f"{entry}.eml").read_bytes() == MESSAGE


def test_transport_reuses_its_connection_and_sends_dots_and_bare_line_feeds(
    upstream: Upstream,
) -> None:
    transport = _transport(upstream)
    odd = MESSAGE + b".starts with a dot\r\nbare\nline feed\r\n"

    async def go() -> list[Any]:
        try:
            return [await transport.send(REP, ["dana@contoso.test"], odd, []) for _ in range(3)]
        finally:
            assert len(transport._idle) == 1  # one connection, used three times
            await transport.close()

    results = asyncio.run(go())
    assert all(not r.temporary and not r.permanent for r in results)
    assert [data for _f, _r, data in upstream.accepted] == [
        odd.replace(b"bare\nline", b"bare\r\nline")
    ] * 3
