"""The background pipeline: journal -> enrich -> store -> classify the timeline -> count.

Exactly-once by construction: every hit has a unique `hitid` (journal id + sequence, or
the external id of an import) and is inserted with ON CONFLICT DO NOTHING, and the
journal cursor moves in the same transaction as the events. A crash between the two
therefore re-reads a batch whose rows are already stored and adds nothing.

Classification is per recipient timeline (DESIGN §1 step 3): after new hits land, every
event of each touched delivery is classified again, because a new event can change the
verdict of an old one (a click confirms an open; a honeypot hit condemns a burst).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from .classify import RULES, Context, Event, classify_timeline, disabled_rules
from .enrich import Pipeline
from .model import Classification, EventKind, RawHit, TokenKind, Verdict, new_id
from .settings import Settings
from .store.bulk import executemany, insert_ignore
from .store.journal import JournalReader
from .store.schema import (
    email,
    emaildelivery,
    ingestcursor,
    interactionforemail,
    trackedattachment,
    trackedlink,
)
from .store.scores import rescore_for_emails

log = logging.getLogger(__name__)
SWEEP_SECONDS = 3600.0

_KIND = {
    TokenKind.OPEN: EventKind.OPEN,
    TokenKind.CLICK: EventKind.CLICK,
    TokenKind.HONEYPOT: EventKind.CLICK,
    TokenKind.ATTACHMENT: EventKind.ATTACHMENT,
}


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    duplicates: int
    orphans: int  # hits whose delivery no longer exists (erased) or never did


def default_pipeline(settings: Settings) -> Pipeline:
    """The enrichment the settings describe: network list overrides under `data_dir`,
    the optional city database (`geoip_city_db`) and `current_chrome_major`."""
    return Pipeline.default(
        settings.data_dir,
        mmdb_path=settings.geoip_city_db,
        current_chrome_major=settings.current_chrome_major,
    )


def _by_id(conn: Connection, key: Any, ids: set[int], *columns: Any) -> dict[int, Any]:
    """Rows of `key`'s table for these ids, keyed by id (no query when there are none)."""
    if not ids:
        return {}
    return {row[0]: row for row in conn.execute(select(key, *columns).where(key.in_(ids)))}


