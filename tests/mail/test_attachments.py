"""Tracked attachments: the pure replacement on real MIME, the files kept on disk, the
`/a/<token>` download through the real ASGI app, and ingest labelling the download."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from helpers import CHROME, add_rep
from mailsignal import outgoing
from mailsignal.attachments import (
    AttachmentLink,
    AttachmentPolicy,
    find_attachments,
    human_size,
    replace_attachments,
)
from mailsignal.instrument import parse_message
from mailsignal.model import EventKind, TokenKind
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings, load_keyring
from mailsignal.store import parties
from mailsignal.store.files import AttachmentFiles
from mailsignal.store.schema import email, interactionforemail, trackedattachment
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.track import Tracker

MAIL = Path(__file__).parents[1] / "fixtures" / "mail"
ALL = AttachmentPolicy("all")
DOWNLOAD = re.compile(r"http://track\.test/a/([A-Za-z0-9_-]+)")


def _fixture(name: str) -> EmailMessage:
    return parse_message((MAIL / name).read_bytes())


def _report_bytes() -> bytes:
    raw = _fixture("html_attachment.eml")
    [part] = [p for p in raw.walk() if p.get_filename()]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def test_policy_selects_attachments() -> None:
    msg = _fixture("html_attachment.eml")
    assert find_attachments(msg, AttachmentPolicy("off")) == []
    [found] = find_attachments(msg, ALL)
    assert (found.filename, found.content_type, found.size) == (
        "uptime-2025-10.html",
        "text/html",
        317,
    )
    assert found.data == _report_bytes() and len(found.sha256) == 64
    assert find_attachments(msg, AttachmentPolicy("over_size", 318)) == []
    assert len(find_attachments(msg, AttachmentPolicy("over_size", 317))) == 1
    with pytest.raises(ValueError, match="attachment mode"):
        AttachmentPolicy("some")


def test_inline_images_and_attached_messages_stay() -> None:
    assert find_attachments(_fixture("apple_mail_related.eml"), ALL) == []  # cid: image
    forwarded = EmailMessage()
    forwarded["From"], forwarded["Subject"] = "a@x.test", "fwd"
    forwarded.set_content("see below")
    inner = _fixture("thunderbird_text_only.eml")
    forwarded.add_attachment(inner)  # message/rfc822
    assert find_attachments(forwarded, ALL) == []


def test_replacement_lists_links_in_each_body_part() -> None:
    msg = _fixture("html_attachment.eml")
    [found] = find_attachments(msg, ALL)
    link = AttachmentLink("http://track.test/a/TOKEN", "Bericht-Müller <1>.html", found.size)
    out = replace_attachments(msg, {found.index: link})
    assert find_attachments(msg, ALL) == [found]  # the input is not changed
    assert [p for p in out.walk() if p.get_filename()] == []
    html = out.get_body(("html",))
    text = out.get_body(("plain",))
    assert html is not None and text is not None
    body = html.get_content()
    assert '<a href="http://track.test/a/TOKEN">Bericht-M&#252;ller &lt;1&gt;.html</a>' in body
    assert body.index("mailsignal-attachments") < body.index("</body>")
    assert "Bericht-Müller <1>.html (317 B): http://track.test/a/TOKEN" in text.get_content()
    # The text part was 7bit; a non-ASCII name moves it to quoted-printable, not 8bit.
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "7bit"


def test_message_with_no_body_part_gets_one() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "rep@northwind.test", "the deck"
    msg.make_mixed()
    pdf = EmailMessage()
    pdf.set_content(b"%PDF-1.7 deck", maintype="application", subtype="pdf", filename="deck.pdf")
    msg.attach(pdf)
    [found] = find_attachments(msg, ALL)
    out = replace_attachments(msg, {found.index: AttachmentLink("http://t/a/X", "deck.pdf", 13)})
    [part] = out.iter_parts()
    assert part.get_content_type() == "text/plain"
    assert "deck.pdf (13 B): http://t/a/X" in part.get_content()


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 1024 * 1024 + 1)] == [
        "0 B",
        "1023 B",
        "1.0 KB",
        "5.0 MB",
    ]


def _track(engine: Engine, settings: Settings, files: AttachmentFiles) -> Any:
    with engine.begin() as conn:
        add_rep(conn)
        parties.add(conn, "contact", "Pat Private", "private@client.test", follow=False)
        return outgoing.track(
            conn,
            Signer(*load_keyring(settings.secret_file)),
            settings.base_url,
            _fixture("html_attachment.eml"),
            sender="rep@northwind.test",
            recipients=["ops@example.net", "private@client.test"],
            attachments=files,
        )


def test_track_keeps_files_and_rewrites_tracked_copies_only(
    engine: Engine, settings: Settings
) -> None:
    files = AttachmentFiles(settings.attachment_dir, ALL)
    result = _track(engine, settings, files)
    tracked, private = result.copies
    assert tracked.decision.tracked and not private.decision.tracked
    with engine.connect() as conn:
        [row] = conn.execute(select(trackedattachment)).mappings().all()
    assert row["emailactivityid"] == result.activity_id
    assert (row["filename"], row["contenttype"], row["size"]) == (
        "uptime-2025-10.html",
        "text/html",
        317,
    )
    assert (settings.attachment_dir / row["storagepath"]).read_bytes() == _report_bytes()
    meta = json.loads(
        (settings.attachment_dir / "meta" / f"{row['attachmentid']}.json").read_text()
    )
    assert meta == {
        "sha256": row["sha256"],
        "filename": row["filename"],
        "contenttype": "text/html",
        "size": 317,
    }

    copy_text = tracked.message.as_string()
    [token] = set(DOWNLOAD.findall(copy_text))
    claims = Signer(*load_keyring(settings.secret_file)).verify(token, TokenKind.ATTACHMENT)
    assert (claims.delivery_id, claims.link_id) == (tracked.delivery_id, row["attachmentid"])
    assert [p for p in tracked.message.walk() if p.get_filename()] == []
    assert [p.get_filename() for p in private.message.walk() if p.get_filename()] == [
        "uptime-2025-10.html"
    ]
    assert "/a/" not in private.message.as_string()


@pytest.fixture
def tracker(settings: Settings) -> Iterator[Tracker]:
    app = create_app(settings)
    # The same pieces create_app wires, plus the attachment directory for /a/.
    tracker = Tracker(
        app.signer, app.journal, app.client_address, app.fallback, settings.attachment_dir
    )
    yield tracker
    app.journal.close()


def _journal(settings: Settings) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.journal_file) as conn:
        return conn.execute("SELECT kind, delivery, link, method FROM hit ORDER BY seq").fetchall()


def test_download_records_then_streams_and_ingest_labels_it(
    engine: Engine, settings: Settings, tracker: Tracker
) -> None:
    result = _track(engine, settings, AttachmentFiles(settings.attachment_dir, ALL))
    tracked = result.copies[0]
    [token] = set(DOWNLOAD.findall(tracked.message.as_string()))
    with engine.connect() as conn:
        attachment_id = conn.execute(select(trackedattachment.c.attachmentid)).scalar_one()

    with TestClient(tracker) as client:
        got = client.get(f"/a/{token}", headers={"user-agent": CHROME})
        head = client.head(f"/a/{token}/uptime-2025-10.html", headers={"user-agent": CHROME})
        assert client.post(f"/a/{token}").status_code == 405
        click = Signer(*load_keyring(settings.secret_file)).sign(
            TokenKind.OPEN, tracked.delivery_id
        )
        for bad in ("garbage", token[:-4], click):
            invalid = client.get(f"/a/{bad}")
            assert invalid.status_code == 404 and b"expired or invalid" in invalid.content
    assert got.status_code == 200 and got.content == _report_bytes()
    assert got.headers["content-type"] == "text/html"
    assert got.headers["content-length"] == "317"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"uptime-2025-10.html\"; filename*=UTF-8''uptime-2025-10.html"
    )
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "sandbox"
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "317"
    )
    kind = int(TokenKind.ATTACHMENT)
    assert _journal(settings) == [
        (kind, tracked.delivery_id, attachment_id, "GET"),
        (kind, tracked.delivery_id, attachment_id, "HEAD"),
    ]

    ingestor = Ingestor(engine, settings)
    try:
        assert ingestor.drain() == 2
    finally:
        ingestor.close()
    with engine.connect() as conn:
        events = conn.execute(select(interactionforemail)).mappings().all()
        counts = conn.execute(select(email.c.attachmentopencount)).scalar_one()
    assert counts == 2
    for event in events:
        assert event["interactiontype"] == int(EventKind.ATTACHMENT)
        assert event["attachmentid"] == attachment_id and event["linkid"] is None
        assert event["interactedcomponenttext"] == "uptime-2025-10.html"
        assert event["emailaddress"] == "ops@example.net"
        assert event["verdict"] in ("human", "machine", "forward", "unknown")
        assert event["classifierversion"] and event["reasons"]["not_fired"] is not None


def test_missing_file_is_410_never_500(
    engine: Engine, settings: Settings, tracker: Tracker
) -> None:
    result = _track(engine, settings, AttachmentFiles(settings.attachment_dir, ALL))
    [token] = set(DOWNLOAD.findall(result.copies[0].message.as_string()))
    for blob in settings.attachment_dir.glob("*"):
        if blob.is_file():
            blob.unlink()
    with TestClient(tracker) as client:
        gone = client.get(f"/a/{token}")
    assert gone.status_code == 410 and b"no longer available" in gone.content


def test_a_download_of_another_emails_attachment_is_an_orphan(
    engine: Engine, settings: Settings
) -> None:
    import datetime as dt

    from mailsignal.enrich import Pipeline
    from mailsignal.model import RawHit
    from mailsignal.pipeline.ingest import store_hits

    files = AttachmentFiles(settings.attachment_dir, ALL)
    first = _track(engine, settings, files)
    with engine.begin() as conn:
        second = outgoing.track(
            conn,
            Signer(*load_keyring(settings.secret_file)),
            settings.base_url,
            _fixture("html_attachment.eml"),
            sender="rep@northwind.test",
            recipients=["ops@example.net"],
            attachments=files,
        )
        ids = conn.execute(select(trackedattachment.c.attachmentid)).scalars().all()
        hit = RawHit(
            "j:1",
            dt.datetime.now(dt.UTC),
            TokenKind.ATTACHMENT,
            second.copies[0].delivery_id,
            min(ids),  # the first email's attachment
            "198.51.100.23",
            CHROME,
            "GET",
        )
        result = store_hits(conn, [hit], Pipeline.default(), settings)
    assert (result.stored, result.orphans) == (0, 1)
    assert first.activity_id != second.activity_id
