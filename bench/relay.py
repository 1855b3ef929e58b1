"""Relay throughput: messages/s through the MailSignal relay against straight to upstream.

The anchor is the same client sending the same messages straight to the same upstream
(an aiosmtpd server writing a Maildir, in its own process). The relay (`mailsignal
relay`, its own process, SQLite store) authenticates, records, instruments one copy per
tracked recipient, spools every copy durably (fsync) and forwards it. A run's time goes
from the client's first command until the upstream holds every transaction it should
get, so it measures delivered mail, not accepted mail. Each message is a typical 60 KB
HTML sales email (text + HTML alternative, 30 links) to 1-3 recipients, one in three of
them a do-not-track contact. Runs alternate direct/relay; medians and their ratio print.

`--forwarder` adds a third contender for scale: a bare forwarder (aiosmtpd in, aiosmtplib
out, its own process) that sends the same transactions as the relay (one per tracked
recipient, one for the do-not-track ones) without parsing, recording, instrumenting or
spooling anything. What it reaches bounds what any relay doing that fan-out on this
machine can reach.

`--workers N` runs the relay as N processes on the one port (`relay_workers`).

    .venv/bin/python bench/relay.py [--messages 200] [--concurrency 8] [--rounds 5]
                                    [--forwarder] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailsignal.keyring import create_secret  # noqa: E402
from mailsignal.store import parties, users  # noqa: E402
from mailsignal.store.db import make_engine, migrate  # noqa: E402

SENDER = "rep@northwind.test"
UPSTREAM = """
import mailbox, sys, time
from aiosmtpd.controller import Controller
class Sink:
    def __init__(self, path): self.box = mailbox.Maildir(path, create=True)
    async def handle_DATA(self, server, session, envelope):
        self.box.add(envelope.original_content)
        return "250 2.0.0 OK"
c = Controller(Sink(sys.argv[1]), hostname="127.0.0.1", port=int(sys.argv[2]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
FORWARDER = """
import asyncio, sys, time
import aiosmtplib
from aiosmtpd.controller import Controller
class Forward:
    def __init__(self, port): self.port, self.pool, self.tasks = port, None, set()
    async def send(self, sender, rcpts, data):
        if self.pool is None:
            self.pool = asyncio.Queue()
            for _ in range(8): self.pool.put_nowait(None)
        client = await self.pool.get()
        try:
            if client is None:
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port)
                await client.connect()
            await client.sendmail(sender, rcpts, data)
        finally:
            self.pool.put_nowait(client)
    async def handle_DATA(self, server, session, envelope):
        rcpts, data = envelope.rcpt_tos, envelope.original_content
        private = [r for r in rcpts if r.startswith("private")]
        groups = [[r] for r in rcpts if r not in private] + ([private] if private else [])
        for group in groups:
            task = asyncio.ensure_future(self.send(envelope.mail_from, group, data))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return "250 2.0.0 OK"
c = Controller(Forward(int(sys.argv[2])), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
CLIENT = """
import json, smtplib, sys, threading, time
port, key, conc, msg_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
plan = json.loads(sys.argv[5])
data = open(msg_file, "rb").read()
clients = []
for _ in range(conc):
    c = smtplib.SMTP("127.0.0.1", port, timeout=120)
    c.ehlo()
    if key:
        c.login("rep@northwind.test", key)
    clients.append(c)
print(json.dumps({"start": time.time()}), flush=True)
def work(i):
    for rcpts in plan[i::conc]:
        refused = clients[i].sendmail("rep@northwind.test", rcpts, data)
        assert not refused, refused
threads = [threading.Thread(target=work, args=(i,)) for i in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"submitted": time.time()}), flush=True)
for c in clients: c.quit()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sales_email() -> bytes:
    """A 60 KB HTML sales email: table layout, inline styles, 30 tracked links."""
    rows = []
    for i in range(30):
        rows.append(
            f'<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;font-size:15px;'
            f'line-height:22px;color:#333333">'
            f'<h3 style="margin:0 0 8px;color:#0b5394">Feature {i}: faster onboarding</h3>'
            f'<p style="margin:0 0 8px">{"Teams cut their ramp-up time with guided setup. " * 29}'
            f'</p><a href="https://northwind.test/features/{i}?utm_source=email&amp;utm_campaign=q1"'
            f' style="color:#ffffff;background:#0b5394;padding:8px 16px;border-radius:4px;'
            f'text-decoration:none">Read more</a></td></tr>'
        )
    html = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Q1</title></head>'
        '<body style="margin:0;background:#f4f4f4"><table role="presentation" width="100%" '
        'cellpadding="0" cellspacing="0" style="max-width:640px;margin:0 auto;background:#fff">'
        + "".join(rows)
        + "</table></body></html>"
    )
    msg = EmailMessage()
    msg["From"] = f"Rep <{SENDER}>"
    msg["To"] = "buyer@client.test"
    msg["Subject"] = "Q1 pricing and the features you asked about"
    msg.set_content("Hi, the Q1 pricing: https://northwind.test/pricing\n" * 40)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=SMTP)


