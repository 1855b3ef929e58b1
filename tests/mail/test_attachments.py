"""Tracked attachments: the files kept on disk, the `/a/<token>` download through the real
ASGI app, ingest labelling the download, and `attachments_mode` working alike for every
way mail comes in: REST, `emails instrument`, `import emails` here, the relay in
test_relay.py. (Replacing parts in the MIME is tests/instrument/test_attachments.py's.)"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from conftest import cli
from helpers import CHROME, add_rep
from mailsignal.history import import_emails
from mailsignal.instrument import AttachmentPolicy, parse_message
from mailsignal.keyring import load_keyring
from mailsignal.model import EventKind, TokenKind
from mailsignal.outgoing import Outgoing
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.files import AttachmentFiles
from mailsignal.store.schema import email, interactionforemail, trackedattachment
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app
from mailsignal.web.track import Tracker

MAIL = Path(__file__).parents[1] / "fixtures" / "mail"
ALL = AttachmentPolicy("all")
DOWNLOAD = re.compile(r"http://track\.test/a/([A-Za-z0-9_-]+)")
REPORT = "uptime-2025-10.html"  # the file html_attachment.eml carries


def _fixture(name: str) -> EmailMessage:
    return parse_message((MAIL / name).read_bytes())


def _report_bytes() -> bytes:
    raw = _fixture("html_attachment.eml")
    [part] = [p for p in raw.walk() if p.get_filename()]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _track(engine: Engine, settings: Settings, files: AttachmentFiles) -> Any:
    with engine.begin() as conn:
        add_rep(conn)
        parties.add(conn, "contact", "Pat Private", "private@client.test", follow=False)
        service = Outgoing(_signer(settings), settings.base_url, attachments=files)
        return service.track(
            conn,
            _fixture("html_attachment.eml"),
            sender="rep@northwind.test",
            recipients=["ops@example.net", "private@client.test"],
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
    assert (row["filename"], row["contenttype"], row["size"]) == (REPORT, "text/html", 317)
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
    claims = _signer(settings).verify(token, TokenKind.ATTACHMENT)
    assert (claims.delivery_id, claims.link_id) == (tracked.delivery_id, row["attachmentid"])
    assert [p for p in tracked.message.walk() if p.get_filename()] == []
    assert [p.get_filename() for p in private.message.walk() if p.get_filename()] == [REPORT]
    assert "/a/" not in private.message.as_string()


def test_attachments_off_keeps_them_in_every_copy(engine: Engine, settings: Settings) -> None:
    result = _track(engine, settings, AttachmentFiles(settings.attachment_dir))
    for copy in result.copies:
        assert [p.get_filename() for p in copy.message.walk() if p.get_filename()] == [REPORT]
        assert "/a/" not in copy.message.as_string()
    with engine.connect() as conn:
        assert conn.execute(select(trackedattachment)).all() == []


@pytest.fixture
def tracker(settings: Settings) -> Iterator[Tracker]:
    app = create_app(settings)  # serves /a/ from settings.attachment_dir
    yield app
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
        click = _signer(settings).sign(TokenKind.OPEN, tracked.delivery_id)
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
    other = _fixture("html_attachment.eml")
    other.replace_header("Message-ID", "<another@northwind.test>")  # not the first again
    with engine.begin() as conn:
        service = Outgoing(_signer(settings), settings.base_url, attachments=files)
        second = service.track(
            conn,
            other,
            sender="rep@northwind.test",
            recipients=["ops@example.net"],
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


# --- attachments_mode on every path -----------------------------------------------------
#
# Each path builds its `Outgoing` from settings, so `attachments_mode` set in the settings
# (here as the environment or the settings object a server would have) must turn the
# attachment of html_attachment.eml into a download link in the tracked copy, and that
# link must serve the file through the real app.


def _replaced_and_served(settings: Settings, copy: bytes | str) -> None:
    """The copy carries a download link instead of the report, and the link serves it."""
    raw = copy.encode() if isinstance(copy, str) else copy
    msg = message_from_bytes(raw, policy=policy.default)
    assert [p.get_filename() for p in msg.walk() if p.get_filename()] == []
    html = msg.get_body(("html",))
    assert html is not None and f">{REPORT}</a> (317 B)" in html.get_content()
    [url] = set(re.findall(r"http://track\.test/a/[A-Za-z0-9_-]+", raw.decode()))
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            got = client.get(urlsplit(url).path, headers={"user-agent": CHROME})
    finally:
        app.journal.close()
    assert got.status_code == 200 and got.content == _report_bytes()
    assert REPORT in got.headers["content-disposition"]


def _with_attachments(settings: Settings) -> Settings:
    return settings.model_copy(update={"attachments_mode": "all"})


def test_attachments_mode_applies_to_the_rest_api(engine: Engine, settings: Settings) -> None:
    settings = _with_attachments(settings)
    with engine.begin() as conn:
        key = users.create_api_key(conn, add_rep(conn))
        parties.add(conn, "contact", "Pat Private", "private@client.test", follow=False)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            r = client.post(
                "/api/v1/emails",
                json={
                    "sender": "rep@northwind.test",
                    "recipients": ["ops@example.net", "private@client.test"],
                    "mime": (MAIL / "html_attachment.eml").read_text(),
                },
                headers={"authorization": f"Bearer {key}"},
            )
    finally:
        app.journal.close()
    assert r.status_code == 201, r.text
    tracked, private = r.json()["deliveries"]
    _replaced_and_served(settings, tracked["mime"])
    assert f'filename="{REPORT}"' in private["mime"] and "/a/" not in private["mime"]


def test_attachments_mode_applies_to_cli_emails_instrument(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        add_rep(conn)
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_BASE_URL": settings.base_url,
        "MAILSIGNAL_ATTACHMENTS_MODE": "all",
    }
    out = tmp_path / "out"
    eml = str(MAIL / "html_attachment.eml")
    cli(env, "emails", "instrument", eml, "--sender", "rep@northwind.test", "--out", str(out))
    [copy] = out.glob("*.eml")
    _replaced_and_served(_with_attachments(settings), copy.read_bytes())


def test_attachments_mode_applies_to_import_emails(engine: Engine, settings: Settings) -> None:
    settings = _with_attachments(settings)
    with engine.begin() as conn:
        add_rep(conn)
    line = json.dumps(
        {"sender": "rep@northwind.test", "mime": (MAIL / "html_attachment.eml").read_text()}
    )
    out = io.StringIO()
    summary = import_emails(engine, _signer(settings), settings, [line], out)
    assert (summary.imported, summary.errors) == (1, [])
    [copy] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert copy["recipient"] == "ops@example.net" and copy["tracked"]
    _replaced_and_served(settings, copy["mime"])
