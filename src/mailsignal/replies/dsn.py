"""Bounce details: who failed and which sent message it was (RFC 3464 and the rest).

Standard reports (Postfix, Exim, Gmail, Exchange) carry a message/delivery-status part
with one block per recipient and return the original as message/rfc822 or, when the
MTA keeps only headers, text/rfc822-headers. Older or home-made bounces (qmail's
"failure notice", some appliances) only quote the original in plain text, and Exim
adds X-Failed-Recipients; both are read too, as a fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_string
from email.message import Message
from email.utils import getaddresses

from .headers import Headers, decode_value, message_ids, normalise_id, text_of, unique_ids

TRACKING_HEADER = "X-MailSignal-Id"
_QUOTED_ID = re.compile(rf"(?im)^(?:message-id|{TRACKING_HEADER}):[ \t]*<([^<>\s]+)>")
# qmail's "failure notice" names each failed address alone on a line: "<a@b.example>:".
_QMAIL_RCPT = re.compile(r"(?m)^<([^<>\s@]+@[^<>\s]+)>:[ \t]*$")


@dataclass(frozen=True, slots=True)
class BounceRecipient:
    address: str
    action: str  # RFC 3464: failed, delayed, delivered, relayed, expanded
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class BounceInfo:
    original_message_ids: tuple[str, ...]
    recipients: tuple[BounceRecipient, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.action == "failed")


def _field_blocks(text: str) -> list[dict[str, str]]:
    """'Name: value' blocks separated by blank lines (a DSN whose part was sent encoded)."""
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n\s*\r?\n", text):
        block: dict[str, str] = {}
        last = ""
        for line in chunk.splitlines():
            if line[:1] in (" ", "\t") and last:
                block[last] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                last = name.strip().lower()
                block[last] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser splits message/delivery-status into blocks
        return [
            {k.lower(): decode_value(str(v)) for k, v in block.raw_items()}
            for block in payload
            if isinstance(block, Message)
        ]
    return _field_blocks(text_of(part))


def _recipient(block: dict[str, str]) -> BounceRecipient | None:
    raw = block.get("final-recipient") or block.get("original-recipient") or ""
    addr = raw.rpartition(";")[2].strip().strip("<>").strip().lower()
    if "@" not in addr:
        return None
    status = (block.get("status") or "").split(" ")[0]
    action = (block.get("action") or "").strip().lower().split(" ")[0]
    if not action:  # some MTAs omit Action; the status class says the same thing
        action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "")
    diagnostic = " ".join(block.get("diagnostic-code", "").split())[:500]
    return BounceRecipient(addr, action, status, diagnostic)


def original_ids(headers: Headers) -> list[str]:
    """The returned original's Message-ID, then MailSignal's own header if it kept one."""
    ids = [i for v in headers.all("message-id") for i in message_ids(v)]
    return ids + [i for v in headers.all(TRACKING_HEADER) for i in message_ids(v) or [v]]


def bounce_info(msg: Message, own_id: str | None) -> BounceInfo:
    """Recipients from the delivery-status part; the original's ids from the returned copy."""
    recipients: list[BounceRecipient] = []
    originals: list[str] = []
    quoted: list[str] = []
    listed: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            recipients += [r for b in _dsn_blocks(part) if (r := _recipient(b)) is not None]
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                originals += original_ids(Headers(inner[0]))
        elif ctype == "text/rfc822-headers":
            originals += original_ids(Headers(message_from_string(text_of(part))))
        elif ctype == "text/plain":
            text = text_of(part)
            quoted += _QUOTED_ID.findall(text)
            listed += _QMAIL_RCPT.findall(text)
    extra = [a for v in Headers(msg).all("x-failed-recipients") for _n, a in getaddresses([v])]
    if not recipients:  # only when there is no DSN: its blocks are the better source
        extra += listed
    for addr in (a.strip().lower() for a in extra if "@" in a):
        if all(r.address != addr for r in recipients):
            recipients.append(BounceRecipient(addr, "failed"))
    own = normalise_id(own_id or "")  # a bounce quoting itself must not match itself
    ids = [i for i in [*originals, *quoted] if normalise_id(i) != own]
    return BounceInfo(unique_ids(ids), tuple(recipients))
