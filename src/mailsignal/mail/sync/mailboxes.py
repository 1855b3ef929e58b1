"""Per-rep IMAP mailbox settings, their encrypted secret, and the per-folder read cursor.

The secret is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
instance keyring's newest key, so the database alone never reveals a password. The
sealed text names the key id it used, so `mailsignal keys rotate` does not orphan
secrets sealed earlier, and the rep's id is the AEAD associated data, so a sealed secret
copied onto another rep's row does not decrypt. `MailAccount` hides the password from
repr, so it never reaches a log line or a traceback.

The cursor (`mailbox.syncstate`) is `{folder: {"uidvalidity": int, "lastuid": int}}`:
IMAP promises UIDs only grow while UIDVALIDITY stays the same, so every message at or
below `lastuid` was fully processed and is never fetched again.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, insert, select, update

from ...errors import ConfigError, InputError, NotFoundError
from ...store import repo
from ...store.schema import mailbox, systemuser, utcnow

Keyring = tuple[dict[int, bytes], int]  # what settings.load_keyring returns
SECURITY = ("tls", "starttls", "none")
_INFO = b"mailsignal mailbox secret v1"  # a distinct HKDF label: never the token-signing key


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


def _derive(master: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(master)


def seal(keyring: Keyring, plaintext: str, context: bytes) -> str:
    """Encrypt a secret as `v1:<key id>:<base64url(nonce | ciphertext | tag)>`."""
    keys, current = keyring
    nonce = os.urandom(12)
    sealed = AESGCM(_derive(keys[current])).encrypt(nonce, plaintext.encode(), context)
    return f"v1:{current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(keyring: Keyring, token: str, context: bytes) -> str:
    keys, _current = keyring
    try:
        version, kid_text, body = token.split(":", 2)
        kid, data = int(kid_text), base64.urlsafe_b64decode(body)
    except ValueError as exc:
        raise ConfigError("the stored mailbox secret is not in a known format") from exc
    if version != "v1" or kid not in keys:
        raise ConfigError(
            f"the mailbox secret was sealed with key {kid}, which is not in the keyring; "
            "set the password again with `mailsignal mailbox set`"
        )
    try:
        return AESGCM(_derive(keys[kid])).decrypt(data[:12], data[12:], context).decode()
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise ConfigError(
            "the mailbox secret does not decrypt with this instance's key; "
            "set the password again with `mailsignal mailbox set`"
        ) from exc


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
    user = repo.user_by_address(conn, address)
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
    existing = conn.execute(select(mailbox).where(mailbox.c.systemuserid == user_id)).first()
    if password is None and existing is None:
        raise InputError("a new mailbox needs a password (--password-stdin)")
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "security": security,
        "username": username or user["internalemailaddress"],
        "folders": list(dict.fromkeys(chosen)),
        "modifiedon": utcnow(),
    }
    if password is not None:
        values["secret"] = seal(keyring, password, user_id.bytes)
    if existing is None:
        conn.execute(insert(mailbox).values(systemuserid=user_id, syncstate={}, **values))
    else:
        state = dict(existing.syncstate or {})
        if (existing.host, existing.username) != (host, values["username"]):
            state = {}  # another server or account: its UIDs mean nothing here
        state = {f: s for f, s in state.items() if f in values["folders"]}
        conn.execute(
            update(mailbox)
            .where(mailbox.c.systemuserid == user_id)
            .values(syncstate=state, lasterror=None, **values)
        )
    return show_mailbox(conn, user_id)


def show_mailbox(conn: Connection, user_id: uuid.UUID) -> dict[str, Any]:
    """The mailbox row with the rep's address, the secret replaced by whether it is set."""
    row = (
        conn.execute(
            select(mailbox, systemuser.c.internalemailaddress.label("address"))
            .join(systemuser, systemuser.c.systemuserid == mailbox.c.systemuserid)
            .where(mailbox.c.systemuserid == user_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("no mailbox is set for this user: use `mailsignal mailbox set`")
    out = dict(row)
    out["secret"] = "set (encrypted)" if out["secret"] else "not set"
    return out


def list_mailboxes(conn: Connection, address: str | None = None) -> list[dict[str, Any]]:
    stmt = select(mailbox.c.systemuserid).join(
        systemuser, systemuser.c.systemuserid == mailbox.c.systemuserid
    )
    if address is not None:
        stmt = stmt.where(systemuser.c.internalemailaddress == repo.normalise_address(address))
    ids = conn.execute(stmt.order_by(systemuser.c.internalemailaddress)).scalars().all()
    if address is not None and not ids:
        raise NotFoundError(f"no mailbox is set for {address}: use `mailsignal mailbox set`")
    return [show_mailbox(conn, i) for i in ids]


def account(conn: Connection, keyring: Keyring, user_id: uuid.UUID) -> MailAccount:
    row = conn.execute(select(mailbox).where(mailbox.c.systemuserid == user_id)).first()
    if row is None:
        raise NotFoundError("no mailbox is set for this user: use `mailsignal mailbox set`")
    user = repo.user_by_id(conn, user_id)
    return MailAccount(
        user_id=user_id,
        address=user["internalemailaddress"] if user else "",
        host=row.host,
        port=row.port,
        security=row.security,
        username=row.username,
        password=unseal(keyring, row.secret, user_id.bytes),
        folders=tuple(row.folders or ["INBOX"]),
    )


def cursor(conn: Connection, user_id: uuid.UUID) -> dict[str, dict[str, int]]:
    row = conn.execute(
        select(mailbox.c.syncstate).where(mailbox.c.systemuserid == user_id)
    ).scalar()
    return dict(row or {})


def advance(
    conn: Connection, user_id: uuid.UUID, folder: str, uidvalidity: int, lastuid: int
) -> None:
    """Record that every message up to `lastuid` is processed, in the caller's transaction
    (the same one that stored those messages' events)."""
    row = conn.execute(
        select(mailbox.c.syncstate).where(mailbox.c.systemuserid == user_id).with_for_update()
    ).scalar()
    state = dict(row or {})
    old = state.get(folder) or {}
    if old.get("uidvalidity") == uidvalidity:  # a concurrent run may already be further on
        lastuid = max(lastuid, int(old.get("lastuid", 0)))
    state[folder] = {"uidvalidity": uidvalidity, "lastuid": lastuid}
    conn.execute(update(mailbox).where(mailbox.c.systemuserid == user_id).values(syncstate=state))


def finish(conn: Connection, user_id: uuid.UUID, error: str | None, when: datetime) -> None:
    """Stamp the end of a run: the time, and the error that stopped it (None clears it)."""
    values: dict[str, Any] = {"lasterror": error}
    if error is None:
        values["lastsyncon"] = when
    conn.execute(update(mailbox).where(mailbox.c.systemuserid == user_id).values(**values))
