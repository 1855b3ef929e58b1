"""Bring history in and take events out: `import emails`, `import hits`, `export events`.

Imports stream (a line at a time, batches of `ingest_batch_size`), are idempotent (every
email and hit gets a stable key, so importing a file twice adds nothing), and never
stop at a bad line: the line is reported by number with the reason, good lines land.
Hits go through the same `store_hits` path as live traffic (`pipeline.backfill`), so
imported events are enriched, classified and counted exactly like tracked ones, batch by
batch, each batch whole (counters and scores too) once committed.

Formats are documented in docs/import-export.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import IO, Any

from sqlalchemy import Engine

from .enrich import Pipeline
from .errors import InputError, MailSignalError, MimeError, TokenError
from .instrument import parse_message
from .model import RawHit, TokenKind
from .outgoing import Outgoing, build_message, check_time, recipients_of
from .pipeline.backfill import Backfill
from .pipeline.enrichment import default_enrichment
from .settings import Settings
from .store import emails, events
from .tokens import Signer
from .urls import parse_url

Progress = Callable[[int], None]


@dataclass
class Summary:
    """What an import did; `errors` name the line and the problem."""

    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, lineno: int, message: str) -> None:
        self.errors.append(f"line {lineno}: {message}")


# --- emails ------------------------------------------------------------------------------


def _aware(text: Any, what: str) -> datetime:
    if not isinstance(text, str):
        raise InputError(f"{what} must be an ISO 8601 string")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what} {text[:80]!r} is not ISO 8601") from exc
    return check_time(value if value.tzinfo else value.replace(tzinfo=UTC), what)


def _json_object(line: str) -> dict[str, Any]:
    """The JSON object on `line`; InputError for anything else, including what the
    decoder refuses other than by syntax (an integer over 4,300 digits, nesting deeper
    than the interpreter's stack)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not JSON we can read ({type(exc).__name__}: {str(exc)[:80]})") from exc
    if not isinstance(record, dict):
        raise InputError("expected a JSON object")
    return record


def import_emails(
    engine: Engine,
    signer: Signer,
    settings: Settings,
    lines: Iterable[str],
    out: IO[str],
    progress: Progress | None = None,
) -> Summary:
    """One JSON object per line; writes one JSON line per recipient copy to `out`."""
    service = Outgoing.from_settings(settings, signer)
    summary = Summary()
    for lineno, line in enumerate(lines, 1):
        summary.lines += 1
        if progress:
            progress(len(line))
        if not line.strip():
            continue
        try:
            record = _json_object(line)
            written = _import_email(engine, service, record, line, lineno, out)
        except MailSignalError as exc:
            summary.error(lineno, exc.message)
            continue
        if written:
            summary.imported += 1
        else:
            summary.duplicates += 1
    return summary


def _import_email(
    engine: Engine,
    service: Outgoing,
    record: dict[str, Any],
    line: str,
    lineno: int,
    out: IO[str],
) -> bool:
    sender = record.get("sender")
    if not isinstance(sender, str) or not sender:
        raise InputError("sender is required")
    sent_at = _aware(record["sent_at"], "sent_at") if "sent_at" in record else None
    # A stable Message-ID makes re-imports find the email they already made.
    key = hashlib.sha256(line.strip().encode("utf-8", "surrogateescape")).hexdigest()[:32]
    msg, recipients, message_id = _email_of(
        record, sender, sent_at, f"<import-{key}@mailsignal.invalid>"
    )
    with engine.begin() as conn:
        if emails.by_message_id(conn, message_id, sender.lower()) is not None:
            return False
        result = service.track(conn, msg, sender=sender, recipients=recipients, sent_at=sent_at)
        if result.replayed:  # another import of the same line got there first
            return False
        # Written and flushed before the commit: copies that cannot be written (an OSError,
        # which stops the import) leave no email behind that nobody could send.
        out.write(
            "".join(
                json.dumps(
                    {
                        "line": lineno,
                        "activityid": str(result.activity_id),
                        "messageid": result.message_id,
                        "recipient": copy.recipient,
                        "deliveryid": copy.delivery_id,
                        "tracked": copy.decision.tracked,
                        "untracked_reasons": list(copy.decision.reasons),
                        "mime": copy.message.as_bytes().decode("utf-8", "replace"),
                    }
                )
                + "\n"
                for copy in result.copies
            )
        )
        out.flush()
    return True


def _email_of(
    record: dict[str, Any], sender: str, sent_at: datetime | None, derived_id: str
) -> tuple[EmailMessage, list[str], str]:
    """The message a record stands for, its recipients and its Message-ID: built from
    `html`/`text`, or `mime` (a whole message, attachments and all) as it is."""
    recipients = record.get("recipients")
    if recipients is not None and (
        not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients)
    ):
        raise InputError("recipients must be a non-empty list of addresses")
    given_id = record.get("message_id") or None  # "" as if absent, as it always was
    if given_id is not None and not isinstance(given_id, str):
        raise InputError("message_id must be a string")
    mime = record.get("mime")
    if mime is None:
        if not recipients:
            raise InputError("recipients must be a non-empty list of addresses")
        message_id = given_id or derived_id
        subject = record.get("subject") or None
        msg = build_message(
            sender, recipients, subject, record.get("html"), record.get("text"), message_id, sent_at
        )
        return msg, recipients, message_id
    if not isinstance(mime, str):
        raise InputError("mime must be a string: a whole RFC 5322 message, as text")
    if record.get("html") is not None or record.get("text") is not None:
        raise InputError("give either mime or html/text, not both")
    try:
        msg = parse_message(mime)
    except MimeError as exc:
        raise InputError(f"mime: {exc.message}") from exc
    recipients = recipients or recipients_of(msg)
    if not recipients:
        raise InputError("recipients: none given and mime has no To or Cc address")
    own_id = str(msg["Message-ID"]).strip() if msg.get("Message-ID") is not None else None
    if own_id is None:
        # Without an id of its own the message gets the record's (or the derived one),
        # which is what makes importing it again a no-op.
        own_id = given_id or derived_id
        msg["Message-ID"] = own_id
    elif given_id is not None and given_id.strip() != own_id:
        raise InputError(f"message_id {given_id!r} differs from the Message-ID of mime")
    return msg, recipients, own_id