def store_hits(
    conn: Connection,
    hits: Sequence[RawHit],
    pipeline: Pipeline,
    settings: Settings,
    *,
    deferred: set[uuid.UUID] | None = None,
) -> IngestResult:
    """Enrich and store hits, then reclassify and recount what they touched.

    With `deferred`, the emails the hits name (duplicates' included) are added to that
    set instead of being recounted here: `Backfill` recounts them later, once.
    """
    if not hits:
        return IngestResult(0, 0, 0)
    delivery_ids = {h.delivery_id for h in hits}
    known = {
        row.deliveryid: row
        for row in conn.execute(
            select(
                emaildelivery.c.deliveryid,
                emaildelivery.c.emailactivityid,
                emaildelivery.c.emailaddress,
            ).where(emaildelivery.c.deliveryid.in_(delivery_ids))
        )
    }
    # An attachment hit's link id names a trackedattachment row, not a trackedlink.
    link_ids = {
        h.link_id for h in hits if h.link_id is not None and h.kind is not TokenKind.ATTACHMENT
    }
    attachment_ids = {
        h.link_id for h in hits if h.link_id is not None and h.kind is TokenKind.ATTACHMENT
    }
    links = _by_id(
        conn,
        trackedlink.c.linkid,
        link_ids,
        trackedlink.c.emailactivityid,
        trackedlink.c.url,
        trackedlink.c.ishoneypot,
    )
    files = _by_id(
        conn,
        trackedattachment.c.attachmentid,
        attachment_ids,
        trackedattachment.c.emailactivityid,
        trackedattachment.c.filename,
    )
    rows: list[dict[str, Any]] = []
    orphans = 0
    for hit in hits:
        delivery = known.get(hit.delivery_id)
        is_file = hit.kind is TokenKind.ATTACHMENT
        target = (files if is_file else links).get(hit.link_id) if hit.link_id is not None else None
        if delivery is None or (
            hit.link_id is not None
            and (target is None or target.emailactivityid != delivery.emailactivityid)
        ):
            orphans += 1
            continue
        facts = pipeline.enrich(hit)
        rows.append(
            {
                "interactionforemailid": new_id(),
                "emailactivityid": delivery.emailactivityid,
                "deliveryid": hit.delivery_id,
                "linkid": None if is_file else hit.link_id,
                "attachmentid": hit.link_id if is_file else None,
                "interactiontype": int(_KIND[hit.kind]),
                "emailinteractiontime": hit.received_at,
                "interactionlocation": _location(facts),
                "interactionuseragent": hit.user_agent,
                "interactedcomponenttext": (
                    None if target is None else target.filename if is_file else target.url
                ),
                "emailaddress": delivery.emailaddress,
                "ipaddress": hit.ip[:45],
                "httpmethod": hit.method[:8],
                "ishoneypot": hit.kind is TokenKind.HONEYPOT,
                "headers": dict(hit.headers),
                "facts": facts,
                "hitid": hit.hit_id,
                "externalid": hit.external_id,
            }
        )
    candidates = len(rows)
    # Classify with the stored timeline first, then insert rows already labelled: one
    # INSERT, no read-back and UPDATE of every new row (that was a third of ingest time).
    reclassify(conn, {r["deliveryid"] for r in rows}, settings, new_rows=rows)
    added = insert_ignore(conn, interactionforemail, rows, "hitid")
    if deferred is None:
        recount(conn, {r["emailactivityid"] for r in rows}, settings)
    else:
        deferred.update(
            known[h.delivery_id].emailactivityid for h in hits if h.delivery_id in known
        )
    return IngestResult(added, candidates - added, orphans)


def _location(facts: dict[str, dict[str, Any]]) -> str | None:
    net = facts.get("net", {})
    parts = [p for p in (net.get("city"), net.get("country")) if p]
    return ", ".join(parts) if parts else None


def _event(row: Any) -> Event:
    return Event(
        key=row.hitid,
        kind=EventKind(row.interactiontype),
        at=row.emailinteractiontime,
        ip=row.ipaddress,
        user_agent=row.interactionuseragent,
        method=row.httpmethod,
        facts=row.facts or {},
        link_id=row.linkid,
        honeypot=bool(row.ishoneypot),
        headers=row.headers or {},
    )


def _new_event(row: dict[str, Any]) -> Event:
    return Event(
        key=row["hitid"],
        kind=EventKind(row["interactiontype"]),
        at=row["emailinteractiontime"],
        ip=row["ipaddress"],
        user_agent=row["interactionuseragent"],
        method=row["httpmethod"],
        facts=row["facts"],
        link_id=row["linkid"],
        honeypot=row["ishoneypot"],
        headers=row["headers"],
    )


def reasons_json(result: Classification) -> dict[str, Any]:
    return {
        "fired": [
            {"rule": e.rule, "verdict": str(e.verdict), "weight": e.weight, "text": e.text}
            for e in result.fired
        ],
        "not_fired": list(result.not_fired),
    }


