"""Read-only reports over the store."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from .schema import email, interactionforemail


def noise_report(conn: Connection, since: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Emails flagged as scanner noise since `since`, with the rules behind their machine
    opens, most frequent first (so a rep sees *why* 40 opens were not 40 readers)."""
    rows = [
        dict(r)
        for r in conn.execute(
            select(
                email.c.activityid,
                email.c.senton,
                email.c.sender,
                email.c.subject,
                email.c.opencount,
                email.c.humanopencount,
                email.c.machineopencount,
            )
            .where(email.c.noiseflag.is_(True), email.c.senton >= since)
            .order_by(email.c.senton.desc())
            .limit(limit)
        ).mappings()
    ]
    for row in rows:
        rules: Counter[str] = Counter()
        for reasons in conn.execute(
            select(interactionforemail.c.reasons).where(
                interactionforemail.c.emailactivityid == row["activityid"],
                interactionforemail.c.verdict == "machine",
            )
        ).scalars():
            rules.update(
                e["rule"] for e in (reasons or {}).get("fired", []) if e.get("weight", 0) < 0
            )
        row["top_rules"] = [rule for rule, _n in rules.most_common(3)]
    return rows