# --- hits --------------------------------------------------------------------------------

# nginx/Apache "combined": ip - user [time] "request" status bytes "referer" "agent"
_COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" '
    r'(?P<status>\d{3}) \S+(?: "(?P<referer>[^"]*)" "(?P<ua>[^"]*)")?'
)


def _token_of(url: str) -> tuple[str, TokenKind | None]:
    found = parse_url(url)
    if found is None:
        raise InputError(f"{url[:80]!r} is not a MailSignal tracking URL (/o/, /c/ or /a/)")
    return found


def _hit(
    signer: Signer,
    hit_id: str,
    at: datetime,
    url: str,
    ip: str,
    ua: str,
    method: str,
    external_id: str | None,
) -> RawHit:
    token, expect = _token_of(url)
    try:
        claims = signer.verify(token, expect)
    except TokenError as exc:
        raise InputError(
            f"tracking token not valid ({exc.message}): not ours, or signed with "
            "a key no longer in the keyring"
        ) from exc
    return RawHit(
        hit_id=hit_id,
        received_at=at,
        kind=claims.kind,
        delivery_id=claims.delivery_id,
        link_id=claims.link_id,
        ip=ip,
        user_agent=ua,
        method=method.upper(),
        external_id=external_id,
    )


def _parse_json_hit(signer: Signer, line: str, key: str) -> RawHit:
    record = _json_object(line)
    for name in ("time", "url"):
        if not isinstance(record.get(name), str):
            raise InputError(f"{name} is required")
    external = record.get("external_id")
    if external is not None and not isinstance(external, str | int):
        raise InputError("external_id must be a string")
    external_id = str(external) if external is not None else None
    hit_id = f"ext:{external_id}" if external_id else f"jsonl:{key}"
    return _hit(
        signer,
        hit_id,
        _aware(record["time"], "time"),
        record["url"],
        str(record.get("ip") or ""),
        str(record.get("user_agent") or ""),
        str(record.get("method") or "GET"),
        external_id,
    )