def reclassify(
    conn: Connection,
    delivery_ids: Iterable[int],
    settings: Settings,
    new_rows: list[dict[str, Any]] | None = None,
) -> int:
    """Classify every event of these deliveries again; returns how many stored ones changed.

    `new_rows` (from `store_hits`, not yet inserted) join their timelines and get their
    verdict written into the dicts, so they are inserted already labelled instead of
    inserted, read back and updated; rows whose hit is already stored are dropped from
    the list (the caller inserts what is left).
    """
    ids = sorted(set(delivery_ids))
    if not ids:
        return 0
    ev = interactionforemail
    contexts: dict[int, Context] = {}
    disabled = disabled_rules(settings.disabled_rules)
    now = datetime.now(UTC)
    link_counts: dict[uuid.UUID, int] = dict(
        conn.execute(
            select(trackedlink.c.emailactivityid, func.count())
            .where(trackedlink.c.ishoneypot.is_(False))
            .where(
                trackedlink.c.emailactivityid.in_(
                    select(emaildelivery.c.emailactivityid).where(
                        emaildelivery.c.deliveryid.in_(ids)
                    )
                )
            )
            .group_by(trackedlink.c.emailactivityid)
        ).all()
    )
    for drow in conn.execute(
        select(emaildelivery.c.deliveryid, email.c.activityid, email.c.senton)
        .join(email, email.c.activityid == emaildelivery.c.emailactivityid)
        .where(emaildelivery.c.deliveryid.in_(ids))
    ):
        contexts[drow.deliveryid] = Context(
            sent_at=drow.senton,
            link_count=link_counts.get(drow.activityid, 0),
            delivery_window_seconds=settings.delivery_window_seconds,
            disabled=disabled,
            now=now,
        )
    # Per delivery: (time, hit id, Event, stored row or None, new row dict or None).
    timelines: dict[int, list[tuple[Any, str, Event, Any, dict[str, Any] | None]]] = defaultdict(
        list
    )
    stored: set[str] = set()
    for row in conn.execute(
        select(
            ev.c.deliveryid,
            ev.c.hitid,
            ev.c.interactiontype,
            ev.c.emailinteractiontime,
            ev.c.ipaddress,
            ev.c.interactionuseragent,
            ev.c.httpmethod,
            ev.c.facts,
            ev.c.linkid,
            ev.c.ishoneypot,
            ev.c.headers,
            ev.c.verdict,
            ev.c.confidence,
            ev.c.reasons,
            ev.c.classifierversion,
        )
        .where(ev.c.deliveryid.in_(ids))
        .where(ev.c.interactiontype != int(EventKind.REPLY))
        .order_by(ev.c.deliveryid, ev.c.emailinteractiontime, ev.c.hitid)
    ):
        stored.add(row.hitid)
        timelines[row.deliveryid].append(
            (row.emailinteractiontime, row.hitid, _event(row), row, None)
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
                    (new["emailinteractiontime"], new["hitid"], _new_event(new), None, new)
                )
        new_rows[:] = fresh
        for delivery_id in touched:
            timelines[delivery_id].sort(key=lambda t: (t[0], t[1]))
    changes: list[dict[str, Any]] = []
    for delivery_id, entries in timelines.items():
        results = classify_timeline([t[2] for t in entries], contexts[delivery_id], RULES)
        for (_at, hit_id, _e, row, pending), result in zip(entries, results, strict=True):
            verdict = str(result.verdict)
            reasons = reasons_json(result)
            if pending is not None:
                pending["verdict"] = verdict
                pending["confidence"] = result.confidence
                pending["reasons"] = reasons
                pending["classifierversion"] = result.version
            elif (row.verdict, row.confidence, row.classifierversion, row.reasons) != (
                verdict,
                result.confidence,
                result.version,
                reasons,
            ):
                changes.append(
                    {
                        "b_hitid": hit_id,
                        "b_verdict": verdict,
                        "b_confidence": result.confidence,
                        "b_reasons": reasons,
                        "b_version": result.version,
                    }
                )
    if changes:
        executemany(
            conn,
            update(ev)
            .where(ev.c.hitid == bindparam("b_hitid"))
            .values(
                verdict=bindparam("b_verdict"),
                confidence=bindparam("b_confidence"),
                reasons=bindparam("b_reasons"),
                classifierversion=bindparam("b_version"),
            ),
            changes,
        )
    return len(changes)


