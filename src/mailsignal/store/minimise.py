"""Stored event addresses cut to what `ip_storage` keeps (`mailsignal privacy minimise`):
a page of events by hit id, and their new address and facts written back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from .bulk import executemany
from .schema import interactionforemail

_REWRITE = (
    update(interactionforemail)
    .where(interactionforemail.c.interactionforemailid == bindparam("b_id"))
    .values(ipaddress=bindparam("b_ip"), facts=bindparam("b_facts"), headers=bindparam("b_headers"))
)


def page(conn: Connection, after: str | None, limit: int) -> list[Any]:
    """Up to `limit` events after hit id `after`, in hit id order: their id, hit id,
    delivery, address, facts and kept request headers."""
    ev = interactionforemail
    stmt = select(
        ev.c.interactionforemailid,
        ev.c.hitid,
        ev.c.deliveryid,
        ev.c.ipaddress,
        ev.c.facts,
        ev.c.headers,
    ).order_by(ev.c.hitid)
    if after is not None:
        stmt = stmt.where(ev.c.hitid > after)
    return list(conn.execute(stmt.limit(limit)))


def rewrite(
    conn: Connection, rows: Sequence[tuple[uuid.UUID, str, dict[str, Any], dict[str, str]]]
) -> int:
    """Set (event id, address, facts, headers) of these events; returns how many."""
    return executemany(
        conn,
        _REWRITE,
        [
            {"b_id": key, "b_ip": ip, "b_facts": facts, "b_headers": headers}
            for key, ip, facts, headers in rows
        ],
    )


def count(conn: Connection) -> int:
    """How many events are stored."""
    return int(conn.execute(select(func.count()).select_from(interactionforemail)).scalar_one())
