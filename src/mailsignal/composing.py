"""A message from API fields, and the checks every edge's input passes (pure).

Used by outgoing.py, where every edge passes, so every edge refuses bad input alike,
naming the field: header fields with a line break or control character (no header
injection), text that is not Unicode or holds NUL, a send time outside
EARLIEST_SENT-LATEST_SENT, a Message-ID too long to store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .addresses import normalise_address
from .errors import InputError

# Send times outside these are typing errors (year 1, year 9999), and near datetime's own
# ends adding a time zone or a classification window overflows.
EARLIEST_SENT, LATEST_SENT = datetime(1970, 1, 1), datetime(2100, 1, 1)  # UTC
SUBJECT_MAX = 800  # the email.subject column
MESSAGE_ID_MAX = 998  # RFC 5322's line limit, and the email.messageid column
# What may not stand in one header line: controls but tab (CR and LF above all) and the
# characters Python's str.splitlines() also breaks on (NEL, LS, PS).
_NOT_A_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def check_time(value: datetime, field: str = "sent_at") -> datetime:
    """`value` when it is aware and in [EARLIEST_SENT, LATEST_SENT); InputError otherwise."""
    offset = value.utcoffset()
    if offset is None:
        raise InputError(f"{field}: give a time zone offset (for example 2026-11-27T09:00:00Z)")
    # Compared in the value's own zone: astimezone() overflows at year 1 or 9999 itself.
    if not EARLIEST_SENT + offset <= value.replace(tzinfo=None) < LATEST_SENT + offset:
        raise InputError(
            f"{field}: {value.isoformat()} is outside the accepted range "
            f"{EARLIEST_SENT:%Y-%m-%d} to {LATEST_SENT:%Y-%m-%d} (UTC)"
        )
    return value


def _text(field: str, value: object, *, line: bool = False) -> str:
    """`value` if it is Unicode text without NUL (and, for a header `line`, without line
    breaks or other control characters); InputError naming `field` otherwise."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{field}: not Unicode text (a lone surrogate at position {exc.start})"
        ) from exc
    if line and _NOT_A_LINE.search(value):
        raise InputError(f"{field}: must be one line without control characters")
    if "\x00" in value:
        raise InputError(f"{field}: contains a NUL character")
    return value


def check_message_id(value: str, field: str = "message_id") -> str:
    """`value` stripped, when it can head a message and be stored as its Message-ID."""
    value = _text(field, value, line=True).strip()
    if len(value) > MESSAGE_ID_MAX:
        raise InputError(f"{field}: at most {MESSAGE_ID_MAX} characters")
    return value


def build_message(
    sender: str,
    recipients: list[str],
    subject: str | None,
    html: str | None,
    text: str | None,
    message_id: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """A standard multipart/alternative message from API fields (each checked first)."""
    if html is not None:
        _text("html", html)
    if text is not None:
        _text("text", text)
    if not html and not text:
        raise InputError("give at least one of html, text or mime")
    for field, address in [("sender", sender)] + [("recipients", r) for r in recipients]:
        _text(field, address, line=True)
        try:
            normalise_address(address)
        except InputError as exc:
            raise InputError(f"{field}: {exc.message}") from exc
    if subject is not None and len(_text("subject", subject, line=True)) > SUBJECT_MAX:
        raise InputError(f"subject: at most {SUBJECT_MAX} characters")
    if message_id is not None:
        message_id = check_message_id(message_id)
    if sent_at is not None:
        check_time(sent_at)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    if subject:
        msg["Subject"] = subject
    msg["Date"] = formatdate((sent_at or datetime.now(UTC)).timestamp(), usegmt=True)
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    if text:
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
    elif html:
        msg.set_content(html, subtype="html")
    return msg