def recount(conn: Connection, email_ids: Iterable[uuid.UUID], settings: Settings) -> None:
    """Recompute the raw and labelled counters of these emails from their events."""
    ids = list(set(email_ids))
    if not ids:
        return
    ev = interactionforemail
    counts: dict[uuid.UUID, dict[str, Any]] = {i: _zero() for i in ids}
    for row in conn.execute(
        select(
            ev.c.emailactivityid,
            ev.c.interactiontype,
            ev.c.verdict,
            func.count(),
            func.max(ev.c.emailinteractiontime),
        )
        .where(ev.c.emailactivityid.in_(ids))
        .group_by(ev.c.emailactivityid, ev.c.interactiontype, ev.c.verdict)
    ):
        c = counts[row[0]]
        kind, verdict, n, last = EventKind(row[1]), Verdict(row[2]), int(row[3]), row[4]
        raw_col = {
            EventKind.OPEN: "opencount",
            EventKind.CLICK: "linksclickedcount",
            EventKind.ATTACHMENT: "attachmentopencount",
            EventKind.REPLY: "replycount",
        }[kind]
        if kind is EventKind.REPLY and verdict is Verdict.MACHINE:
            continue  # auto-replies are stored and labelled but are not replies
        c[raw_col] += n
        if kind is EventKind.OPEN:
            c["lastopenedtime"] = max(filter(None, (c["lastopenedtime"], last)), default=None)
        human_col = {
            EventKind.OPEN: "humanopencount",
            EventKind.CLICK: "humanlinksclickedcount",
            EventKind.ATTACHMENT: "humanattachmentopencount",
        }.get(kind)
        if verdict is Verdict.HUMAN and human_col:
            c[human_col] += n
            if kind is EventKind.OPEN:
                c["lasthumanopenedtime"] = max(
                    filter(None, (c["lasthumanopenedtime"], last)), default=None
                )
        elif verdict is Verdict.MACHINE and kind is EventKind.OPEN:
            c["machineopencount"] += n
        elif verdict is Verdict.MACHINE and kind is EventKind.CLICK:
            c["machinelinksclickedcount"] += n
        elif verdict is Verdict.FORWARD and kind is EventKind.OPEN:
            c["forwardopencount"] += n
        if verdict in (Verdict.HUMAN, Verdict.FORWARD) or kind is EventKind.REPLY:
            c["_human"] = True
        c["_any"] = True
    now = datetime.now(UTC)
    rows = []
    for activity_id, c in counts.items():
        label = "human" if c.pop("_human") else ("machine" if c.pop("_any", False) else "none")
        c.pop("_any", None)
        rows.append(
            {
                **{f"b_{k}": v for k, v in c.items()},
                "b_id": activity_id,
                "b_engagementverdict": label,
                "b_noiseflag": c["opencount"] > settings.noise_open_threshold,
                "b_modifiedon": now,
            }
        )
    # One executemany, not one compiled UPDATE per email: ingest recounts thousands per batch.
    columns = [*_zero().keys() - {"_human", "_any"}, "engagementverdict", "noiseflag", "modifiedon"]
    executemany(
        conn,
        update(email)
        .where(email.c.activityid == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns}),
        rows,
    )
    # Scores and roll-ups move with the counters, in the same transaction.
    rescore_for_emails(conn, ids, settings, now)


def _zero() -> dict[str, Any]:
    return {
        "opencount": 0,
        "linksclickedcount": 0,
        "attachmentopencount": 0,
        "replycount": 0,
        "humanopencount": 0,
        "humanlinksclickedcount": 0,
        "humanattachmentopencount": 0,
        "machineopencount": 0,
        "machinelinksclickedcount": 0,
        "forwardopencount": 0,
        "lastopenedtime": None,
        "lasthumanopenedtime": None,
        "_human": False,
        "_any": False,
    }


