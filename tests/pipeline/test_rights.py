"""The rights of access and erasure (issue 13, pipeline/rights.py) on SQLite and
PostgreSQL, after the real flow for one address: mail instrumented by Outgoing.track,
copies staged in the relay's outbound spool, opens, a click and an attachment download
through the tracker app and the ingest worker, a hit still in the journal and one in
its spool, replies read from real MIME. `erase` leaves no trace of the address, the
recipient's IP (full and truncated) or the contact's name in any column of any table
(reflected from the database, so a table added later is scanned too) nor in any file
under the data dir (the SQLite store and the journal included); the other recipient's
rows are untouched and counters equal a recount. `export` holds every kind of row."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, select, text
from starlette.testclient import TestClient

from conftest import FIXTURES
from helpers import CHROME, OUTLOOK, add_rep, tracked_urls
from mailsignal import outgoing
from mailsignal.engagement import weights_of
from mailsignal.instrument import AttachmentPolicy, parse_message
from mailsignal.keyring import load_keyring
from mailsignal.mail.outbound import Spool as Outbound
from mailsignal.mail.staging import Stager
from mailsignal.pipeline import tally
from mailsignal.pipeline.replies import IncomingMessage, store_messages
from mailsignal.pipeline.rights import OTHER, erase, export, outbound_copies
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import consent, parties, rescore
from mailsignal.store.files import AttachmentFiles
from mailsignal.store.schema import (
    account,
    auditrecord,
    contact,
    email,
    emaildelivery,
    interactionforemail,
)
from mailsignal.store.spool import Spool as HitSpool
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

DANA, LEE = "dana@contoso.test", "lee@contoso.test"
NAME = "Dana Whitfield"  # the contact's name, also in her reply's From:
DANA_IP, LEE_IP = "198.51.100.77", "203.0.113.40"
SENT_ID = "<20261120093000.4711@northwind.test>"  # what gmail_human_reply.eml answers
NEEDLES = [DANA.encode(), NAME.lower().encode(), DANA_IP.encode(), b"198.51.100.0"]
DOWNLOAD = re.compile(r"http://track\.test(/a/[A-Za-z0-9_-]+)")


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _reply(message_id: str, refers_to: str, sender: str = "") -> IncomingMessage:
    raw = (FIXTURES / "replies" / "gmail_human_reply.eml").read_bytes()
    if sender:  # a colleague of hers answers from her own address
        raw = raw.replace(DANA.encode(), sender.encode()).replace(b"Dana Whitfield", b"Pat")
    raw = raw.replace(SENT_ID.encode(), refers_to.encode())
    raw = raw.replace(
        b"CAO8yZ4s1qE2vC=XnT7w3JfU9h6k0pLrM5dGa1bYc@mail.gmail.com", message_id.encode()
    )
    return IncomingMessage(raw, message_id)


def _message(subject: str, to: list[str], message_id: str) -> EmailMessage:
    raw = (FIXTURES / "mail" / "html_attachment.eml").read_bytes()
    msg = parse_message(raw)
    for header in ("Message-ID", "To", "Subject"):
        del msg[header]
    msg["Message-ID"], msg["To"], msg["Subject"] = message_id, ", ".join(to), subject
    return msg


def _hit(client: TestClient, url: str, ip: str, agent: str = CHROME) -> None:
    got = client.get(url, headers={"user-agent": agent, "x-forwarded-for": ip})
    assert got.status_code in (200, 302), got.status_code


def _urls(copy: Any) -> list[str]:
    return [u.removeprefix("http://track.test") for u in tracked_urls(copy.message)]


def _pixel(copy: Any) -> str:
    return next(u for u in _urls(copy) if u.endswith(".gif"))


@pytest.fixture
def world(engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
    settings = settings.model_copy(
        update={
            "trusted_proxies": ["127.0.0.0/8"],
            "journal_spool_dir": settings.data_dir / "spool",
            "attachments_mode": "all",
        }
    )
    if engine.dialect.name == "sqlite":
        # As SQLite builds without SQLITE_SECURE_DELETE behave (Debian's has it on): the
        # store's bytes are then clean only because erase turns it on for itself.
        event.listen(engine, "connect", lambda dbapi, _r: dbapi.execute("PRAGMA secure_delete=OFF"))
        engine.dispose()
    sent = datetime.now(UTC) - timedelta(hours=3)  # hits now are past the delivery window
    files = AttachmentFiles(settings.attachment_dir, AttachmentPolicy("all"))
    service = outgoing.Outgoing(_signer(settings), "http://track.test", attachments=files)
    outbound = Outbound(settings.data_dir / "outbound")
    stager = Stager(outbound, clock=lambda: sent.timestamp(), bounce_after=86400)
    with engine.begin() as conn:
        add_rep(conn)
        contoso = parties.add(conn, "account", "Contoso", DANA)  # kept: Lee works there
        parties.add(conn, "contact", NAME, DANA, parent=contoso)
        parties.add(conn, "contact", "Lee Stays", LEE, parent=contoso)
        parties.add(conn, "lead", NAME, "Dana@Contoso.test")
        parties.add(conn, "account", f"{NAME} Consulting", DANA)  # her own firm: no contacts
        at = sent - timedelta(days=1)
        text = "I agree that Northwind sees when I open its mail."
        consent.add(
            conn,
            _signer(settings).address_hash(DANA),
            given_at=at,
            source="link",
            text=text,
            now=at,
        )
        both = service.track(
            conn,
            _message("Pricing", [DANA, LEE], SENT_ID),
            sender="rep@northwind.test",
            recipients=[DANA, LEE],
            sent_at=sent,
        )
        staged: dict[str, bytes] = {}
        only = [
            (_message(f"For {who}", [who], f"<{who.split('@')[0]}-1@northwind.test>"), who)
            for who in (DANA, LEE)
        ]
        alone = []
        for msg, who in only:
            tracked = service.track(
                conn, msg, sender="rep@northwind.test", recipients=[who], sent_at=sent
            )
            stager.stage_email(msg.as_bytes(), "rep@northwind.test", [who], [], tracked, staged)
            alone.append(tracked)
        outbound.sync(list(staged))
        outbound.commit(list(staged))
    app = create_app(settings)
    dana_a, lee_a = both.copies
    dana_b = alone[0].copies[0]
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000)) as client:
        pixel, click = _pixel(dana_a), next(u for u in _urls(dana_a) if "/c/" in u)
        _hit(client, pixel, DANA_IP, OUTLOOK)
        _hit(client, click, DANA_IP)
        [download] = set(DOWNLOAD.findall(dana_a.message.as_string()))
        _hit(client, download, DANA_IP)
        _hit(client, _pixel(dana_b), DANA_IP, OUTLOOK)
        _hit(client, _pixel(lee_a), LEE_IP, OUTLOOK)
        ingestor = Ingestor(engine, settings)
        assert ingestor.drain() == 5
        _hit(client, _pixel(dana_b), DANA_IP, OUTLOOK)  # not ingested yet: in the journal
        with engine.begin() as conn:
            store_messages(conn, [_reply("<r1@contoso.test>", SENT_ID)], settings)
            lee_mail = "<lee-1@northwind.test>"  # she answers mail sent to Lee
            store_messages(conn, [_reply("<r2@contoso.test>", lee_mail)], settings)
            colleague = _reply("<r3@contoso.test>", SENT_ID, "pat@contoso.test")
            store_messages(conn, [colleague], settings)  # recorded on her copy: a forward
        spool = HitSpool(settings.journal_spool_dir)
        row = (
            datetime.now(UTC).timestamp(),
            0,
            dana_b.delivery_id,
            None,
            DANA_IP,
            CHROME,
            "GET",
            "{}",
        )
        assert spool.append([row])
        spool.seal()
        yield {"settings": settings, "client": client, "dana_b": dana_b, "ingestor": ingestor}
        ingestor.close()
    app.journal.close()


def _table_hits(engine: Engine) -> list[str]:
    """Every (table.column) whose value, as text, holds a needle, over every table the
    database has (not the metadata: a table added later is scanned too)."""
    found = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            query = text(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the database)
            for row in conn.execute(query).mappings():
                for column, value in row.items():
                    shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
                    found += [
                        f"{table}.{column}:{n.decode()}"
                        for n in NEEDLES
                        if n.decode() in shown.lower()
                    ]
    return found


def _file_hits(root: Path) -> list[str]:
    found = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            data = (Path(directory) / name).read_bytes().lower()
            found += [f"{name}:{n.decode()}" for n in NEEDLES if n in data]
    return found


def _counters(engine: Engine, settings: Settings) -> tuple[list[Any], list[Any]]:
    """Every email's counters and every party's roll-ups as stored, and as a rebuild
    from the events and retained tallies makes them (rolled back)."""

    def read(conn: Any) -> list[Any]:
        cols = ("opencount", "humanopencount", "linksclickedcount", "attachmentopencount")
        rows = [
            [r.activityid, *(getattr(r, c) for c in (*cols, "replycount"))]
            for r in conn.execute(select(email).order_by(email.c.activityid))
        ]
        rollups = ("emailsfollowedcount", "humanopencount", "humanclickcount", "replycount")
        for table in (contact, account):
            key = table.primary_key.columns.values()[0]
            for r in conn.execute(select(table).order_by(key)).mappings():
                rows.append([r[key.name], *(r[c] for c in rollups)])
        return rows

    with engine.connect() as conn, conn.begin() as tx:
        stored = read(conn)
        ids = [r.activityid for r in conn.execute(select(email.c.activityid))]
        found = {("contact", r[0]) for r in conn.execute(select(contact.c.contactid))}
        found |= {("account", r[0]) for r in conn.execute(select(account.c.accountid))}
        now = datetime.now(UTC)
        tally.recount(conn, ids, settings, now)
        rescore.rescore(conn, found, weights_of(settings), now)
        again = read(conn)
        tx.rollback()
    return stored, again


def test_erase_leaves_no_trace_and_keeps_the_rest(engine: Engine, world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    before = " ".join(_table_hits(engine) + _file_hits(settings.data_dir))
    assert all(f":{n.decode()}" in before for n in NEEDLES)  # every needle is there
    assert "interactionforemail.ipaddress:198.51.100.0" in before and "journal.db" in before
    assert engine.dialect.name != "sqlite" or "mailsignal.db" in before
    with engine.connect() as conn:
        lee_events = conn.execute(
            select(interactionforemail).where(interactionforemail.c.emailaddress == LEE)
        ).all()
    lee_events = [e for e in lee_events if e.interactionrepliedby != DANA]  # hers go
    assert len(lee_events) == 1
    done = erase(
        engine, _signer(settings), "Dana@Contoso.TEST", settings, actor="cli", source="cli"
    )
    c = done.counts
    assert c["deliveries"] == 2 and c["events"] >= 5 and c["replies"] == 1
    assert c["contacts"] == 1 and c["leads"] == 1
    assert c["accounts_deleted"] == 1 and c["accounts_kept"] == 1
    assert c["journal_hits"] >= 1 and c["spooled_hits"] == 1 and c["outbound_removed"] == 1
    assert c["emails_deleted"] == 1 and c["donottrack_kept"] == 0

    assert _table_hits(engine) == []
    assert _file_hits(settings.data_dir) == []
    with engine.connect() as conn:
        # Lee's copy, events, contact, account and outbound entry stay.
        assert (
            conn.execute(
                select(interactionforemail).where(interactionforemail.c.emailaddress == LEE)
            ).all()
            == lee_events
        )
        assert conn.execute(select(contact.c.fullname)).scalars().all() == ["Lee Stays"]
        kept = conn.execute(select(account.c.name, account.c.emailaddress1)).all()
        assert kept == [("Contoso", None)]
        recipients = conn.execute(select(email.c.torecipients).where(email.c.messageid == SENT_ID))
        assert recipients.scalar_one() == f"erased@invalid;{LEE}"
        assert conn.execute(select(emaildelivery.c.emailaddress)).scalars().all() == [LEE, LEE]
        audit = conn.execute(select(auditrecord).where(auditrecord.c.action == "privacy.erase"))
        [record] = audit.mappings().all()
    assert record["subject"] == done.address_hash and record["details"]["deliveries"] == 2
    assert len(list((settings.data_dir / "outbound").glob("*.json"))) == 1  # Lee's copy
    stored, recounted = _counters(engine, settings)
    assert stored == recounted
    assert any(row[1] for row in stored)  # Lee's open still counts

    # A hit on an erased copy after the erasure is an orphan at ingest: nothing stored.
    client = world["client"]
    _hit(client, _pixel(world["dana_b"]), DANA_IP, OUTLOOK)
    assert world["ingestor"].drain() == 0  # one orphan, skipped
    assert _table_hits(engine) == []


def test_export_holds_every_kind_of_row(engine: Engine, world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    buf = io.StringIO()
    counts = export(engine, _signer(settings), DANA, buf, settings, actor="cli")
    doc = json.loads(buf.getvalue())
    assert doc["address"] == DANA
    [given] = doc["consent"]
    assert given["source"] == "link" and given["consenttext"].startswith("I agree")
    assert [p["fullname"] for p in doc["parties"]["contact"]] == [NAME]
    assert len(doc["parties"]["lead"]) == 1 and len(doc["parties"]["account"]) == 2
    assert {s["kind"] for s in doc["scores"]} == {"contact", "lead", "account"}
    assert {d["subject"] for d in doc["deliveries"]} == {"Pricing", f"For {DANA}"}
    kinds = {e["interactiontype"] for e in doc["events"]}
    assert kinds == {0, 1, 2, 3}  # open, click, download, reply
    assert all(e["facts"] is not None and e["reasons"] is not None for e in doc["events"])
    assert {e["ipaddress"] for e in doc["events"] if e["interactiontype"] != 3} == {"198.51.100.0"}
    assert len(doc["replies"]) == 3  # hers on her copy and to Lee's mail, Pat's on hers
    # Pat's address is Pat's personal data: not in Dana's export.
    assert "pat@contoso.test" not in buf.getvalue()
    assert [r["verdict"] for r in doc["replies"] if r["interactionrepliedby"] == OTHER] == [
        "forward"
    ]
    assert doc["retainedaggregates"] == [] and doc["donottrack"] is None
    assert counts["events"] == len(doc["events"]) and counts["deliveries"] == 2
    with engine.connect() as conn:
        [record] = conn.execute(
            select(auditrecord).where(auditrecord.c.action == "privacy.export")
        ).mappings()
    assert record["actor"] == "cli" and record["subject"] == doc["addresshash"]
    assert DANA not in json.dumps(record["details"])


def test_outbound_entries_lose_the_address(tmp_path: Path) -> None:
    from mailsignal.mail.outbound import Rcpt

    spool = Outbound(tmp_path / "outbound")
    now = time.time()

    def stage(data: bytes, rcpts: list[Rcpt], **kw: Any) -> str:
        entry = spool.stage(
            data,
            mail_from=kw.pop("mail_from", "rep@northwind.test"),
            rcpts=rcpts,
            now=now,
            deadline=now + 60,
            **kw,
        )
        spool.commit([entry])
        return entry

    own = stage(b"To: dana@contoso.test\r\n\r\nhi", [Rcpt(DANA, 7)])
    shared = stage(b"To: a@x.test\r\n\r\nhi", [Rcpt("Dana@Contoso.test", 9), Rcpt(LEE, 10)])
    bounce = stage(
        b"Undeliverable: dana@contoso.test", [Rcpt("rep@northwind.test")], mail_from="", bounce=True
    )
    busy = stage(b"hi", [Rcpt(DANA, 8)])
    others = stage(b"To: lee@contoso.test\r\n\r\nhi", [Rcpt(LEE, 11)])
    with spool.claim(busy) as held:
        assert held
        assert outbound_copies(tmp_path / "outbound", DANA, {7}) == (2, 1, 1)
    assert spool.load(own) is None and spool.load(bounce) is None
    queued = spool.load(shared)
    assert queued is not None and [r.address for r in queued.rcpts] == [LEE]
    assert spool.load(busy) is not None and spool.load(others) is not None
    assert outbound_copies(tmp_path / "outbound", DANA, set()) == (1, 0, 0)
    assert spool.ready() == sorted([shared, others])