def plan(messages: int) -> list[list[str]]:
    """1-3 recipients per message; every third address is a do-not-track contact."""
    out, n = [], 0
    for i in range(messages):
        rcpts = []
        for _ in range(1 + i % 3):
            rcpts.append(f"private{n}@client.test" if n % 3 == 2 else f"buyer{n}@client.test")
            n += 1
        out.append(rcpts)
    return out


def transactions(rcpt_plan: list[list[str]], relay: bool) -> int:
    if not relay:
        return len(rcpt_plan)
    return sum(
        sum(1 for r in rs if r.startswith("buyer")) + any(r.startswith("private") for r in rs)
        for rs in rcpt_plan
    )


def count(maildir: Path) -> int:
    return len(os.listdir(maildir / "new")) if (maildir / "new").is_dir() else 0


def run(
    port: int,
    key: str,
    conc: int,
    eml: Path,
    rcpt_plan: list[list[str]],
    maildir: Path,
    expect: int,
) -> float:
    before = count(maildir)
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(port), key, str(conc), str(eml), json.dumps(rcpt_plan)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    start = json.loads(proc.stdout.readline())["start"]
    deadline = time.time() + 600
    while count(maildir) < before + expect:
        if time.time() > deadline or proc.poll() not in (None, 0):
            raise RuntimeError(f"only {count(maildir) - before} of {expect} delivered")
        time.sleep(0.005)
    done = time.time()
    proc.wait(60)
    return done - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forwarder", action="store_true", help="also run a bare forwarder")
    parser.add_argument("--workers", type=int, default=1, help="relay processes (relay_workers)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-relay-"))
    data_dir, maildir = tmp / "data", tmp / "maildir"
    create_secret(data_dir / "secret.key")
    engine = make_engine(f"sqlite:///{data_dir / 'mailsignal.db'}")
    migrate(engine)
    with engine.begin() as conn:
        key = users.create_api_key(conn, users.add(conn, "Rep", SENDER, opt_in=True))
        for n in range(3 * args.messages):
            if n % 3 == 2:
                parties.add(conn, "contact", f"P{n}", f"private{n}@client.test", follow=False)
    engine.dispose()
    eml = tmp / "sales.eml"
    eml.write_bytes(sales_email())
    rcpt_plan = plan(args.messages)

    up_port, relay_port = free_port(), free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(maildir), str(up_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(data_dir),
        "MAILSIGNAL_RELAY_PORT": str(relay_port),
        "MAILSIGNAL_SMARTHOST": f"127.0.0.1:{up_port}",
        "MAILSIGNAL_SMARTHOST_SECURITY": "none",
        "MAILSIGNAL_RELAY_ALLOW_PLAIN_AUTH_LOCALHOST": "true",
        "MAILSIGNAL_LOG_LEVEL": "warning",
        "MAILSIGNAL_RELAY_WORKERS": str(args.workers),
    }
    forwarder = None
    if args.forwarder:
        fw_port = free_port()
        forwarder = subprocess.Popen(
            [sys.executable, "-c", FORWARDER, str(fw_port), str(up_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert forwarder.stdout is not None and forwarder.stdout.readline().strip() == "ready"
    relay = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import typer; from mailsignal.cli.relay import relay; typer.run(relay)",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", relay_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        print(
            f"{args.messages} messages of {eml.stat().st_size // 1024} KB, 1-3 recipients, "
            f"{args.concurrency} connections, {args.rounds} rounds, "
            f"{args.workers} relay process{'es' if args.workers > 1 else ''}"
        )
        direct, relayed, forwarded = [], [], []
        for i in range(args.rounds):
            t = run(
                up_port,
                "",
                args.concurrency,
                eml,
                rcpt_plan,
                maildir,
                transactions(rcpt_plan, False),
            )
            direct.append(args.messages / t)
            t = run(
                relay_port,
                key,
                args.concurrency,
                eml,
                rcpt_plan,
                maildir,
                transactions(rcpt_plan, True),
            )
            relayed.append(args.messages / t)
            line = f"round {i + 1}: direct {direct[-1]:7.1f} msg/s   relay {relayed[-1]:7.1f} msg/s"
            if args.forwarder:
                expect = transactions(rcpt_plan, True)
                t = run(fw_port, "", args.concurrency, eml, rcpt_plan, maildir, expect)
                forwarded.append(args.messages / t)
                line += f"   forwarder {forwarded[-1]:7.1f} msg/s"
            print(line)
        d, r = statistics.median(direct), statistics.median(relayed)
        print(f"median: direct {d:.1f} msg/s, relay {r:.1f} msg/s, ratio {r / d:.2f} (aim >= 0.7)")
        if forwarded:
            f = statistics.median(forwarded)
            print(f"median: bare forwarder {f:.1f} msg/s, ratio {f / d:.2f} (the fan-out alone)")
    finally:
        relay.terminate()
        relay.wait(30)
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait(10)
        upstream.kill()
        upstream.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