class Backfill:
    """Stores a long stream of hits (`import hits`), recounting emails once, not per batch.

    Each batch is enriched, classified with its recipients' stored timelines and inserted
    in its own transaction, as the ingest worker does. Counters, scores and roll-ups of
    the emails a batch touched are not recomputed in that batch: the emails are collected
    and recounted (set-wise, `recount_chunk` per transaction) when `recount_after` of them
    are pending and at the end. An email hit in fifty batches of a backfill is recounted
    once instead of fifty times.

    If the process dies between a batch and its recount, the events are stored and the
    counters lag: importing the same file again stores nothing new but recounts every
    email the file names (duplicates included), which repairs them.
    """

    def __init__(
        self,
        engine: Engine,
        pipeline: Pipeline,
        settings: Settings,
        *,
        recount_after: int = 50_000,
        recount_chunk: int = 5_000,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.settings = settings
        self.recount_after = recount_after
        self.recount_chunk = recount_chunk
        self.pending: set[uuid.UUID] = set()
        self.stored = self.duplicates = self.orphans = 0

    def store(self, hits: Sequence[RawHit]) -> IngestResult:
        if not hits:
            return IngestResult(0, 0, 0)
        with self.engine.begin() as conn:
            result = store_hits(conn, hits, self.pipeline, self.settings, deferred=self.pending)
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.orphans += result.orphans
        if len(self.pending) >= self.recount_after:
            self.recount()
        return result

    def recount(self) -> int:
        """Recount every pending email now; returns how many."""
        ids = sorted(self.pending, key=lambda i: i.bytes)
        for start in range(0, len(ids), self.recount_chunk):
            chunk = ids[start : start + self.recount_chunk]
            with self.engine.begin() as conn:
                recount(conn, chunk, self.settings)
            self.pending.difference_update(chunk)
        return len(ids)

    def finish(self) -> IngestResult:
        self.recount()
        return IngestResult(self.stored, self.duplicates, self.orphans)


class Ingestor:
    """Moves hits from one journal file into the store, batch by batch."""

    def __init__(self, engine: Engine, settings: Settings, pipeline: Pipeline | None = None):
        self.engine = engine
        self.settings = settings
        self.pipeline = pipeline or default_pipeline(settings)
        self.reader = JournalReader(settings.journal_file)

    def _cursor(self, conn: Connection) -> int:
        value = conn.execute(
            select(ingestcursor.c.lastseq).where(ingestcursor.c.journalid == self.reader.journal_id)
        ).scalar()
        return int(value or 0)

    def run_once(self) -> IngestResult:
        with self.engine.begin() as conn:
            cursor = self._cursor(conn)
            batch = self.reader.read(cursor, self.settings.ingest_batch_size)
            if not batch.hits:
                return IngestResult(0, 0, 0)
            result = store_hits(conn, batch.hits, self.pipeline, self.settings)
            insert_ignore(
                conn, ingestcursor, [{"journalid": batch.journal_id, "lastseq": 0}], "journalid"
            )
            conn.execute(
                update(ingestcursor)
                .where(ingestcursor.c.journalid == batch.journal_id)
                .values(lastseq=batch.last_seq)
            )
        if result.orphans:
            log.warning("%d hits named deliveries that do not exist; skipped", result.orphans)
        keep = timedelta(hours=self.settings.journal_retention_hours)
        self.reader.prune(batch.last_seq, datetime.now(UTC) - keep)
        return result

    def drain(self) -> int:
        """Ingest until the journal has nothing new; returns hits stored."""
        total = 0
        while True:
            result = self.run_once()
            total += result.stored
            if result.stored + result.duplicates + result.orphans == 0:
                return total

    def run_forever(self, stop: threading.Event) -> None:
        from .sweep import sweep

        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                # Time-based rules (seven days without a click) change verdicts with no
                # new hit; an hourly sweep applies them.
                next_sweep = time.monotonic() + SWEEP_SECONDS
                try:
                    sweep(self.engine, self.settings, datetime.now(UTC))
                except Exception:
                    log.exception("sweep failed; next try in an hour")
            try:
                result = self.run_once()
            except Exception:  # keep the worker alive; the batch is retried next round
                log.exception("ingest batch failed; retrying")
                stop.wait(self.settings.ingest_interval_seconds * 4)
                continue
            if result.stored + result.duplicates + result.orphans == 0:
                stop.wait(self.settings.ingest_interval_seconds)

    def close(self) -> None:
        self.reader.close()
