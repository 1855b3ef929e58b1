"""Email addresses as MailSignal compares them (pure).

One spelling per mailbox: trimmed, and lower-cased whole. RFC 5321 lets the local part
be case-sensitive, but no mail system in use treats `Dana@` and `dana@` as two people,
and a rep typing a contact's address in another case must still find the contact.

An address goes into headers (`To:` of a message built from API fields) and into
320-character columns, so one with a line break or another control character (header
injection), a lone surrogate (not text), or over 320 characters (64 for the local part,
255 for the domain, RFC 5321 §4.5.3.1) is not an address.
"""

from __future__ import annotations

from email.message import Message
from email.utils import getaddresses

from .errors import InputError

MAX_LENGTH = 320


def normalise_address(address: str) -> str:
    """The address in its one stored spelling; InputError when it is not an address."""
    address = address.strip()
    if (
        address.count("@") != 1
        or not all(address.split("@"))
        or len(address) > MAX_LENGTH
        or not address.isprintable()
        or any(c.isspace() for c in address)
    ):
        shown = address if len(address) <= 80 else address[:80] + "..."
        raise InputError(f"not an email address: {shown!r}")
    local, domain = address.split("@")
    return f"{local}@{domain.lower()}".lower()


def to_and_cc(message: Message) -> list[tuple[str, str]]:
    """(display name, address) of each recipient in a message's To and Cc headers."""
    return getaddresses([str(v) for k in ("To", "Cc") for v in message.get_all(k, [])])


def names_in(message: Message) -> dict[str, str]:
    """The display name of each To/Cc recipient (the first given), by lower-cased address."""
    names: dict[str, str] = {}
    for name, address in to_and_cc(message):
        names.setdefault(address.strip().lower(), name.strip())
    return names
