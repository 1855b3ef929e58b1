"""Store incoming messages as reply events: match, label, insert once, recount.

Matching is by headers only (DESIGN §1: never by pixel): the ids a message names
(`replies.Analysis.references`, most telling first) are looked up in `email.messageid`
(and a UUID in `X-MailSignal-Id` in `email.emailtrackingid`). The delivery is the one
whose address sent the reply; a reply from another address (a colleague, a forward) is
still a reply, put on the first delivery with verdict `forward` and a reason saying so.
A bounce marks the failed recipients' deliveries `failed`.

Exactly once: `hitid` is "reply:" + the reply's normalised Message-ID (a SHA-256 when it
is too long or missing), inserted with ON CONFLICT DO NOTHING, so reading a message
again (a retried batch, a reset UIDVALIDITY, the same mail imported from a file) adds
nothing. Machine replies are stored and labelled; engagement.py leaves them out of
`replycount` and the scores. Counters and scores move by the new events (tally.py).
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from ..model import Classification, EventKind, Evidence, Verdict, new_id
from ..replies import Analysis, Reference, ReplyKind, analyse, normalise_id, parse
from ..settings import Settings
from ..store import emails, events
from . import tally
from .rows import reasons_json

_FUTURE = timedelta(days=1)  # a Date further ahead than this is a wrong clock, not a time


class Outcome(enum.StrEnum):
    REPLY = "reply"  # a person who received the email
    FORWARD = "forward"  # a person at another address (colleague, forward)
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    NOTICE = "delivery_notice"
    UNMATCHED = "unmatched"  # names no email we sent: left alone
    OWN = "own"  # the rep's own message in the thread
    DUPLICATE = "duplicate"  # already stored
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    raw: bytes
    origin: str  # where it came from, for messages to people: "INBOX UID 42", "a.mbox #3"
    received_at: datetime | None = None  # IMAP INTERNALDATE, when known


@dataclass(slots=True)
class SyncSummary:
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: str | None = None  # why a mailbox run stopped early (progress so far is kept)

    @property
    def read(self) -> int:
        return sum(self.counts.values())

    def add(self, results: Sequence[tuple[Outcome, str | None]]) -> None:
        for outcome, error in results:
            self.counts[outcome] += 1
            if error:
                self.errors.append(error)

    def merge(self, other: SyncSummary) -> None:
        self.counts.update(other.counts)
        self.errors += other.errors
        self.notes += other.notes
        self.failed = self.failed or other.failed


def hit_id(analysis: Analysis, raw: bytes) -> str:
    """The event's unique key (hitid is 80 characters at most)."""
    if analysis.message_id:
        key = normalise_id(analysis.message_id)
        if len(key) <= 74:
            return f"reply:{key}"
        return f"reply:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return f"reply:raw:{hashlib.sha256(raw).hexdigest()}"


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _find_emails(conn: Connection, analyses: list[Analysis]) -> dict[str, Any]:
    """Sent emails by normalised Message-ID and by tracking id (UUID text)."""
    refs = sorted({r.id for a in analyses for r in a.references})
    found: dict[str, Any] = {}
    for row in emails.by_message_ids(conn, refs):
        found.setdefault(normalise_id(row.messageid or ""), row)
    for row in emails.by_tracking_ids(conn, [u for r in refs if (u := _uuid(r)) is not None]):
        found.setdefault(str(row.emailtrackingid), row)
    return found


def _match(analysis: Analysis, sent: dict[str, Any]) -> tuple[Any, Reference] | None:
    for ref in analysis.references:
        row = sent.get(normalise_id(ref.id))
        if row is None and ref.via == "x_mailsignal_id" and (u := _uuid(ref.id)) is not None:
            row = sent.get(str(u))
        if row is not None:
            return row, ref
    return None


def _note(rule: str, verdict: Verdict, text: str) -> Evidence:
    return Evidence(rule, verdict, 0.0, text)  # weightless: a fact about the match, not a vote


def _with(result: Classification, verdict: Verdict, *notes: Evidence) -> Classification:
    return Classification(
        verdict, result.confidence, (*result.fired, *notes), result.not_fired, result.version
    )


def store_messages(
    conn: Connection, messages: Sequence[IncomingMessage], settings: Settings
) -> list[tuple[Outcome, str | None]]:
    """Analyse, match and store messages in the caller's transaction; one outcome each."""
    results: list[tuple[Outcome, str | None]] = [(Outcome.UNMATCHED, None)] * len(messages)
    parsed: list[tuple[int, Analysis]] = []
    for index, message in enumerate(messages):
        try:
            parsed.append((index, analyse(parse(message.raw))))
        except Exception as exc:  # parse/analyse are lenient; this guards hostile input only
            results[index] = (Outcome.ERROR, f"{message.origin}: unreadable ({exc!r:.120})")
    sent_emails = _find_emails(conn, [a for _i, a in parsed])
    matched: list[tuple[int, Analysis, Any, Reference]] = []
    for index, analysis in parsed:
        found = _match(analysis, sent_emails)
        if found is not None and analysis.sender == found[0].sender:
            results[index] = (Outcome.OWN, None)  # the rep's own message in the thread
        elif found is not None:
            matched.append((index, analysis, *found))
    deliveries = emails.recipients(conn, {sent.activityid for _i, _a, sent, _r in matched})
    rows: dict[str, dict[str, Any]] = {}
    hits: dict[int, str] = {}
    failed: set[int] = set()
    now = datetime.now(UTC)
    for index, analysis, sent, ref in matched:
        if not deliveries.get(sent.activityid):
            continue  # an email without deliveries (erased): nothing to attach to
        row = _event(analysis, messages[index], sent, ref, deliveries[sent.activityid], failed, now)
        hits[index] = row["hitid"]
        if row["hitid"] in rows:  # the same message twice in one batch
            results[index] = (Outcome.DUPLICATE, None)
            continue
        rows[row["hitid"]] = row
        results[index] = (Outcome(row["facts"]["reply"]["outcome"]), None)
    known = events.stored_hit_ids(conn, list(rows))
    for index, hit in hits.items():
        if hit in known:
            results[index] = (Outcome.DUPLICATE, None)
    fresh = [row for hit, row in rows.items() if hit not in known]
    if fresh:
        delivered = events.deliveries(conn, {row["deliveryid"] for row in fresh}, lock=True)
        tally.record(conn, fresh, delivered, settings, now)
    emails.mark_failed(conn, failed)  # idempotent, so a re-read bounce changes nothing
    return results


