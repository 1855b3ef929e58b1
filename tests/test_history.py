"""Imports and exports, on SQLite and PostgreSQL: streaming, idempotent, bad lines named."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from conftest import cli
from helpers import OUTLOOK, add_rep, tracked_urls
from mailsignal.history import export_events, import_emails, import_hits
from mailsignal.keyring import load_keyring
from mailsignal.pipeline import tally
from mailsignal.settings import Settings
from mailsignal.store import emails as store_emails
from mailsignal.store import events as store_events
from mailsignal.tokens import Signer

SENT = datetime.now(UTC) - timedelta(days=3)
HTML = '<p>See <a href="https://example.com/pricing">pricing</a> and <a href="https://example.com/demo">demo</a></p>'


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _emails_jsonl() -> list[str]:
    good = {
        "sender": "rep@northwind.test",
        "recipients": ["dana@contoso.test"],
        "subject": "Pricing",
        "html": HTML,
        "sent_at": SENT.isoformat(),
        "message_id": "<hist-1@northwind.test>",
    }
    second = {
        **good,
        "recipients": ["lee@fabrikam.test", "sam@adatum.test"],
        "message_id": "<hist-2@northwind.test>",
        "text": "Plain https://example.com/x",
    }
    return [
        json.dumps(good),
        "{not json",
        json.dumps({"recipients": ["a@b.test"]}),
        json.dumps(second),
        "",
    ]


def _import(engine: Engine, settings: Settings) -> tuple[object, list[dict[str, object]]]:
    with engine.begin() as conn:
        add_rep(conn)
    out = io.StringIO()
    summary = import_emails(engine, _signer(settings), settings, _emails_jsonl(), out)
    return summary, [json.loads(line) for line in out.getvalue().splitlines()]


def test_import_emails_reports_bad_lines_and_is_idempotent(
    engine: Engine, settings: Settings
) -> None:
    summary, copies = _import(engine, settings)
    assert (summary.imported, summary.duplicates) == (2, 0)  # type: ignore[attr-defined]
    assert summary.errors[0].startswith("line 2: not JSON")  # type: ignore[attr-defined]
    assert summary.errors[1] == "line 3: sender is required"  # type: ignore[attr-defined]
    assert [c["recipient"] for c in copies] == [
        "dana@contoso.test",
        "lee@fabrikam.test",
        "sam@adatum.test",
    ]
    assert all(tracked_urls(str(c["mime"])) for c in copies)
    again = import_emails(engine, _signer(settings), settings, _emails_jsonl(), io.StringIO())
    assert (again.imported, again.duplicates) == (0, 2)


MIME = (
    "From: Rep <rep@northwind.test>\nTo: Dana <dana@contoso.test>\nCc: lee@fabrikam.test\n"
    "Subject: Pricing\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
    '<p>See <a href="https://example.com/pricing">pricing</a></p>\n'
)


def test_import_emails_takes_a_whole_message_as_mime(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        add_rep(conn)
    rep = "rep@northwind.test"
    lines = [
        json.dumps({"sender": rep, "mime": MIME, "sent_at": SENT.isoformat()}),
        json.dumps(
            {
                "sender": rep,
                "mime": MIME.replace("Cc: lee", "Message-ID: <m@x>\nCc: lee"),
                "recipients": ["sam@adatum.test"],
            }
        ),
        json.dumps({"sender": rep, "mime": 42}),
        json.dumps({"sender": rep, "mime": MIME, "html": "<p>x</p>"}),
        json.dumps({"sender": rep, "mime": "no header block at all"}),
        json.dumps({"sender": rep, "mime": MIME.split("\n", 3)[3]}),  # neither To nor Cc
        json.dumps({"sender": rep, "mime": "Message-ID: <a@x>\n" + MIME, "message_id": "<b@x>"}),
    ]
    out = io.StringIO()
    summary = import_emails(engine, _signer(settings), settings, lines, out)
    assert (summary.imported, summary.duplicates) == (2, 0)
    assert summary.errors == [
        "line 3: mime must be a string: a whole RFC 5322 message, as text",
        "line 4: give either mime or html/text, not both",
        "line 5: mime: not an email message: no header block with "
        "From/To/Subject/Date/MIME-Version",
        "line 6: recipients: none given and mime has no To or Cc address",
        "line 7: message_id '<b@x>' differs from the Message-ID of mime",
    ]
    copies = [json.loads(line) for line in out.getvalue().splitlines()]
    # Recipients default to the message's To and Cc; given ones win.
    assert [(c["line"], c["recipient"]) for c in copies] == [
        (1, "dana@contoso.test"),
        (1, "lee@fabrikam.test"),
        (2, "sam@adatum.test"),
    ]
    assert copies[2]["messageid"] == "<m@x>"
    assert copies[0]["messageid"].startswith("<import-")  # derived: re-imports find it
    assert all(tracked_urls(str(c["mime"])) for c in copies)
    again = import_emails(engine, _signer(settings), settings, lines[:2], io.StringIO())
    assert (again.imported, again.duplicates) == (0, 2)


def test_import_hits_of_a_download_link_with_its_file_name(
    engine: Engine, settings: Settings
) -> None:
    settings = settings.model_copy(update={"attachments_mode": "all"})
    with engine.begin() as conn:
        add_rep(conn)
    eml = Path(__file__).parent / "fixtures" / "mail" / "html_attachment.eml"
    line = json.dumps({"sender": "rep@northwind.test", "mime": eml.read_text()})
    out = io.StringIO()
    assert import_emails(engine, _signer(settings), settings, [line], out).imported == 1
    copy = json.loads(out.getvalue())["mime"]
    [url] = set(re.findall(r"http://track\.test/a/[A-Za-z0-9_-]+", copy))  # html and text
    hit = {"time": (SENT + timedelta(hours=1)).isoformat(), "url": f"{url}/uptime-2025-10.html"}
    summary = import_hits(engine, _signer(settings), settings, [json.dumps(hit)])
    assert (summary.imported, summary.errors) == (1, [])


def _hit_lines(copies: list[dict[str, object]]) -> tuple[list[str], str]:
    urls = tracked_urls(str(copies[0]["mime"]))
    pixel = next(u for u in urls if u.endswith(".gif"))
    click = next(u for u in urls if "/c/" in u)
    t = SENT + timedelta(hours=2)
    lines = [
        json.dumps(
            {
                "time": t.isoformat(),
                "url": pixel,
                "ip": "2001:db8::7",
                "user_agent": OUTLOOK,
                "external_id": "evt-1",
            }
        ),
        json.dumps(
            {
                "time": (t + timedelta(minutes=1)).isoformat(),
                "url": click,
                "ip": "198.51.100.9",
                "user_agent": OUTLOOK,
                "external_id": "evt-2",
            }
        ),
        json.dumps(
            {
                "time": (SENT - timedelta(hours=1)).isoformat(),
                "url": pixel,
                "ip": "198.51.100.9",
                "external_id": "evt-skew",
            }
        ),  # no UA, before send
        json.dumps({"time": t.isoformat(), "url": pixel.replace("/o/", "/o/x"), "ip": "1.2.3.4"}),
        json.dumps({"time": "yesterday", "url": pixel}),
        "this is not json",
    ]
    return lines, pixel


def test_import_hits_jsonl(engine: Engine, settings: Settings) -> None:
    _summary, copies = _import(engine, settings)
    lines, _pixel = _hit_lines(copies)
    summary = import_hits(engine, _signer(settings), settings, lines)
    assert (summary.imported, summary.duplicates) == (3, 0)
    assert [e.split(":")[0] for e in summary.errors] == ["line 4", "line 5", "line 6"]
    assert "token not valid" in summary.errors[0]
    assert "not ISO 8601" in summary.errors[1]
    again = import_hits(engine, _signer(settings), settings, lines)
    assert (again.imported, again.duplicates) == (0, 3)
    with engine.connect() as conn:
        events = store_events.of_email(conn, uuid.UUID(str(copies[0]["activityid"])))
    skew = next(e for e in events if e["externalid"] == "evt-skew")
    assert "timing.before_send" in [r["rule"] for r in skew["reasons"]["fired"]]
    assert skew["interactionuseragent"] == ""
    # Stored as ip_storage (default truncated) keeps it: 2001:db8::7 -> its /48.
    assert {e["ipaddress"] for e in events} >= {"2001:db8::"}


def test_an_interrupted_import_keeps_whole_batches_and_resumes(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch commits with its counters: an import that dies after its first batch
    leaves that batch stored and counted, and running it again adds only the rest."""
    _summary, copies = _import(engine, settings)
    lines, _pixel = _hit_lines(copies)
    activity = uuid.UUID(str(copies[0]["activityid"]))
    small = settings.model_copy(update={"ingest_batch_size": 2})
    real, calls = tally.apply, []

    def dies_on_the_second_batch(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(*args, **kwargs)

    monkeypatch.setattr(tally, "apply", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        import_hits(engine, _signer(small), small, lines)
    with engine.connect() as conn:
        stored = store_events.of_email(conn, activity)
        row = store_emails.get(conn, activity)
    assert len(stored) == 2  # the first batch, whole
    assert row["opencount"] + row["linksclickedcount"] == 2  # and counted
    monkeypatch.undo()
    again = import_hits(engine, _signer(small), small, lines)
    assert (again.imported, again.duplicates) == (1, 2)
    with engine.connect() as conn:
        row = store_emails.get(conn, activity)
    assert (row["opencount"], row["linksclickedcount"]) == (2, 1)


def test_import_combined_log(engine: Engine, settings: Settings) -> None:
    _summary, copies = _import(engine, settings)
    urls = tracked_urls(str(copies[0]["mime"]))
    pixel_path = next(u for u in urls if u.endswith(".gif")).split("track.test")[-1]
    click_path = next(u for u in urls if "/c/" in u).split("track.test")[-1]
    when = (SENT + timedelta(hours=5)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    line = f'203.0.113.5 - - [{when}] "GET {pixel_path} HTTP/1.1" 200 43 "-" "{OUTLOOK}"'
    lines = [
        line,
        line,  # two identical hits in the same second are two hits
        f'203.0.113.5 - - [{when}] "GET {click_path} HTTP/2.0" 302 0 "-" "-"',
        "garbage that is not a log line",
        f'203.0.113.5 - - [{when}] "GET /favicon.ico HTTP/1.1" 404 0 "-" "x"',
    ]
    summary = import_hits(engine, _signer(settings), settings, lines, "combined")
    assert summary.imported == 3 and len(summary.errors) == 2
    assert summary.errors[0].startswith("line 4: not a combined")
    assert "not a MailSignal tracking URL" in summary.errors[1]
    assert import_hits(engine, _signer(settings), settings, lines, "combined").imported == 0


def test_export_jsonl_and_csv(engine: Engine, settings: Settings) -> None:
    _summary, copies = _import(engine, settings)
    lines, _ = _hit_lines(copies)
    import_hits(engine, _signer(settings), settings, lines[:3])
    buf = io.StringIO()
    assert export_events(engine, buf, "jsonl") == 3
    records = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert {r["externalid"] for r in records} == {"evt-1", "evt-2", "evt-skew"}
    assert all(r["verdict"] in ("human", "machine", "unknown", "forward") for r in records)
    assert all("fired" in r["reasons"] for r in records)
    buf = io.StringIO()
    export_events(engine, buf, "csv")
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == 3 and rows[0]["interactiontype"] in ("open", "click")


def test_cli_import_recompute_report(settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_BASE_URL": "http://track.test",
        "MAILSIGNAL_NOISE_OPEN_THRESHOLD": "2",
    }
    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    emails = tmp_path / "emails.jsonl"
    emails.write_text("\n".join(_emails_jsonl()))
    result = cli(env, "import", "emails", str(emails), "--out", str(tmp_path / "copies.jsonl"))
    assert "2 imported" in result.stdout and "line 2: not JSON" in result.stderr
    copies = [json.loads(x) for x in (tmp_path / "copies.jsonl").read_text().splitlines()]
    lines, pixel = _hit_lines(copies)
    extra = [
        json.dumps(
            {
                "time": (SENT + timedelta(hours=9, seconds=i)).isoformat(),
                "url": pixel,
                "ip": "40.107.22.51",
                "user_agent": "Mozilla/5.0",
            }
        )
        for i in range(3)
    ]
    hits = tmp_path / "hits.jsonl"
    hits.write_text("\n".join(lines + extra) + "\n")
    result = cli(env, "import", "hits", str(hits))
    assert "6 imported" in result.stdout and "line 4" in result.stderr
    assert "recomputed" in cli(env, "classify", "--recompute").stdout
    assert "verdicts changed" in cli(env, "classify", "--sweep").stdout
    report = cli(env, "report", "noise").stdout
    assert "Pricing" in report and "1 emails over 2 raw opens" in report
    out = tmp_path / "events.csv"
    cli(env, "export", "events", "--format", "csv", "--out", str(out))
    assert len(out.read_text().splitlines()) == 7
    bad = cli(env, "import", "hits", str(tmp_path / "missing.jsonl"), check=False)
    assert bad.returncode == 2 and "no such file" in bad.stderr


@pytest.mark.parametrize("fmt", ["xml"])
def test_unknown_formats(engine: Engine, settings: Settings, fmt: str) -> None:
    from mailsignal.errors import InputError

    with pytest.raises(InputError):
        export_events(engine, io.StringIO(), fmt)
    with pytest.raises(InputError):
        import_hits(engine, _signer(settings), settings, [], fmt)


# --- hostile lines: each named and refused, nothing half-stored (#10) ------------------------


def _counts(engine: Engine) -> tuple[int, ...]:
    from sqlalchemy import func, select

    from mailsignal.store.schema import email, emaildelivery, trackedlink

    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (email, emaildelivery, trackedlink)
        )


def test_import_emails_refuses_injection_odd_times_and_odd_json(
    engine: Engine, settings: Settings
) -> None:
    with engine.begin() as conn:
        add_rep(conn)
    base = {"sender": "rep@northwind.test", "recipients": ["dana@contoso.test"], "html": HTML}
    bad = [
        {**base, "subject": "Hi\r\nBcc: spy@evil.test"},
        {**base, "recipients": ["dana@contoso.test\r\nBcc: spy@evil.test"]},
        {**base, "message_id": "<a@b>\r\nBcc: spy@evil.test"},
        {**base, "sender": "rep@northwind.test\nBcc: spy@evil.test"},
        {**base, "sent_at": "0001-01-01T00:00:00+05:00"},
        {**base, "sent_at": "9999-12-31T23:59:59-05:00"},
        {**base, "html": "<p>\ud800</p>"},
        {**base, "html": 42},
        {**base, "subject": "x" * 801},
        {**base, "recipients": ["a" * 400 + "@contoso.test"]},
    ]
    lines = [json.dumps(record) for record in bad]
    lines += ["[" * 100_000 + "]" * 100_000, '{"n": ' + "9" * 5000 + "}"]
    summary = import_emails(engine, _signer(settings), settings, lines, io.StringIO())
    assert (summary.imported, len(summary.errors)) == (0, len(lines)), summary.errors
    assert summary.errors[:10] == [
        "line 1: subject: must be one line without control characters",
        "line 2: recipients: must be one line without control characters",
        "line 3: message_id: must be one line without control characters",
        "line 4: sender: must be one line without control characters",
        "line 5: sent_at: 0001-01-01T00:00:00+05:00 is outside the accepted range "
        "1970-01-01 to 2100-01-01 (UTC)",
        "line 6: sent_at: 9999-12-31T23:59:59-05:00 is outside the accepted range "
        "1970-01-01 to 2100-01-01 (UTC)",
        "line 7: html: not Unicode text (a lone surrogate at position 3)",
        "line 8: html must be a string",
        "line 9: subject: at most 800 characters",
        "line 10: recipients: not an email address: '" + "a" * 80 + "...'",
    ]
    assert summary.errors[10].startswith("line 11: not JSON we can read (RecursionError")
    assert summary.errors[11].startswith("line 12: not JSON we can read (ValueError")
    assert _counts(engine) == (0, 0, 0)


def test_import_emails_stops_when_copies_cannot_be_written(
    engine: Engine, settings: Settings
) -> None:
    """An email is stored only with its copies written: a re-import would otherwise skip
    it as "already there" and its copies would be lost for good."""

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with engine.begin() as conn:
        add_rep(conn)
    with pytest.raises(OSError, match="No space"):
        import_emails(engine, _signer(settings), settings, _emails_jsonl(), Full())
    assert _counts(engine) == (0, 0, 0)
    summary = import_emails(engine, _signer(settings), settings, _emails_jsonl(), io.StringIO())
    assert summary.imported == 2


def test_import_hits_refuses_times_outside_the_range(engine: Engine, settings: Settings) -> None:
    lines = [
        json.dumps({"time": "0001-01-01T00:00:00+05:00", "url": "http://t.test/o/x.gif"}),
        '1.2.3.4 - - [01/Jan/0001:00:00:00 +0500] "GET /o/x.gif HTTP/1.1" 200 43 "-" "UA"',
    ]
    summary = import_hits(engine, _signer(settings), settings, lines)
    assert [e.split(":")[0] for e in summary.errors] == ["line 1", "line 2"]
    assert all("outside the accepted range" in e for e in summary.errors), summary.errors


def test_cli_import_and_export_to_unwritable_outputs(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }
    with engine.begin() as conn:
        add_rep(conn)
    emails = tmp_path / "emails.jsonl"
    emails.write_text("\n".join(_emails_jsonl()) + "\n")
    for args in (
        ["import", "emails", str(emails), "--out", str(tmp_path / "missing" / "copies.jsonl")],
        ["export", "events", "--out", str(tmp_path / "missing" / "events.jsonl")],
        ["export", "events", "--out", str(tmp_path)],
    ):
        result = cli(env, *args, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: --out ") and "cannot write" in result.stderr
        assert "Traceback" not in result.stderr
    assert _counts(engine) == (0, 0, 0)
