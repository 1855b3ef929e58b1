"""Ingest + classify throughput on one core, against a bare SQLite insert of the same rows.

    .venv/bin/python bench/classify.py [--hits 1000000] [--batch 5000] [--cpu 0]
                                       [--mode live|backfill|both]
    .venv/bin/python bench/classify.py --hits 100000 --mode live --profile 30

Hits come from the evaluation set's generator (bench/evalset.py: the same mixture of MPP,
gateway scans, proxies and people), in time order as the journal would hand them over.
The emails, deliveries, links and recipients (contacts in accounts, and leads, so that
scores and roll-ups are kept too) are bulk-inserted first (not measured). Then, timed,
each on a fresh temporary SQLite database migrated with `make_engine`/`migrate` (WAL,
synchronous=FULL):

1. backfill, `import hits`' path: `mailsignal.ingest.Backfill`, batches of 5,000, each
   enriched, classified with the stored timelines and inserted in one transaction;
   counters, scores and roll-ups recounted once per touched email at the end;
2. live, the ingest worker's path: `store_hits(conn, batch, pipeline, settings)` in one
   transaction per batch of 5,000, recounting and rescoring every batch, with the time
   split by step;
3. the pure part, no database: enrich every hit, then classify each touched recipient
   timeline again after every batch, as `reclassify` does (and, for reference, once per
   timeline at the end);
4. the anchor: a bare `sqlite3` executemany of the same number of rows of the same shape
   into a table with the same keys, indexes and pragmas, one commit per batch.

Also printed: the RSS the lookup data (network lists, UA parser) adds once loaded.
Targets (issue #3): >= 50k hits/s; lookup data <= 150 MB.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalset import SEED, EvalSet, Generator

from mailsignal import ingest
from mailsignal.classify import RULES, Context, Event, classify_timeline
from mailsignal.enrich import Pipeline
from mailsignal.enrich.useragent import resolver_name
from mailsignal.model import EventKind, RawHit, TokenKind, new_id
from mailsignal.pipeline.backfill import Backfill, store_hits
from mailsignal.settings import Settings
from mailsignal.store.db import make_engine, migrate
from mailsignal.store.schema import (
    account,
    contact,
    email,
    emaildelivery,
    lead,
    systemuser,
    trackedlink,
)

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "user_agents.tsv"
KIND = {EventKind.OPEN: TokenKind.OPEN, EventKind.CLICK: TokenKind.CLICK}


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(n_hits: int, seed: int) -> tuple[EvalSet, list[RawHit], dict[int, Any]]:
    """Emails until n_hits hits; hits in time order with delivery and link ids assigned."""
    gen = Generator(seed)
    es = EvalSet(seed, gen.start, gen.now, [])
    hits: list[tuple[datetime, int, int | None, Any]] = []
    deliveries: dict[int, Any] = {}  # delivery id -> (email, links base id)
    delivery_id = link_base = 0
    while len(hits) < n_hits:
        e = gen.email(len(es.emails))
        es.emails.append(e)
        for rcpt in e.recipients:
            delivery_id += 1
            deliveries[delivery_id] = (e, link_base)
            for h in rcpt.hits:
                link = None if h.link is None else link_base + h.link + 1
                hits.append((h.at, delivery_id, link, h))
        link_base += e.links
    hits.sort(key=lambda t: t[0])
    raw = [
        RawHit(f"bench-{i:08d}", at, KIND[h.kind], d, link, h.ip, h.user_agent, h.method)
        for i, (at, d, link, h) in enumerate(hits[:n_hits])
    ]
    return es, raw, deliveries


def setup_db(url: str, deliveries: dict[int, Any]) -> None:
    """Bulk-insert the rep, emails, deliveries, links and recipients (not timed)."""
    engine = make_engine(url)
    migrate(engine)
    owner = uuid.UUID(int=1)
    emails: dict[int, dict[str, Any]] = {}
    links: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    n_people = max(1, len(deliveries) // 2)
    for delivery_id, (e, base) in deliveries.items():
        activity = uuid.UUID(int=e.number + 2)
        if e.number not in emails:
            emails[e.number] = {
                "activityid": activity,
                "subject": f"Proposal {e.number}",
                "senton": e.sent_at,
                "sender": "rep@northwind.example",
                "ownerid": owner,
            }
            links += [
                {
                    "linkid": base + p + 1,
                    "emailactivityid": activity,
                    "position": p,
                    "url": f"https://northwind.example/l/{e.number}/{p}",
                }
                for p in range(e.links)
            ]
        # Recipients are CRM parties, so ingest rescores them: each person gets about two
        # emails; one in ten is a lead, the rest contacts in accounts of eight.
        person = delivery_id % n_people
        kind = "lead" if person % 10 == 0 else "contact"
        rows.append(
            {
                "deliveryid": delivery_id,
                "emailactivityid": activity,
                "emailaddress": f"p{person}@customer.example",
                "tracked": True,
                "untrackedreasons": [],
                "recipientobjecttypecode": kind,
                "recipientobjectid": uuid.UUID(int=(1 << 64) + person),
            }
        )
    people = range(n_people)
    parties = {
        account: [
            {"accountid": uuid.UUID(int=(2 << 64) + a), "name": f"Account {a}"}
            for a in range(n_people // 8 + 1)
        ],
        contact: [
            {
                "contactid": uuid.UUID(int=(1 << 64) + p),
                "fullname": f"Contact {p}",
                "emailaddress1": f"p{p}@customer.example",
                "parentcustomerid": uuid.UUID(int=(2 << 64) + p // 8),
            }
            for p in people
            if p % 10
        ],
        lead: [
            {
                "leadid": uuid.UUID(int=(1 << 64) + p),
                "fullname": f"Lead {p}",
                "emailaddress1": f"p{p}@customer.example",
            }
            for p in people
            if p % 10 == 0
        ],
    }
    with engine.begin() as conn:
        conn.execute(
            systemuser.insert(),
            [{"systemuserid": owner, "fullname": "Rep", "internalemailaddress": "rep@n.example"}],
        )
        for table, data in parties.items():
            for i in range(0, len(data), 20_000):
                conn.execute(table.insert(), data[i : i + 20_000])
        for table, data in ((email, list(emails.values())), (trackedlink, links)):
            for i in range(0, len(data), 20_000):
                conn.execute(table.insert(), data[i : i + 20_000])
        for i in range(0, len(rows), 20_000):
            conn.execute(emaildelivery.insert(), rows[i : i + 20_000])
    engine.dispose()


class Phases:
    """Wall time per step of store_hits, measured by wrapping the ingest module's own
    functions (store_hits looks them up at call time), so no profiler overhead."""

    NAMES = ("insert_ignore", "reclassify", "classify_timeline", "recount", "rescore_for_emails")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self._saved = {name: getattr(ingest, name) for name in self.NAMES}

    def __enter__(self) -> Phases:
        for name, fn in self._saved.items():
            setattr(ingest, name, self._timed(name, fn))
        return self

    def __exit__(self, *_exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(ingest, name, fn)

    def _timed(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return wrapper


def run_ingest(
    url: str,
    hits: Sequence[RawHit],
    batch: int,
    pipeline: Pipeline,
    settings: Settings,
    commits: list[float],
) -> list[float]:
    """Seconds per batch, commit included; `commits` gets the commit's own share (the WAL
    fsync, and the checkpoint that copies pages into the database now and then)."""
    engine = make_engine(url)
    times: list[float] = []
    for i in range(0, len(hits), batch):
        chunk = hits[i : i + batch]
        t0 = time.perf_counter()
        with engine.connect() as conn:
            with conn.begin():
                result = store_hits(conn, chunk, pipeline, settings)
                t1 = time.perf_counter()
            commits.append(time.perf_counter() - t1)
        times.append(time.perf_counter() - t0)
        assert result.stored == len(chunk), result
        if len(times) % 20 == 0:
            done = i + len(chunk)
            print(f"  ... {done} hits, {done / sum(times):,.0f} hits/s so far", flush=True)
    engine.dispose()
    return times


def run_backfill(
    url: str, hits: Sequence[RawHit], batch: int, pipeline: Pipeline, settings: Settings
) -> tuple[float, float]:
    """`import hits`' path (ingest.Backfill): (seconds in all, seconds of the final
    recount). Batches as the live path, counters and scores recounted once at the end."""
    engine = make_engine(url)
    backfill = Backfill(engine, pipeline, settings)
    t0 = time.perf_counter()
    for i in range(0, len(hits), batch):
        backfill.store(hits[i : i + batch])
        if (i // batch + 1) % 20 == 0:
            done = i + batch
            print(f"  ... {done} hits, {done / (time.perf_counter() - t0):,.0f} hits/s so far")
    t1 = time.perf_counter()
    result = backfill.finish()
    t2 = time.perf_counter()
    assert result.stored == len(hits), result
    engine.dispose()
    return t2 - t0, t2 - t1


def run_pure(
    hits: Sequence[RawHit],
    batch: int,
    pipeline: Pipeline,
    deliveries: dict[int, Any],
    now: datetime,
) -> tuple[float, float, float]:
    """(enrich s, per-batch reclassify s, classify-once s) with no database."""
    contexts = {
        d: Context(sent_at=e.sent_at, link_count=e.links, now=now)
        for d, (e, _base) in deliveries.items()
    }
    timelines: dict[int, list[Event]] = defaultdict(list)
    t_enrich = t_classify = 0.0
    for i in range(0, len(hits), batch):
        chunk = hits[i : i + batch]
        t0 = time.perf_counter()
        for h in chunk:
            facts = pipeline.enrich(h)
            timelines[h.delivery_id].append(
                Event(
                    h.hit_id,
                    EventKind.OPEN if h.kind is TokenKind.OPEN else EventKind.CLICK,
                    h.received_at,
                    h.ip,
                    h.user_agent,
                    h.method,
                    facts,
                    h.link_id,
                )
            )
        t1 = time.perf_counter()
        for d in {h.delivery_id for h in chunk}:
            classify_timeline(timelines[d], contexts[d], RULES)
        t_enrich += t1 - t0
        t_classify += time.perf_counter() - t1
    t0 = time.perf_counter()
    for d, events in timelines.items():
        classify_timeline(events, contexts[d], RULES)
    return t_enrich, t_classify, time.perf_counter() - t0


ANCHOR_DDL = """
CREATE TABLE ev (
  id TEXT PRIMARY KEY, emailactivityid TEXT NOT NULL, deliveryid INTEGER NOT NULL,
  linkid INTEGER, interactiontype INTEGER NOT NULL, emailinteractiontime TEXT NOT NULL,
  interactionuseragent TEXT NOT NULL, ipaddress TEXT NOT NULL, httpmethod TEXT NOT NULL,
  facts TEXT NOT NULL, verdict TEXT NOT NULL, reasons TEXT NOT NULL, hitid TEXT NOT NULL UNIQUE
);
CREATE INDEX ev_delivery_time ON ev (deliveryid, emailinteractiontime);
CREATE INDEX ev_email ON ev (emailactivityid);
"""


def run_anchor(path: Path, hits: Sequence[RawHit], batch: int, pipeline: Pipeline) -> list[float]:
    """Seconds per batch for a bare executemany of the same rows (same pragmas and indexes,
    UUIDv7 keys as the real table has, one commit per batch)."""
    facts = json.dumps(pipeline.enrich(hits[0]))
    reasons = json.dumps({"fired": [], "not_fired": [r.id for r in RULES]})
    rows = [
        (
            new_id().hex,
            uuid.UUID(int=h.delivery_id).hex,
            h.delivery_id,
            h.link_id,
            int(h.kind),
            h.received_at.isoformat(),
            h.user_agent,
            h.ip,
            h.method,
            facts,
            "human",
            reasons,
            h.hit_id,
        )
        for h in hits
    ]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    db.executescript(ANCHOR_DDL)
    sql = "INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    times: list[float] = []
    for i in range(0, len(rows), batch):
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(sql, rows[i : i + batch])
        db.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    db.close()
    return times


def tenths(times: Sequence[float], batch: int) -> str:
    """Rate over the first and the last tenth of the batches: does it slow as tables grow?"""
    k = max(1, len(times) // 10)
    first, last = batch * k / sum(times[:k]), batch * k / sum(times[-k:])
    return f"first tenth {first:,.0f}/s, last tenth {last:,.0f}/s"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="hits per store_hits call")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    parser.add_argument("--profile", type=int, default=0, help="cProfile; print top N")
    parser.add_argument("--keep", type=Path, default=None, help="database directory to keep")
    parser.add_argument(
        "--mode",
        choices=("live", "backfill", "both"),
        default="both",
        help="the ingest worker's path, import's path, or both (each on a fresh database)",
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    print(f"python {sys.version.split()[0]}, ua-parser resolver {resolver_name()}")
    gc.collect()
    rss0 = rss_mib()
    t0 = time.perf_counter()
    pipeline = Pipeline.default()
    now = datetime.now(UTC)
    for i, line in enumerate(FIXTURE.read_text("utf-8").splitlines()[1:]):  # warm the parser
        ua = line.split("\t")[0]
        pipeline.enrich(RawHit("warm", now, TokenKind.OPEN, 1, None, f"{i + 1}.2.3.4", ua, "GET"))
    gc.collect()
    rss_lookup = rss_mib() - rss0
    print(
        f"lookup data (network lists + UA parser, warmed): +{rss_lookup:.1f} MiB RSS, "
        f"loaded in {time.perf_counter() - t0:.2f} s (target <= 150 MB)"
    )

    t0 = time.perf_counter()
    es, hits, deliveries = build(args.hits, args.seed)
    opens = sum(1 for h in hits if h.kind is TokenKind.OPEN)
    print(
        f"generated {len(hits):,} hits ({opens:,} opens) for {len(es.emails):,} emails, "
        f"{len(deliveries):,} deliveries in {time.perf_counter() - t0:.1f} s"
    )

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="ms-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        measure(args, tmp, pipeline, es, hits, deliveries)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def measure(
    args: argparse.Namespace,
    tmp: Path,
    pipeline: Pipeline,
    es: EvalSet,
    hits: list[RawHit],
    deliveries: dict[int, Any],
) -> None:
    settings = Settings.model_construct()
    n = len(hits)
    if args.mode in ("backfill", "both"):
        url = f"sqlite:///{tmp / 'backfill.db'}"
        setup_db(url, deliveries)
        gc.collect()
        total, final = run_backfill(url, hits, args.batch, pipeline, settings)
        print(
            f"\nbackfill (import hits: ingest.Backfill, batches of {args.batch}, counters and "
            f"scores recounted once): {n:,} hits in {total:.1f} s = {n / total:,.0f} hits/s "
            f"(final recount {final:.1f} s)"
        )
        if args.mode == "backfill":
            return
    url = f"sqlite:///{tmp / 'bench.db'}"
    t0 = time.perf_counter()
    setup_db(url, deliveries)
    print(f"set-up (migrate + bulk insert, not timed): {time.perf_counter() - t0:.1f} s; {url}")

    gc.collect()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    with Phases() as phases:
        commits: list[float] = []
        times = run_ingest(url, hits, args.batch, pipeline, settings, commits)
    if profiler:
        profiler.disable()
    total = sum(times)
    print(
        f"\nlive path (store_hits, as the ingest worker), batches of {args.batch}: {n:,} hits "
        f"in {total:.1f} s = {n / total:,.0f} hits/s  (batch p50 "
        f"{statistics.median(times) * 1000:.0f} ms, max "
        f"{max(times) * 1000:.0f} ms; {tenths(times, args.batch)})"
    )
    sec = phases.seconds
    parts = {
        "enrich, delivery/link lookups, rows": total
        - sec["insert_ignore"]
        - sec["reclassify"]
        - sec["recount"]
        - sum(commits),
        "INSERT (insert_ignore)": sec["insert_ignore"],
        "reclassify: SELECT, rows to Events, UPDATE": sec["reclassify"] - sec["classify_timeline"],
        "classify_timeline": sec["classify_timeline"],
        "recount: counters": sec["recount"] - sec["rescore_for_emails"],
        "recount: scores and roll-ups (rescore_for_emails)": sec["rescore_for_emails"],
        "COMMIT (WAL fsync, checkpoints)": sum(commits),
    }
    print("  where store_hits spends it:")
    for name, t in parts.items():
        print(f"    {name:50} {t:7.1f} s {t / total:5.0%}")
    if profiler:
        stats = pstats.Stats(profiler).strip_dirs()
        print(f"\nprofile of store_hits (cProfile overhead included), top {args.profile}:")
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
        return

    t_enrich, t_reclass, t_once = run_pure(hits, args.batch, pipeline, deliveries, es.now)
    pure = t_enrich + t_reclass
    print(
        f"pure, no database: enrich {n / t_enrich:,.0f} hits/s; enrich + per-batch "
        f"reclassify (ingest's work) {n / pure:,.0f} hits/s; enrich + classify once per "
        f"timeline {n / (t_enrich + t_once):,.0f} hits/s"
    )
    print(
        f"  share of store_hits time: enrich {t_enrich / total:.0%}, classify "
        f"{t_reclass / total:.0%}, database and the rest {1 - pure / total:.0%}"
    )
    anchor_times = run_anchor(tmp / "anchor.db", hits, args.batch, pipeline)
    anchor = sum(anchor_times)
    print(
        f"anchor, bare sqlite3 executemany of {n:,} rows (same pragmas, keys and indexes, "
        f"commit per batch): {n / anchor:,.0f} rows/s ({tenths(anchor_times, args.batch)})"
    )
    print(
        f"ratio store_hits / anchor = {(n / total) / (n / anchor):.3f}; target 50,000 hits/s "
        f"= {50_000 / (n / anchor):.2f} x anchor"
    )
    print(f"process RSS at the end: {rss_mib():.0f} MiB (hits and timelines held in memory)")


if __name__ == "__main__":
    main()
