"""A message as a client submits it to the relay: its envelope, and its bytes made fit
to leave (no Bcc, no forged X-MailSignal-Id) and parsed."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from ..errors import MimeError
from ..instrument import parse_message

# Header fields no copy carries: Bcc (RFC 5322 §3.6.3: the blind recipients must not see
# each other, nor the others them) and the relay's own id, which only the relay writes.
_DROPPED_FIELDS = frozenset({b"bcc", b"resent-bcc", b"x-mailsignal-id"})


@dataclass(slots=True)
class Submitted:
    """A message as the client gave it: envelope and bytes."""

    mail_from: str
    rcpts: list[str]
    options: list[str]
    raw: bytes


def strip_fields(raw: bytes, names: frozenset[bytes] = _DROPPED_FIELDS) -> bytes:
    """`raw` without the header fields named in `names` (lower case), continuation
    lines included; every other byte, 8-bit headers too, stays as it came."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    head = raw[: min(ends)] if ends else raw
    lowered = head.lower()
    if not any(name in lowered for name in names):
        return raw
    kept: list[bytes] = []
    dropping = False
    lines = raw.splitlines(keepends=True)
    for n, line in enumerate(lines):
        if line in (b"\r\n", b"\n", b"\r"):  # the blank line: the body follows
            return b"".join(kept) + b"".join(lines[n:])
        if line[:1] not in (b" ", b"\t"):  # a new field (else a continuation line)
            dropping = line.partition(b":")[0].strip().lower() in names
        if not dropping:
            kept.append(line)
    return b"".join(kept)


def parse_submitted(raw: bytes) -> EmailMessage:
    """The message to record: `parse_message`, or, for sound MIME with nothing to
    instrument (a calendar invite, a bare PDF), the message as it is, recorded and
    forwarded rather than legitimate mail refused."""
    try:
        return parse_message(raw)
    except MimeError as exc:
        if "content_types" not in exc.detail:
            raise
        return email.message_from_bytes(raw, policy=email.policy.default)
