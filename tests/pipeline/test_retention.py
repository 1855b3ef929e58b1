"""Retention (issue 13) with a fixed clock, on SQLite and PostgreSQL: expired timelines go,
counters, scores and roll-ups keep their values, and every recompute after it (counters
recounted, parties rescored, `classify --recompute`, `score --recompute`) gives them
again, because what the deleted events counted for is folded into `retainedtally`.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from helpers import APPLE_RELAY_IP, CHROME, EOP_IP, OUTLOOK, SAFE_LINKS, track_html
from mailsignal.engagement import EMAIL_COUNTERS, PARTY_COUNTERS, decay, weights_of
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline import retention, tally
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.pipeline.replies import IncomingMessage, store_messages
from mailsignal.pipeline.sweep import recompute_all
from mailsignal.settings import Settings
from mailsignal.store import emails, parties, rescore, users
from mailsignal.store.files import AttachmentFiles, AttachmentMeta
from mailsignal.store.parties import TABLES
from mailsignal.store.schema import (
    auditrecord,
    interactionforemail,
    retainedtally,
    trackedattachment,
)
from mailsignal.store.schema import email as email_table
from mailsignal.tokens import Signer

OLD = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 395 days back is 2025-10-31
RECENT = NOW - timedelta(days=20)
PEOPLE = ["ana@contoso.test", "ben@contoso.test", "lea@fabrikam.test"]


def _world(engine: Engine, settings: Settings) -> dict[str, Any]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        users.add(conn, "Rep", "rep@northwind.test", opt_in=True)
        account = parties.add(conn, "account", "Contoso", None)
        parties.add(conn, "contact", "Ana", PEOPLE[0], parent=account)
        parties.add(conn, "contact", "Ben", PEOPLE[1], parent=account)
        parties.add(conn, "lead", "Lea", PEOPLE[2])
        old = track_html(conn, signer, PEOPLE[:2], sent_at=OLD)
        straddling = track_html(conn, signer, PEOPLE[2:], sent_at=OLD)
        recent = track_html(conn, signer, PEOPLE[:1], sent_at=RECENT)
        sent = [old, straddling, recent]
        links = {e.activity_id: emails.link_ids(conn, e.activity_id) for e in sent}
        found = set(emails.parties_of(conn, list(links)))
    return {"sent": sent, "links": links, "found": found}


def _hit(n: int, copy: Any, at: datetime, ip: str, ua: str, link: int | None = None) -> RawHit:
    kind = TokenKind.OPEN if link is None else TokenKind.CLICK
    return RawHit(f"r{n}", at, kind, copy.delivery_id, link, ip, ua, "GET")


def _traffic(engine: Engine, settings: Settings, world: dict[str, Any]) -> None:
    old, straddling, recent = world["sent"]
    link = world["links"][old.activity_id]
    lea_link = world["links"][straddling.activity_id]
    ana, ben = old.copies
    (lea,) = straddling.copies
    batches = [
        [  # delivery: a gateway and Apple's relay fetch everything; then Ana reads, clicks
            _hit(1, ana, OLD + timedelta(seconds=2), EOP_IP, SAFE_LINKS, link[0]),
            _hit(2, ana, OLD + timedelta(seconds=3), APPLE_RELAY_IP, "Mozilla/5.0"),
            _hit(3, ana, OLD + timedelta(hours=2), "198.51.100.23", OUTLOOK),
            _hit(4, ana, OLD + timedelta(hours=2, seconds=40), "198.51.100.23", CHROME, link[1]),
            _hit(5, ben, OLD + timedelta(hours=2), "203.0.113.40", CHROME),  # Ana's time
            _hit(6, lea, OLD + timedelta(hours=5), "192.0.2.77", OUTLOOK),
            _hit(7, ana, OLD + timedelta(days=3), "198.51.100.99", CHROME),  # a forward
        ],
        [  # Lea opens it again 19 months on: her copy's timeline is not expired
            _hit(8, lea, RECENT, "192.0.2.77", OUTLOOK, lea_link[0]),
            _hit(9, recent.copies[0], RECENT + timedelta(hours=1), "198.51.100.23", OUTLOOK),
        ],
    ]
    enrichment = default_enrichment(settings)
    for batch in batches:
        with engine.begin() as conn:
            store_hits(conn, batch, enrichment, settings, now=batch[-1].received_at)
    reply = (
        f"From: Ana <{PEOPLE[0]}>\r\nTo: rep@northwind.test\r\nSubject: Re: Hello\r\n"
        f"Date: {format_datetime(OLD + timedelta(days=2))}\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex}@contoso.test>\r\n"
        f"In-Reply-To: {old.message_id}\r\nReferences: {old.message_id}\r\n\r\n"
        "Sounds good, let us talk on Monday.\r\n"
    ).encode()
    with engine.begin() as conn:
        outcomes = store_messages(conn, [IncomingMessage(reply, "test")], settings)
    assert [str(o) for o, _e in outcomes] == ["reply"], outcomes


def _emails(engine: Engine, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    names = [*EMAIL_COUNTERS, "lastopenedtime", "lasthumanopenedtime", "engagementverdict"]
    cols = [email_table.c[name] for name in ("activityid", *names, "noiseflag")]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(email_table.c.activityid.in_(ids))).mappings()
        return {r["activityid"]: {k: r[k] for k in r if k != "activityid"} for r in rows}


def _parties(engine: Engine, found: set[Any]) -> dict[Any, dict[str, Any]]:
    out = {}
    with engine.connect() as conn:
        for kind, party in found:
            table, key = TABLES[kind]
            out[(kind, party)] = dict(
                conn.execute(select(table).where(table.c[key] == party)).mappings().one()
            )
    return out


def _rebuild(engine: Engine, settings: Settings, ids: list[uuid.UUID], found: set[Any]) -> None:
    with engine.begin() as conn:
        tally.recount(conn, ids, settings, NOW)
        rescore.rescore(conn, found, weights_of(settings), NOW)


def _same_parties(
    settings: Settings, before: dict[Any, dict[str, Any]], after: dict[Any, dict[str, Any]]
) -> None:
    weights = weights_of(settings)
    for party, old in before.items():
        new = after[party]
        for name in (*PARTY_COUNTERS, "emailsfollowedcount", "lasthumanengagementon"):
            assert new[name] == old[name], (party, name)
        age = (new["engagementscoreupdatedon"] - old["engagementscoreupdatedon"]).total_seconds()
        aged = old["engagementscore"] * decay(weights, age)
        assert abs(new["engagementscore"] - aged) <= 1e-9 * max(1.0, aged), party


def _event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(interactionforemail)).scalar())


def test_retention_keeps_counters_and_scores_through_every_recompute(
    engine: Engine, settings: Settings
) -> None:
    world = _world(engine, settings)
    _traffic(engine, settings, world)
    ids = [e.activity_id for e in world["sent"]]
    found = world["found"]
    # Counters and scores as a full rebuild at NOW gives them, with every event stored.
    _rebuild(engine, settings, ids, found)
    emails_before, parties_before = _emails(engine, ids), _parties(engine, found)
    old_email = world["sent"][0].activity_id
    assert emails_before[old_email]["replycount"] == 1
    assert emails_before[old_email]["humanopencount"] >= 1
    assert emails_before[old_email]["machineopencount"] >= 1
    assert any(p["humanclickcount"] and p["replycount"] for p in parties_before.values())
    stored = _event_count(engine)

    # One event a batch: many transactions, and two events at one time on two copies.
    run = retention.run(engine, settings, NOW, batch=1)
    # Ana's and Ben's copies went whole (a reply among them); Lea's straddles the cutoff.
    assert (run.copies, run.replies, run.events) == (2, 1, 7)
    assert run.complete and _event_count(engine) == stored - 7
    lea = world["sent"][1].copies[0].delivery_id
    with engine.connect() as conn:
        left = conn.execute(select(interactionforemail.c.deliveryid)).scalars().all()
        assert lea in left and world["sent"][0].copies[0].delivery_id not in left
        trail = conn.execute(
            select(auditrecord.c.actor, auditrecord.c.details).where(
                auditrecord.c.action == "retention.run"
            )
        ).one()
    assert trail.actor == "system" and trail.details["events"] == 7
    assert "@" not in str(trail.details)
    # Untouched by the deletion itself...
    assert _emails(engine, ids) == emails_before
    # ... by a rebuild of every email and party from what is stored ...
    _rebuild(engine, settings, ids, found)
    assert _emails(engine, ids) == emails_before
    _same_parties(settings, parties_before, _parties(engine, found))
    # ... and by `classify --recompute` and `score --recompute`.
    recompute_all(engine, settings, facts=default_enrichment(settings).facts)
    later = NOW + timedelta(days=1)
    rescore.recompute_all(engine, weights_of(settings), later)
    assert _emails(engine, ids) == emails_before
    _same_parties(settings, parties_before, _parties(engine, found))
    # A second run finds nothing more; the folds are what keeps the values: without them
    # a recount drops the deleted events.
    assert retention.run(engine, settings, NOW).deleted == 0
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(delete(retainedtally))
        tally.recount(conn, ids, settings, NOW)
        lost = conn.execute(
            select(email_table.c.opencount).where(email_table.c.activityid == old_email)
        ).scalar()
        tx.rollback()
    assert lost == 0 != emails_before[old_email]["opencount"]


def test_retention_off_keeps_everything(engine: Engine, settings: Settings) -> None:
    world = _world(engine, settings)
    _traffic(engine, settings, world)
    stored = _event_count(engine)
    forever = settings.model_copy(update={"event_retention_days": 0, "reply_retention_days": None})
    assert retention.run(engine, forever, NOW).deleted == 0
    assert _event_count(engine) == stored
    # Replies kept forever keep their copy's other events too (a timeline goes whole).
    replies_forever = settings.model_copy(update={"reply_retention_days": 0})
    assert retention.run(engine, replies_forever, NOW).copies == 1  # Ben's copy only


def test_outbound_and_attachment_files_past_retention_go(
    engine: Engine, settings: Settings
) -> None:
    failed = settings.data_dir / "outbound" / "failed"
    failed.mkdir(parents=True)
    for name, age_days in (("a.eml", 40), ("a.json", 40), ("b.eml", 2), ("b.json", 2)):
        path = failed / name
        path.write_bytes(b"To: someone@example.test\r\n\r\nhi\r\n")
        stamp = NOW.timestamp() - age_days * 86400
        os.utime(path, (stamp, stamp))
    files = AttachmentFiles(settings.attachment_dir)
    world = _world(engine, settings)
    activity = world["sent"][0].activity_id
    blobs = {"shared": "a" * 64, "alone": "b" * 64}
    rows = [  # (sha256, recorded): two old ones, one sharing its blob with a newer one
        (blobs["shared"], OLD),
        (blobs["alone"], OLD),
        (blobs["shared"], RECENT),
    ]
    ids = []
    with engine.begin() as conn:
        for sha, at in rows:
            files.put(b"pdf bytes " + sha.encode(), sha)
            key = conn.execute(
                insert(trackedattachment)
                .values(
                    emailactivityid=activity,
                    filename="terms.pdf",
                    contenttype="application/pdf",
                    size=10,
                    sha256=sha,
                    storagepath=sha,
                    createdon=at,
                )
                .returning(trackedattachment.c.attachmentid)
            ).scalar_one()
            files.write_meta(key, AttachmentMeta(sha, "terms.pdf", "application/pdf", 10))
            ids.append(key)
    run = retention.run(engine, settings, NOW)
    assert run.outbound_files == 2 and sorted(p.name for p in failed.iterdir()) == [
        "b.eml",
        "b.json",
    ]
    assert run.attachments == 2 and run.attachment_files == 3  # two sidecars, one blob
    assert files.read_meta(ids[0]) is None and files.read_meta(ids[1]) is None
    assert files.read_meta(ids[2]) is not None
    assert files.blob_path(blobs["shared"]).is_file()
    assert not files.blob_path(blobs["alone"]).exists()
    again = retention.run(engine, settings, NOW)
    assert (again.attachments, again.outbound_files) == (0, 0)


def test_the_scan_of_old_events_sees_each_once_ties_included(
    engine: Engine, settings: Settings
) -> None:
    from mailsignal.store import retention as stored

    world = _world(engine, settings)
    _traffic(engine, settings, world)
    cutoff = NOW - timedelta(days=395)
    with engine.connect() as conn:
        old = set(
            conn.execute(
                select(interactionforemail.c.hitid).where(
                    interactionforemail.c.emailinteractiontime < cutoff
                )
            ).scalars()
        )
        pages, seen, position = 0, set(), None
        while True:
            _ids, position = stored.old_events(conn, cutoff, position, 1)
            if position is None:
                break
            pages += 1
            seen |= position.seen
    assert len(old) == 8 and pages == len(old) and seen == old  # r3 and r5 share a time
