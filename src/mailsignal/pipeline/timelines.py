"""Classify whole recipient timelines again, and say which stored verdicts changed.

Classification is per recipient timeline (DESIGN §1 step 3): when new hits land, every
event of each touched delivery is classified again, because a new event can change the
verdict of an old one (a click confirms an open; a honeypot hit condemns a burst). The
new hits join their timelines before they are stored, so they are inserted already
labelled: no insert, read back and update of every new row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..classify import RULES, Context, Event, classify_timeline, disabled_rules
from ..engagement import effective_time
from ..environments import of_copy
from ..model import STANDARD_FACTS, EventKind, FactRegistry, Verdict
from ..settings import Settings
from ..store import events, rollups
from ..store.events import Delivery
from .rows import Reasons, label
from .tally import Change

# EventKind by stored value: an enum call per event costs more than the rest of building it.
_KINDS = {int(k): k for k in EventKind}
_MACHINE = Verdict.MACHINE


def _stored(row: Any) -> Event:
    return Event(
        row.hitid,
        _KINDS[row.interactiontype],
        row.emailinteractiontime,
        row.ipaddress,
        row.interactionuseragent,
        row.httpmethod,
        row.facts or {},
        row.linkid,
        bool(row.ishoneypot),
        row.headers or {},
    )


def _new(row: dict[str, Any]) -> Event:
    return Event(
        row["hitid"],
        _KINDS[row["interactiontype"]],
        row["emailinteractiontime"],
        row["ipaddress"],
        row["interactionuseragent"],
        row["httpmethod"],
        row["facts"],
        row["linkid"],
        row["ishoneypot"],
        row["headers"],
    )


def reclassify(
    conn: Connection,
    deliveries: Mapping[int, Delivery],
    settings: Settings,
    new_rows: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
    facts: FactRegistry = STANDARD_FACTS,
) -> tuple[int, list[Change]]:
    """Classify every event of these deliveries again and store what changed: returns
    how many stored events got new reasons, and those whose verdict changed.

    `new_rows` (event rows not yet inserted) join their timelines and get their verdict
    written into them; rows whose hit is stored already are dropped from the list (the
    caller inserts what is left). `deliveries` must hold every new row's delivery; the
    timelines classified are those of `deliveries`. `facts` are the enrichers' declared
    facts (`Pipeline.facts`), which the rules read by name.
    """
    ids = sorted(deliveries)
    if not ids:
        return 0, []
    disabled = disabled_rules(settings.disabled_rules)
    now = now or datetime.now(UTC)
    contexts = {
        delivery_id: Context(
            sent_at=d.sent_at,
            link_count=d.link_count,
            delivery_window_seconds=settings.delivery_window_seconds,
            disabled=disabled,
            now=now,
        )
        for delivery_id, d in deliveries.items()
    }
    # Per delivery: (time, hit id, Event, stored row or None, new row or None).
    timelines: dict[int, list[tuple[Any, str, Event, Any, dict[str, Any] | None]]] = defaultdict(
        list
    )
    stored: set[str] = set()
    for row in events.stored_timelines(conn, ids):
        stored.add(row.hitid)
        timelines[row.deliveryid].append(
            (row.emailinteractiontime, row.hitid, _stored(row), row, None)
        )
    if new_rows is not None:
        fresh: list[dict[str, Any]] = []
        touched: set[int] = set()
        for new in new_rows:
            if new["hitid"] not in stored:
                stored.add(new["hitid"])
                fresh.append(new)
                touched.add(new["deliveryid"])
                timelines[new["deliveryid"]].append(
                    (new["emailinteractiontime"], new["hitid"], _new(new), None, new)
                )
        new_rows[:] = fresh
        for delivery_id in touched:
            timelines[delivery_id].sort(key=lambda t: (t[0], t[1]))
    changes: list[dict[str, Any]] = []
    revised: list[Change] = []
    environments: dict[int, str | None] = {}
    reasons_of = Reasons()
    for delivery_id, entries in timelines.items():
        results = classify_timeline([t[2] for t in entries], contexts[delivery_id], RULES, facts)
        delivery = deliveries[delivery_id]
        environment = of_copy(
            delivery.address,
            (t[2].facts for t, r in zip(entries, results, strict=True) if r.verdict is _MACHINE),
        )
        if environment != delivery.environment:
            environments[delivery_id] = environment
        for (at, hit_id, _e, row, pending), result in zip(entries, results, strict=True):
            if pending is not None:
                label(pending, result, reasons_of)
                continue
            verdict, reasons = str(result.verdict), reasons_of(result)
            if (row.verdict, row.confidence, row.classifierversion, row.reasons) == (
                verdict,
                result.confidence,
                result.version,
                reasons,
            ):
                continue
            changes.append(
                {
                    "b_hitid": hit_id,
                    "b_verdict": verdict,
                    "b_confidence": result.confidence,
                    "b_reasons": reasons,
                    "b_version": result.version,
                }
            )
            if verdict != row.verdict:
                revised.append(
                    Change(
                        delivery_id,
                        int(row.interactiontype),
                        row.verdict,
                        verdict,
                        at,
                        effective_time(at, row.createdon),
                    )
                )
    if changes:
        events.revise(conn, changes)
    rollups.move_environments(conn, environments)
    return len(changes), revised
