"""The audit trail (issue 13): an append-only record of admin and privacy actions.

`record` is the one writer. Call it with the connection that makes the change, so the
row commits or rolls back with it. There is no update or delete here, and migration
0014 adds triggers that refuse both on SQLite and PostgreSQL.

Who acted (`actor`) is one of:
    "cli"                  the operator at the command line
    "user:<systemuserid>"  a signed-in panel user, or the owner of an API key
    "recipient"            a recipient, through the stop-tracking link
    "system"               MailSignal itself (the sweep, retention runs)

`subject` names what was acted on; `details` holds the rest as JSON. Neither may carry
a recipient's personal data in clear: name a recipient by the keyed hash of their
address, and users by their systemuserid (a user's address is not a recipient's, but
the id is enough and does not change).

Actions written by MailSignal (docs/privacy.md, "Audit trail", has the table):
org.update, user.create, user.optin, user.disable, user.enable, user.role,
user.password, apikey.create, apikey.revoke, team.create, team.manager,
team.member_add, team.member_remove; and, by the privacy code, recipient.optout,
recipient.optin, privacy.export, privacy.erase, privacy.minimise, retention.run.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from ..errors import InputError
from .schema import auditrecord, utcnow

Row = dict[str, Any]

ACTORS = ("cli", "recipient", "system")
ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
USER_ACTOR = re.compile(r"^user:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def user_actor(user_id: uuid.UUID) -> str:
    """The actor string of a panel user or API key owner."""
    return f"user:{user_id}"


def check_actor(actor: str) -> str:
    """`actor` if it is one the trail knows, else InputError."""
    if actor in ACTORS or USER_ACTOR.match(actor):
        return actor
    raise InputError(f"actor must be cli, recipient, system or user:<systemuserid>, not {actor!r}")


def check_action(action: str) -> str:
    if len(action) > 64 or not ACTION.match(action):
        raise InputError(
            f"action must be dotted lower-case words (e.g. user.create), not {action!r}"
        )
    return action


def record(
    conn: Connection,
    action: str,
    *,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one row to the audit trail, in the caller's transaction."""
    if subject is not None and len(subject) > 200:
        raise InputError("an audit subject is at most 200 characters")
    conn.execute(
        insert(auditrecord).values(
            occurredon=at or utcnow(),
            action=check_action(action),
            actor=check_actor(actor),
            subject=subject,
            details=details or {},
        )
    )


@dataclass(frozen=True)
class Filter:
    """What `search` selects; `before` is the auditid a page continues below."""

    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    before: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InputError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        if self.action is not None:
            _action_filter(self.action)
        if self.actor is not None:
            _actor_filter(self.actor)
        if self.since and self.until and self.since > self.until:
            raise InputError("since must not be after until")
        if self.before is not None and self.before < 1:
            raise InputError("before must be a positive audit id")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InputError(f"{name} must carry a time zone (e.g. 2026-12-02T10:00:00Z)")


def parse_moment(text: str | None, what: str) -> datetime | None:
    """An ISO 8601 time as a filter gives it (CLI option, query parameter), UTC when it
    names no zone; InputError naming `what` otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{what} must be an ISO 8601 time like 2026-12-01T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _action_filter(action: str) -> str:
    """An exact action, or a prefix ending in ".*" ("user.*")."""
    return check_action(action[:-2] if action.endswith(".*") else action)


def _actor_filter(actor: str) -> str:
    """An exact actor, or "user" for every user."""
    return actor if actor == "user" else check_actor(actor)


def search(conn: Connection, where: Filter, *, peek: bool = False) -> list[Row]:
    """Rows newest first (by auditid, the order they were written), at most `limit`, or
    one more with `peek` (a caller's way to know whether another page follows)."""
    stmt = (
        select(auditrecord)
        .order_by(auditrecord.c.auditid.desc())
        .limit(where.limit + (1 if peek else 0))
    )
    if where.action is not None:
        if where.action.endswith(".*"):
            stmt = stmt.where(auditrecord.c.action.startswith(where.action[:-1], autoescape=True))
        else:
            stmt = stmt.where(auditrecord.c.action == where.action)
    if where.actor == "user":
        stmt = stmt.where(auditrecord.c.actor.startswith("user:"))
    elif where.actor is not None:
        stmt = stmt.where(auditrecord.c.actor == where.actor)
    if where.since is not None:
        stmt = stmt.where(auditrecord.c.occurredon >= where.since)
    if where.until is not None:
        stmt = stmt.where(auditrecord.c.occurredon < where.until)
    if where.before is not None:
        stmt = stmt.where(auditrecord.c.auditid < where.before)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def as_json(row: Row) -> Row:
    """A row as the CLI's --json and the REST endpoint show it."""
    return {
        "id": row["auditid"],
        "at": row["occurredon"].isoformat(),
        "action": row["action"],
        "actor": row["actor"],
        "subject": row["subject"],
        "details": row["details"],
    }
