"""Reps' IMAP mailboxes: set one up (checked, the password sealed), show them, open one.

The password is sealed with the instance keyring (sealing.py) under the rep's id, so the
database alone never reveals it and a sealed secret copied onto another rep's row does
not open. `MailAccount` keeps the password out of its repr, so it never reaches a log
line or a traceback.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from ..addresses import normalise_address
from ..errors import InputError, NotFoundError
from ..keyring import Keyring
from ..sealing import seal, unseal
from ..store import mailboxes, users

SECURITY = ("tls", "starttls", "none")


@dataclass(frozen=True, slots=True)
class MailAccount:
    """Everything needed to log in to one rep's mailbox (password kept out of repr)."""

    user_id: uuid.UUID
    address: str
    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)
    folders: tuple[str, ...] = ("INBOX",)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def set_mailbox(
    conn: Connection,
    keyring: Keyring,
    address: str,
    *,
    host: str,
    port: int | None = None,
    security: str = "tls",
    username: str | None = None,
    password: str | None = None,
    folders: list[str] | None = None,
) -> dict[str, Any]:
    """Create or change a rep's mailbox; `password=None` keeps the stored one."""
    user = users.by_address(conn, address)
    if user is None:
        raise NotFoundError(f"no user {address}: add them with `mailsignal users add`")
    if security not in SECURITY:
        raise InputError(f"security must be one of {', '.join(SECURITY)}, not {security!r}")
    if security == "none" and not _is_loopback(host):
        # The password would cross the network in clear text.
        raise InputError("security none is allowed only for a server on this machine")
    port = port or (993 if security == "tls" else 143)
    if not 1 <= port <= 65535:
        raise InputError(f"port must be 1-65535, not {port}")
    chosen = [f.strip() for f in folders or ["INBOX"] if f.strip()]
    if not chosen:
        raise InputError("give at least one folder")
    user_id = user["systemuserid"]
    existing = mailboxes.get(conn, user_id)
    if password is None and existing is None:
        raise InputError("a new mailbox needs a password (--password-stdin)")
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "security": security,
        "username": username or user["internalemailaddress"],
        "folders": list(dict.fromkeys(chosen)),
    }
    if password is not None:
        values["secret"] = seal(keyring, password, user_id.bytes)
    if existing is None:
        values["syncstate"] = {}
    else:
        state = dict(existing["syncstate"] or {})
        if (existing["host"], existing["username"]) != (host, values["username"]):
            state = {}  # another server or account: its UIDs mean nothing here
        values["syncstate"] = {f: s for f, s in state.items() if f in values["folders"]}
        values["lasterror"] = None
    mailboxes.save(conn, user_id, values)
    return mailboxes.show(conn, user_id)


def list_mailboxes(conn: Connection, address: str | None = None) -> list[dict[str, Any]]:
    """Every rep's mailbox (or one rep's), the secret shown only as set or not."""
    ids = mailboxes.owners(conn, normalise_address(address) if address is not None else None)
    if address is not None and not ids:
        raise NotFoundError(f"no mailbox is set for {address}: use `mailsignal mailbox set`")
    return [mailboxes.show(conn, i) for i in ids]


def account(conn: Connection, keyring: Keyring, user_id: uuid.UUID) -> MailAccount:
    """The rep's mailbox with its password unsealed, ready to log in."""
    row = mailboxes.get(conn, user_id)
    if row is None:
        raise NotFoundError("no mailbox is set for this user: use `mailsignal mailbox set`")
    user = users.by_id(conn, user_id)
    return MailAccount(
        user_id=user_id,
        address=user["internalemailaddress"] if user else "",
        host=row["host"],
        port=row["port"],
        security=row["security"],
        username=row["username"],
        password=unseal(keyring, row["secret"], user_id.bytes),
        folders=tuple(row["folders"] or ["INBOX"]),
    )
