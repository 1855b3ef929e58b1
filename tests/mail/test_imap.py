"""The real IMAP path: imaplib against a real Dovecot (Debian dovecot-imapd) started here
with a private config, and against a tiny socket server that drops the connection in
the middle of a FETCH. Messages reach Dovecot by IMAP APPEND, as a delivery agent's
copy would appear to a client."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from conftest import FIXTURES, cli, free_port, need
from helpers import HTML, add_rep
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.mail.imap import connect_imap, encode_folder
from mailsignal.pipeline.mailboxes import set_mailbox
from mailsignal.pipeline.mailsync import Outcome, sync_all
from mailsignal.settings import Settings
from mailsignal.store import emails as store_emails
from mailsignal.store import events as store_events
from mailsignal.store.schema import mailbox
from mailsignal.tokens import Signer

pytestmark = pytest.mark.slow
SENT_ID = "<20261120093000.4711@northwind.test>"
REP = "rep@northwind.test"
PASSWORD = "s3cret-pässword"
NOBODY = 65534  # Dovecot refuses to serve mail as root; nobody/nogroup on Debian

CONF = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = {name}
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    def __init__(self, port: int, base: Path) -> None:
        self.port = port
        self.base = base

    def client(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.authenticate("PLAIN", lambda _c: f"\0{REP}\0{PASSWORD}".encode())
        return imap

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        imap = self.client()
        when = imaplib.Time2Internaldate(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
        typ, data = imap.append(encode_folder(folder), None, when, raw)
        assert typ == "OK", data
        imap.logout()

    def command(self, *args: str) -> None:
        imap = self.client()
        typ, data = getattr(imap, args[0])(*args[1:])
        assert typ == "OK", data
        imap.logout()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    exe = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
    need(exe is not None, "Dovecot", "apt-get install dovecot-imapd")
    need(os.geteuid() == 0, "root for Dovecot", "run as root (CI does): Dovecot drops privileges")
    # Not tmp_path: pytest's 0700 parent directories would keep Dovecot's unprivileged
    # login and mail processes out of their sockets and the Maildir.
    base = Path(tempfile.mkdtemp(prefix="ms-dovecot-"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    (base / "passwd").write_text(f"{REP}:{{PLAIN}}{PASSWORD}:{NOBODY}:{NOBODY}::{home}::\n")
    port = free_port()
    conf = base / "dovecot.conf"
    conf.write_text(CONF.format(base=base, name=base.name, port=port))
    log = (base / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "-F", "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
    )
    server = Dovecot(port, base)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.client().logout()
                break
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((base / "stderr.log").read_text()) from None
                time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(20)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _send(engine: Engine, settings: Settings, recipients: list[str]) -> Any:
    with engine.begin() as conn:
        add_rep(conn)
        msg = outgoing.build_message(REP, recipients, "Hello", HTML, None, SENT_ID)
        service = outgoing.Outgoing(
            Signer(*load_keyring(settings.secret_file)), "http://track.test"
        )
        return service.track(conn, msg, sender=REP, recipients=recipients)


def _fixture(name: str) -> bytes:
    return (FIXTURES / "replies" / name).read_bytes()


def _set_mailbox(engine: Engine, settings: Settings, port: int, folders: list[str]) -> None:
    with engine.begin() as conn:
        set_mailbox(
            conn,
            load_keyring(settings.secret_file),
            REP,
            host="127.0.0.1",
            port=port,
            security="none",
            password=PASSWORD,
            folders=folders,
        )


def _sync(engine: Engine, settings: Settings) -> Any:
    ((_address, summary),) = sync_all(
        engine, settings, load_keyring(settings.secret_file), connect_imap
    )
    return summary


def _state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(mailbox.c.syncstate)).scalar_one())


def test_dovecot_sync_reads_new_mail_once_and_survives_uidvalidity_change(
    dovecot: Dovecot, engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings, ["dana@contoso.test", "lee@fabrikam.test"])
    dovecot.command("create", encode_folder("Kunden Ü"))
    _set_mailbox(engine, settings, dovecot.port, ["INBOX", "Kunden Ü"])
    dovecot.append(_fixture("gmail_human_reply.eml"))
    dovecot.append(_fixture("exchange_oof.eml"))
    dovecot.append(b"From: news@shop.test\r\nSubject: Sale\r\n\r\n50% off\r\n")
    dovecot.append(_fixture("postfix_bounce.eml"), "Kunden Ü")

    summary = _sync(engine, settings)
    assert summary.failed is None, summary.failed
    counts = {o: summary.counts[o] for o in Outcome if summary.counts[o]}
    assert counts == {
        Outcome.REPLY: 1,
        Outcome.AUTO_REPLY: 1,
        Outcome.UNMATCHED: 1,
        Outcome.BOUNCE: 1,
    }
    state = _state(engine)
    assert state["INBOX"]["lastuid"] == 3 and state["Kunden Ü"]["lastuid"] == 1
    # EXAMINE + BODY.PEEK: the rep's mail is still unread.
    imap = dovecot.client()
    imap.select("INBOX", readonly=True)
    _typ, flags = imap.fetch("1:*", "(FLAGS)")
    imap.logout()
    assert not any(b"\\Seen" in f for f in flags if isinstance(f, bytes))

    dovecot.append(_fixture("outlook_human_reply.eml"))
    summary = _sync(engine, settings)
    assert summary.read == 1 and summary.counts[Outcome.REPLY] == 1
    assert _state(engine)["INBOX"]["lastuid"] == 4

    # Recreating a folder gives it a new UIDVALIDITY: read again, nothing stored twice.
    old = state["Kunden Ü"]["uidvalidity"]
    dovecot.command("delete", encode_folder("Kunden Ü"))
    time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock in seconds
    dovecot.command("create", encode_folder("Kunden Ü"))
    dovecot.append(_fixture("postfix_bounce.eml"), "Kunden Ü")
    dovecot.append(_fixture("exim_bounce.eml"), "Kunden Ü")
    summary = _sync(engine, settings)
    assert any("UIDVALIDITY changed" in n for n in summary.notes)
    assert summary.counts[Outcome.DUPLICATE] == 1 and summary.counts[Outcome.BOUNCE] == 1
    assert _state(engine)["Kunden Ü"]["uidvalidity"] != old

    with engine.connect() as conn:
        row = store_emails.get(conn, sent.activity_id)
        statuses = {
            d["emailaddress"]: d["status"] for d in store_emails.deliveries(conn, sent.activity_id)
        }
        events = store_events.of_email(conn, sent.activity_id)
    assert row["replycount"] == 2
    assert statuses == {"dana@contoso.test": "failed", "lee@fabrikam.test": "failed"}
    assert len(events) == 5  # 2 replies, 1 out-of-office, 2 bounces: each once


# --- a server that drops the connection in the middle of a FETCH ----------------------


class DroppingServer:
    """Just enough IMAP4rev1 for imaplib; the `drop_on_fetch`-th UID FETCH is cut off
    halfway through a message literal, as a server restart or a broken link does."""

    def __init__(self, messages: list[bytes], drop_on_fetch: int | None) -> None:
        self.messages = messages
        self.drop_on_fetch = drop_on_fetch
        self.fetch_count = 0
        self.served: list[int] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as rfile:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
            while line := rfile.readline():
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.upper()
                if command.startswith("CAPABILITY"):
                    conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                elif command.startswith("AUTHENTICATE"):
                    conn.sendall(b"+ \r\n")
                    base64.b64decode(rfile.readline().strip())
                elif command.startswith("EXAMINE"):
                    n = len(self.messages)
                    conn.sendall(f"* {n} EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\n".encode())
                elif command.startswith("UID SEARCH"):
                    low = int(re.search(r"UID (\d+):", command).group(1))  # type: ignore[union-attr]
                    found = " ".join(str(u) for u in range(low, len(self.messages) + 1))
                    conn.sendall(f"* SEARCH {found}\r\n".encode())
                elif command.startswith("UID FETCH"):
                    uids = [int(u) for u in command.split()[2].split(",")]
                    self.fetch_count += 1
                    if not self._fetch(conn, uids):
                        return
                elif command.startswith("LOGOUT"):
                    conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                    return
                conn.sendall(f"{tag} OK done\r\n".encode())

    def _fetch(self, conn: socket.socket, uids: list[int]) -> bool:
        for i, uid in enumerate(uids):
            body = self.messages[uid - 1]
            head = f'* {uid} FETCH (UID {uid} INTERNALDATE "20-Nov-2026 12:00:00 +0000" '
            data = head.encode() + f"BODY[] {{{len(body)}}}\r\n".encode() + body + b")\r\n"
            if self.fetch_count == self.drop_on_fetch and i == len(uids) // 2:
                conn.sendall(data[: len(data) // 2])
                conn.shutdown(socket.SHUT_RDWR)
                return False
            conn.sendall(data)
        self.served += uids
        return True

    def close(self) -> None:
        self.sock.close()


def _replies(n: int) -> list[bytes]:
    return [
        (
            f"From: p{i}@contoso.test\r\nSubject: Re: Hello\r\nMessage-ID: <r{i}@contoso.test>"
            f"\r\nIn-Reply-To: {SENT_ID}\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\nyes\r\n"
        ).encode()
        for i in range(n)
    ]


def test_connection_dropped_mid_fetch_loses_and_doubles_nothing(
    engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings, [f"p{i}@contoso.test" for i in range(60)])
    server = DroppingServer(_replies(60), drop_on_fetch=2)
    try:
        _set_mailbox(engine, settings, server.port, ["INBOX"])
        summary = _sync(engine, settings)
        assert summary.failed and "lost while fetching 25 messages" in summary.failed
        assert summary.counts[Outcome.REPLY] == 25  # batch 1 committed, batch 2 not
        assert _state(engine) == {"INBOX": {"uidvalidity": 42, "lastuid": 25}}
        server.drop_on_fetch = None
        summary = _sync(engine, settings)
        assert summary.failed is None and summary.counts[Outcome.REPLY] == 35
        assert server.served == list(range(1, 61))  # the cut batch again, nothing else twice
    finally:
        server.close()
    with engine.connect() as conn:
        assert store_emails.get(conn, sent.activity_id)["replycount"] == 60
        assert len(store_events.of_email(conn, sent.activity_id)) == 60


# --- the command line, run as a user would ---------------------------------------------


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # The real `mailsignal` command, as a user runs it.
    return subprocess.run(
        [str(Path(sys.executable).with_name("mailsignal")), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _instance(tmp_path: Path, recipients: str) -> dict[str, str]:
    """An initialised SQLite instance with the rep and one tracked email (SENT_ID)."""
    env = {**os.environ, "MAILSIGNAL_DATA_DIR": str(tmp_path / "data")}
    env.pop("MAILSIGNAL_DATABASE_URL", None)
    cli(env, "init")
    cli(env, "users", "add", REP, "--opt-in")
    eml = tmp_path / "sent.eml"
    eml.write_text(
        f"From: {REP}\nTo: {recipients}\nSubject: Hello\nMessage-ID: {SENT_ID}\n"
        "MIME-Version: 1.0\nContent-Type: text/plain\n\nHello https://example.com/p\n"
    )
    cli(env, "emails", "instrument", str(eml), "--out", str(tmp_path / "out"))
    return env


def _row(stdout: str, first: str) -> dict[str, str]:
    """One row of a Rich summary table, by column name."""
    lines = stdout.splitlines()
    head = next(line for line in lines if "┃" in line)
    row = next(line for line in lines if "│" in line and first in line)
    names = [c.strip() for c in head.strip("┃").split("┃")]
    return dict(zip(names, (c.strip() for c in row.strip("│").split("│")), strict=True))


def test_cli_mailbox_and_sync_replies(dovecot: Dovecot, tmp_path: Path) -> None:
    env = _instance(tmp_path, "dana@contoso.test")
    port = str(dovecot.port)
    base = ["mailbox", "set", REP, "--host", "127.0.0.1", "--port", port, "--security", "none"]
    wrong = _cli(env, *base, "--password-stdin", stdin="not-the-password\n")
    assert wrong.returncode == 0, wrong.stderr
    assert "stored encrypted" in wrong.stdout and "not-the-password" not in wrong.stdout
    failed = _cli(env, "sync-replies")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "login" in failed.stderr and "not-the-password" not in failed.stderr + failed.stdout
    (shown,) = json.loads(_cli(env, "mailbox", "show", "--json").stdout)
    assert shown["secret"] == "set (encrypted)" and "login" in shown["lasterror"]
    assert "not-the-password" not in json.dumps(shown)
    ok = _cli(env, *base, "--password-stdin", stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    (shown,) = json.loads(_cli(env, "mailbox", "show", "--json").stdout)
    assert shown["lasterror"] is None  # new credentials, clean slate
    assert "set (encrypted)" in _cli(env, "mailbox", "show").stdout
    dovecot.append(_fixture("gmail_human_reply.eml"))
    dovecot.append(_fixture("gmail_vacation.eml"))
    synced = _cli(env, "sync-replies", "--user", REP)
    assert synced.returncode == 0, synced.stderr
    row = _row(synced.stdout, REP)
    assert (row["read"], row["replies"], row["auto-replies"]) == ("2", "1", "1")
    again = _cli(env, "sync-replies")
    assert _row(again.stdout, REP)["read"] == "0"
    (shown,) = json.loads(_cli(env, "mailbox", "show", "--json").stdout)
    assert shown["syncstate"]["INBOX"]["lastuid"] == 2 and shown["lastsyncon"]


def test_cli_says_what_happened_when_the_server_drops(tmp_path: Path) -> None:
    env = _instance(tmp_path, ", ".join(f"p{i}@contoso.test" for i in range(30)))
    server = DroppingServer(_replies(30), drop_on_fetch=2)
    try:
        args = ["mailbox", "set", REP, "--host", "127.0.0.1", "--port", str(server.port)]
        _cli(env, *args, "--security", "none", "--password-stdin", stdin="x\n")
        dropped = _cli(env, "sync-replies")
        assert dropped.returncode == 2 and "Traceback" not in dropped.stderr
        message = " ".join(dropped.stderr.split())
        assert "lost while fetching" in message and "run `mailsignal sync-replies` again" in message
        assert _row(dropped.stdout, REP)["replies"] == "25"
        server.drop_on_fetch = None
        resumed = _cli(env, "sync-replies")
        assert resumed.returncode == 0 and _row(resumed.stdout, REP)["replies"] == "5"
    finally:
        server.close()