_VIA = {
    "bounce_original": "the Message-ID of the original returned in the report",
    "in_reply_to": "In-Reply-To",
    "references": "References",
    "x_mailsignal_id": "the X-MailSignal-Id header",
}


def _clean(text: str, limit: int) -> str:
    """Text safe for every backend: no NUL (PostgreSQL refuses it), no lone surrogates."""
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _event(
    analysis: Analysis,
    message: IncomingMessage,
    sent: Any,
    ref: Reference,
    deliveries: list[Any],
    failed: set[int],
    now: datetime,
) -> dict[str, Any]:
    """The interactionforemail row for one matched message; adds bounced deliveries to
    `failed`."""
    result = analysis.classification
    verdict = result.verdict
    notes = [_note(f"match.{ref.via}", verdict, f"Matched to {sent.messageid} by {_VIA[ref.via]}.")]
    by_address = {d.emailaddress.lower(): d for d in deliveries}
    if analysis.bounce is not None and analysis.kind in (ReplyKind.BOUNCE, ReplyKind.NOTICE):
        named = [a for a in (r.address for r in analysis.bounce.recipients) if a in by_address]
        hit = [by_address[a] for a in analysis.bounce.failed if a in by_address]
        if analysis.kind is ReplyKind.BOUNCE and not hit and len(deliveries) == 1:
            hit = deliveries
            notes.append(
                _note(
                    "bounce.sole_recipient",
                    verdict,
                    "The report names no address "
                    "this email went to, but it had one recipient: that one failed.",
                )
            )
        elif analysis.kind is ReplyKind.BOUNCE and not hit:
            notes.append(
                _note(
                    "bounce.recipient_unknown",
                    verdict,
                    "The report names no address this email went to; no delivery is marked failed.",
                )
            )
        if analysis.kind is ReplyKind.BOUNCE:
            failed |= {d.deliveryid for d in hit}
        delivery = hit[0] if hit else (by_address[named[0]] if named else deliveries[0])
        outcome = Outcome.BOUNCE if analysis.kind is ReplyKind.BOUNCE else Outcome.NOTICE
    else:
        delivery = by_address.get(analysis.sender or "")
        outcome = Outcome.REPLY if analysis.kind is ReplyKind.HUMAN else Outcome.AUTO_REPLY
        if delivery is None:
            delivery = deliveries[0]
            if analysis.kind is ReplyKind.HUMAN:
                verdict, outcome = Verdict.FORWARD, Outcome.FORWARD
            notes.append(
                _note(
                    "reply.other_address",
                    verdict,
                    f"Sent from {analysis.sender}, "
                    "not an address this email went to: probably a colleague or a "
                    "forward. Recorded on the first recipient.",
                )
            )
    result = _with(result, verdict, *notes)
    when = analysis.date
    if when is None or when > now + _FUTURE:
        when = message.received_at or now
    mid = f"<{analysis.message_id}>" if analysis.message_id else None
    bounce = analysis.bounce
    return {
        "interactionforemailid": new_id(),
        "emailactivityid": sent.activityid,
        "deliveryid": delivery.deliveryid,
        "interactiontype": int(EventKind.REPLY),
        "emailinteractiontime": when,
        "emailaddress": delivery.emailaddress,
        "interactionrepliedby": _clean(analysis.sender, 320) if analysis.sender else None,
        "replymessageid": _clean(mid, 998) if mid else None,
        "interactionuseragent": "",
        "ipaddress": "",
        "httpmethod": "",
        "headers": {"Subject": _clean(analysis.subject, 500), "Message-ID": _clean(mid or "", 998)},
        "facts": {
            "reply": {
                "kind": str(analysis.kind),
                "outcome": str(outcome),
                "via": ref.via,
                "origin": _clean(message.origin, 300),
                "defects": list(analysis.defects),
                "bounce": [
                    {
                        "address": r.address,
                        "action": r.action,
                        "status": r.status,
                        "diagnostic": _clean(r.diagnostic, 500),
                    }
                    for r in (bounce.recipients if bounce else ())
                ],
            }
        },
        "verdict": str(result.verdict),
        "confidence": result.confidence,
        "reasons": reasons_json(result),
        "classifierversion": result.version,
        "hitid": hit_id(analysis, message.raw),
        "createdon": now,
    }
