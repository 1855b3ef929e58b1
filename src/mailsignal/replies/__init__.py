"""Tell a person's reply from an auto-reply or a bounce, and say which sent email it answers.

Pure (DESIGN §2, layer 1): a parsed message in, an `Analysis` out; no I/O. A message
that cannot be fully understood (malformed MIME, 8-bit headers) is analysed as far as
possible and its defects are listed; nothing here raises on content.

Which kind a message is follows from which rules fired (see `rules.py`): a delivery
report wins over an auto-reply (bounces carry Auto-Submitted too), an auto-reply over a
person, and a person is what is left. The sent email is found by the ids the message
names, most telling first: for a bounce the returned original's Message-ID, then
In-Reply-To, then References newest first, then MailSignal's own `X-MailSignal-Id`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from ..model import Classification, Evidence, Verdict
from .dsn import TRACKING_HEADER, BounceInfo, BounceRecipient, bounce_info
from .headers import Headers, address, date, message_ids, normalise_id
from .rules import FAILURE_RULES, RULES, Rule, View

__all__ = [
    "RULES",
    "TRACKING_HEADER",
    "VERSION",
    "Analysis",
    "BounceInfo",
    "BounceRecipient",
    "Reference",
    "ReplyKind",
    "Rule",
    "analyse",
    "normalise_id",
    "parse",
]

VERSION = "replies-1"
HUMAN_PRIOR = 1.5  # a message naming one of our sent emails is most often a person's answer


class ReplyKind(enum.StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    NOTICE = "delivery_notice"  # a DSN that is not a failure (delayed, delivered, relayed)


@dataclass(frozen=True, slots=True)
class Reference:
    """A Message-ID (no brackets, case kept) and where it was found: `bounce_original`,
    `in_reply_to`, `references` or `x_mailsignal_id`."""

    id: str
    via: str


@dataclass(frozen=True, slots=True)
class Analysis:
    kind: ReplyKind
    classification: Classification
    message_id: str | None  # without angle brackets, case kept
    sender: str | None  # the From address, lower case
    subject: str
    date: datetime | None  # the Date header, aware UTC
    references: tuple[Reference, ...]  # the ids this message names, most telling first
    bounce: BounceInfo | None = None
    defects: tuple[str, ...] = field(default=())


def parse(raw: bytes) -> EmailMessage:
    """Parse bytes as found in a mailbox; never raises on content (defects are recorded)."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def analyse(msg: Message) -> Analysis:
    """Classify one incoming message and list the sent emails it may answer."""
    headers = Headers(msg)
    own_ids = message_ids(headers.first("message-id"))
    own_id = own_ids[0] if own_ids else None
    parts = list(msg.walk())
    view = View(
        headers,
        headers.first("subject"),
        address(headers.first("from")),
        any(p.get_content_type() == "message/delivery-status" for p in parts),
    )
    fired = [(r, text) for r in RULES if (text := r.check(view)) is not None]
    groups = {r.group for r, _ in fired}
    bounce = bounce_info(msg, own_id) if "bounce" in groups else None
    if bounce is not None and (bounce.failed or any(r.id in FAILURE_RULES for r, _ in fired)):
        kind = ReplyKind.BOUNCE
    elif bounce is not None:  # a report, but nobody failed: a delay or delivery notice
        kind = ReplyKind.NOTICE
    elif "auto" in groups:
        kind = ReplyKind.AUTO_REPLY
    else:
        kind = ReplyKind.HUMAN
    found = [Reference(i, "bounce_original") for i in bounce.original_message_ids] if bounce else []
    found += [
        Reference(i, "in_reply_to") for v in headers.all("in-reply-to") for i in message_ids(v)
    ]
    found += [  # References lists the thread oldest first; the newest names what was answered
        Reference(i, "references") for v in headers.all("references") for i in message_ids(v)[::-1]
    ]
    found += [
        Reference(i, "x_mailsignal_id")
        for v in headers.all(TRACKING_HEADER)
        for i in message_ids(v) or [v.strip()]
    ]
    return Analysis(
        kind=kind,
        classification=_classification(kind, fired),
        message_id=own_id,
        sender=view.sender,
        subject=view.subject,
        date=date(headers.first("date")),
        references=_unique(found),
        bounce=bounce,
        defects=tuple(sorted({type(d).__name__ for p in parts for d in p.defects})),
    )


def _unique(refs: list[Reference]) -> tuple[Reference, ...]:
    seen: dict[str, Reference] = {}
    for ref in refs:
        key = normalise_id(ref.id)
        if key and key not in seen:
            seen[key] = Reference(ref.id.strip().strip("<>"), ref.via)
    return tuple(seen.values())


def _classification(kind: ReplyKind, fired: list[tuple[Rule, str]]) -> Classification:
    human = kind is ReplyKind.HUMAN
    evidence = tuple(
        Evidence(r.id, Verdict.HUMAN if r.weight > 0 else Verdict.MACHINE, r.weight, text)
        for r, text in fired
    )
    if human:
        score = HUMAN_PRIOR + sum(e.weight for e in evidence if e.weight > 0)
    else:  # the machine rules decide; their summed weight says how sure that is
        score = -sum(e.weight for e in evidence if e.weight < 0)
    fired_ids = {e.rule for e in evidence}
    return Classification(
        verdict=Verdict.HUMAN if human else Verdict.MACHINE,
        # Capped below 1: a header can lie, so no label is ever certain.
        confidence=min(0.999, round(1 / (1 + math.exp(-score)), 3)),
        fired=evidence,
        not_fired=tuple(r.id for r in RULES if r.id not in fired_ids),
        version=VERSION,
    )