def _parse_log_hit(signer: Signer, line: str, key: str) -> RawHit:
    m = _COMBINED.match(line)
    if m is None:
        raise InputError("not a combined access-log line")
    try:
        at = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z")
    except ValueError as exc:
        raise InputError(f"bad time {m['time']!r}") from exc
    at = check_time(at, "time").astimezone(UTC)
    ua = m["ua"] or ""
    return _hit(
        signer, f"log:{key}", at, m["path"], m["ip"], "" if ua == "-" else ua, m["method"], None
    )


def _keys(lines: Iterable[str]) -> Iterator[tuple[int, str, str]]:
    """(line number, line, stable key). Identical lines (same second, address, agent and
    URL in a log) are different hits: the key counts repeats among adjacent lines, so
    memory stays constant while a re-import produces the same keys."""
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        digest = hashlib.sha256(line.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        if digest not in seen and len(seen) > 64:
            seen.clear()
        seen[digest] = seen.get(digest, 0) + 1
        yield lineno, line, f"{digest}:{seen[digest]}"


def import_hits(
    engine: Engine,
    signer: Signer,
    settings: Settings,
    lines: Iterable[str],
    fmt: str = "auto",
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Import hits from JSONL or combined access logs (`fmt`: auto, jsonl, combined)."""
    if fmt not in ("auto", "jsonl", "combined"):
        raise InputError(f"unknown format {fmt!r}: use jsonl, combined or auto")
    pipeline = pipeline or default_enrichment(settings)
    summary = Summary()
    batch: list[RawHit] = []
    backfill = Backfill(engine, pipeline, settings)
    for lineno, line, key in _keys(lines):
        summary.lines += 1
        if progress:
            progress(len(line) + 1)
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind = fmt if fmt != "auto" else ("jsonl" if line.lstrip().startswith("{") else "combined")
        try:
            parse = _parse_json_hit if kind == "jsonl" else _parse_log_hit
            batch.append(parse(signer, line, key))
        except MailSignalError as exc:
            summary.error(lineno, exc.message)
            continue
        if len(batch) >= settings.ingest_batch_size:
            backfill.store(batch)
            batch.clear()
    backfill.store(batch)
    result = backfill.finish()
    summary.imported += result.stored
    summary.duplicates += result.duplicates
    summary.skipped += result.orphans
    return summary


# --- export ------------------------------------------------------------------------------

KIND_NAMES = {0: "open", 1: "click", 2: "attachment", 3: "reply"}


def export_events(
    engine: Engine, out: IO[str], fmt: str = "jsonl", since: datetime | None = None
) -> int:
    """Write every event (machine ones too) with verdict, confidence and reasons."""
    if fmt not in ("jsonl", "csv"):
        raise InputError(f"unknown format {fmt!r}: use jsonl or csv")
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(events.EXPORT_COLUMNS)
    count = 0
    with engine.connect() as conn:
        for record in events.stream(conn, since):
            record["interactiontype"] = KIND_NAMES.get(record["interactiontype"], "unknown")
            for k in ("interactionforemailid", "emailactivityid"):
                record[k] = str(record[k])
            record["emailinteractiontime"] = record["emailinteractiontime"].isoformat()
            if writer:
                fired = (record["reasons"] or {}).get("fired", [])
                record["reasons"] = " ".join(e["rule"] for e in fired)
                writer.writerow([record[k] for k in events.EXPORT_COLUMNS])
            else:
                out.write(json.dumps(record, default=str) + "\n")
            count += 1
    return count
