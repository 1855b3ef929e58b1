"""API keys: create, name, list and revoke them (store/users.py checks them on every
request, `authenticate`, and re-exports these for its callers).

A key is "msk_<prefix>_<secret>". The prefix finds the row; only the SHA-256 of the whole
key is stored. Creating and revoking take an optional `actor` (store/audit.py): given,
the change is written to the audit trail in the same transaction, naming the key by its
prefix, never the key.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..errors import AuthError
from . import audit
from .schema import apikey, utcnow

Row = dict[str, Any]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    conn: Connection, user_id: uuid.UUID, name: str = "", *, actor: str | None = None
) -> str:
    """A new key for the user; returned once, only its hash is stored."""
    prefix = secrets.token_hex(6)
    key = f"msk_{prefix}_{secrets.token_urlsafe(32)}"
    conn.execute(
        insert(apikey).values(systemuserid=user_id, name=name, prefix=prefix, keyhash=key_hash(key))
    )
    if actor is not None:
        audit.record(
            conn,
            "apikey.create",
            actor=actor,
            subject=str(user_id),
            details={"prefix": prefix, "name": name},
        )
    return key


def key_prefix(key: str) -> str:
    """The public prefix of a key ("msk_<prefix>_<secret>"): what names it in lists,
    revocations and logs."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "msk" or not parts[1]:
        raise AuthError("malformed API key")
    return parts[1]


def list_api_keys(conn: Connection, user_id: uuid.UUID) -> list[Row]:
    """A user's keys, oldest first: prefix, name, created, last used, revoked; never the
    hash (the key itself is not stored)."""
    rows = conn.execute(
        select(
            apikey.c.prefix,
            apikey.c.name,
            apikey.c.createdon,
            apikey.c.lastusedon,
            apikey.c.revokedon,
        )
        .where(apikey.c.systemuserid == user_id)
        .order_by(apikey.c.createdon, apikey.c.prefix)
    ).mappings()
    return [dict(r) for r in rows]


def api_key_owner(conn: Connection, prefix: str) -> uuid.UUID | None:
    """Whose key this prefix names, or None."""
    owner = conn.execute(
        select(apikey.c.systemuserid).where(apikey.c.prefix == prefix)
    ).scalar_one_or_none()
    return owner if isinstance(owner, uuid.UUID) else None


def revoke_api_keys(
    conn: Connection,
    prefixes: Iterable[str],
    *,
    user_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> int:
    """Revoke the keys with these prefixes (only the user's own with `user_id`); returns
    how many were live. A revoked key keeps its row, so lists still show when it was
    made, last used and revoked. Audited per key revoked ("apikey.revoke")."""
    stmt = update(apikey).where(apikey.c.prefix.in_(list(prefixes)), apikey.c.revokedon.is_(None))
    if user_id is not None:
        stmt = stmt.where(apikey.c.systemuserid == user_id)
    revoked = conn.execute(
        stmt.values(revokedon=utcnow()).returning(apikey.c.systemuserid, apikey.c.prefix)
    ).all()
    _audit_revoked(conn, revoked, actor)
    return len(revoked)


def revoke_all_api_keys(conn: Connection, user_id: uuid.UUID, *, actor: str | None = None) -> int:
    """Revoke every live key of a user; returns how many."""
    revoked = conn.execute(
        update(apikey)
        .where(apikey.c.systemuserid == user_id, apikey.c.revokedon.is_(None))
        .values(revokedon=utcnow())
        .returning(apikey.c.systemuserid, apikey.c.prefix)
    ).all()
    _audit_revoked(conn, revoked, actor)
    return len(revoked)


def _audit_revoked(conn: Connection, revoked: Sequence[Any], actor: str | None) -> None:
    if actor is None:
        return
    for owner, prefix in revoked:
        audit.record(
            conn, "apikey.revoke", actor=actor, subject=str(owner), details={"prefix": prefix}
        )
