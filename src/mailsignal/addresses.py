"""Email addresses as MailSignal compares them (pure).

One spelling per mailbox: trimmed, and lower-cased whole. RFC 5321 lets the local part
be case-sensitive, but no mail system in use treats `Dana@` and `dana@` as two people,
and a rep typing a contact's address in another case must still find the contact.
"""

from __future__ import annotations

from .errors import InputError


def normalise_address(address: str) -> str:
    """The address in its one stored spelling; InputError when it is not an address."""
    address = address.strip()
    if address.count("@") != 1 or not all(address.split("@")) or any(c.isspace() for c in address):
        raise InputError(f"not an email address: {address!r}")
    local, domain = address.split("@")
    return f"{local}@{domain.lower()}".lower()
