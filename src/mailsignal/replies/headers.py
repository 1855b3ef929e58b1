"""Read headers the way real mailboxes need: raw values, repaired, never raising.

The `email` package's structured header classes (policy.default) raise or mangle on
what real mail holds: raw 8-bit bytes, broken RFC 2047 words, Message-IDs without
brackets. Everything here reads `raw_items()` and decodes by hand, so one bad header
costs that header, not the message.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

_MSGID = re.compile(r"<([^<>\s]+)>")


def decode_value(value: str) -> str:
    """Unfold, repair raw 8-bit bytes (UTF-8, else Windows-1252) and decode RFC 2047 words."""
    text = re.sub(r"\r?\n(?=[ \t])", "", value).strip()
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", "replace")
    # A broken encoded word keeps the undecoded text: still better than nothing.
    with contextlib.suppress(HeaderParseError, LookupError, UnicodeError, ValueError):
        if "=?" in text:
            text = str(make_header(decode_header(text)))
    return text


class Headers:
    """Case-insensitive, decoded view of one part's headers (first value wins in `first`)."""

    def __init__(self, msg: Message) -> None:
        self._items: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self._items.setdefault(name.strip().lower(), []).append(decode_value(str(value)))

    def all(self, name: str) -> list[str]:
        return self._items.get(name.lower(), [])

    def first(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""

    def has(self, name: str) -> bool:
        return name.lower() in self._items


def normalise_id(value: str) -> str:
    """The comparison form of a Message-ID: no brackets or spaces, lower case."""
    return value.strip().strip("<>").strip().lower()


def message_ids(value: str) -> list[str]:
    """Message-IDs in a header value (without brackets); a lone bare id is accepted too,
    because some clients write In-Reply-To without the angle brackets."""
    found = _MSGID.findall(value)
    bare = value.strip()
    if not found and bare and "@" in bare and not re.search(r"\s", bare):
        found = [bare]
    return found


def unique_ids(ids: list[str]) -> tuple[str, ...]:
    """Drop repeats (compared normalised), keep the first spelling and the order."""
    seen: dict[str, str] = {}
    for value in ids:
        seen.setdefault(normalise_id(value), value.strip().strip("<>"))
    return tuple(v for k, v in seen.items() if k)


def address(value: str) -> str | None:
    """The first address in an address header, lower case; None when there is none."""
    for _name, addr in getaddresses([value]):
        if "@" in addr:
            return addr.strip().lower()
    return None


def date(value: str) -> datetime | None:
    """A Date header as aware UTC; None when missing or unparseable (a naive one is UTC)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def text_of(part: Message) -> str:
    """A leaf part's decoded text (its charset, else UTF-8), '' for non-text payloads."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")
