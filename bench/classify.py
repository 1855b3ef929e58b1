"""Ingest throughput on one core, against a bare insert of rows of the same shape.

    .venv/bin/python bench/classify.py [--hits 1000000] [--batch 5000] [--cpu 0]
        [--backends sqlite,postgresql] [--pg-url URL] [--mode live|backfill|both]
    .venv/bin/python bench/classify.py --hits 100000 --mode live --profile 30

Hits come from the evaluation set's generator (bench/evalset.py: the same mixture of MPP,
gateway scans, proxies and people), in time order as the journal would hand them over.
The emails, deliveries, links and recipients (contacts in accounts, and leads, so that
scores and roll-ups are kept too) are bulk-inserted first (not measured; bench/ingestdb.py).
Then, on each backend, each on a fresh database migrated with `make_engine`/`migrate`
(SQLite: WAL, synchronous=FULL; PostgreSQL: a database of its own on `--pg-url`'s server):

1. live, the ingest worker's path: `pipeline.ingest.store_hits` in one transaction per
   batch of 5,000, with the time split by step;
2. backfill, `import hits`' path: `pipeline.backfill.Backfill`, the same per batch;
3. the anchors: the same number of rows of the shape this bench has always inserted
   (13 columns with the facts and reasons of a typical event, the events table's keys and
   indexes), with nothing but the driver, one commit per batch: `sqlite3` executemany on
   SQLite; psycopg executemany (pipelined) and COPY on PostgreSQL.

Each line ends with the ratio against its backend's anchor measured in the same run (on
PostgreSQL against executemany and against COPY). Issue #9's bar: live path >= 0.5x the
anchor, on both backends, at 1M hits. As the ingest worker does (pipeline.worker), the
collector is quieted once everything is loaded (`quiet_gc`), the generated hits included:
a worker holds one batch, not a million hits.

The pure part (enrich and classify, no database) is bench/classify_pure.py's.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalset import SEED
from hits import build
from ingestdb import anchor_rows, drop_pg, fresh_pg, pg_anchor, setup_db, sqlite_anchor

from mailsignal.enrich import Pipeline
from mailsignal.enrich.useragent import resolver_name
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline import ingest, tally, timelines
from mailsignal.pipeline.backfill import Backfill
from mailsignal.pipeline.ingest import store_hits
from mailsignal.pipeline.worker import quiet_gc
from mailsignal.settings import Settings
from mailsignal.store import events as store_events
from mailsignal.store.db import make_engine

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "user_agents.tsv"
DEFAULT_PG = os.environ.get(
    "MAILSIGNAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Phases:
    """Wall time per step of store_hits, measured by wrapping the functions it calls
    through module attributes (looked up at call time), so no profiler overhead."""

    TARGETS = (
        ("deliveries", store_events, "deliveries"),
        ("insert", store_events, "insert"),
        ("reclassify", ingest, "reclassify"),
        ("stored_timelines", store_events, "stored_timelines"),
        ("classify_timeline", timelines, "classify_timeline"),
        ("revise", store_events, "revise"),
        ("tally", tally, "apply"),
    )

    def __init__(self) -> None:
        self.seconds = {name: 0.0 for name, _m, _a in self.TARGETS}
        self._saved = {name: getattr(m, a) for name, m, a in self.TARGETS}

    def __enter__(self) -> Phases:
        for name, module, attr in self.TARGETS:
            setattr(module, attr, self._timed(name, self._saved[name]))
        return self

    def __exit__(self, *_exc: object) -> None:
        for name, module, attr in self.TARGETS:
            setattr(module, attr, self._saved[name])

    def _timed(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return wrapper

    def report(self, total: float, commits: float) -> None:
        sec = self.seconds
        parts = {
            "enrich, hit rows, the rest": total
            - sec["deliveries"]
            - sec["insert"]
            - sec["reclassify"]
            - sec["tally"]
            - commits,
            "deliveries (one locked read)": sec["deliveries"],
            "stored timelines (SELECT)": sec["stored_timelines"],
            "classify_timeline": sec["classify_timeline"],
            "timelines: Events, labels, compare": sec["reclassify"]
            - sec["stored_timelines"]
            - sec["classify_timeline"]
            - sec["revise"],
            "revise (UPDATE changed verdicts)": sec["revise"],
            "INSERT": sec["insert"],
            "tally (counters, scores, roll-ups)": sec["tally"],
            "COMMIT": commits,
        }
        print("  where store_hits spends it:")
        for name, t in parts.items():
            print(f"    {name:40} {t:7.1f} s {t / total:5.0%}")


def run_live(
    url: str, hits: Sequence[RawHit], batch: int, pipeline: Pipeline, settings: Settings
) -> tuple[list[float], float]:
    """Seconds per batch (commit included), and the commits' share."""
    engine = make_engine(url)
    times: list[float] = []
    commits = 0.0
    for i in range(0, len(hits), batch):
        chunk = hits[i : i + batch]
        t0 = time.perf_counter()
        with engine.connect() as conn:
            with conn.begin():
                result = store_hits(conn, chunk, pipeline, settings)
                t1 = time.perf_counter()
            commits += time.perf_counter() - t1
        times.append(time.perf_counter() - t0)
        assert result.stored == len(chunk), result
        if len(times) % 40 == 0:
            done = i + len(chunk)
            print(f"  ... {done:,} hits, {done / sum(times):,.0f} hits/s so far", flush=True)
    engine.dispose()
    return times, commits


def run_backfill(
    url: str, hits: Sequence[RawHit], batch: int, pipeline: Pipeline, settings: Settings
) -> float:
    engine = make_engine(url)
    backfill = Backfill(engine, pipeline, settings)
    t0 = time.perf_counter()
    for i in range(0, len(hits), batch):
        backfill.store(hits[i : i + batch])
    result = backfill.finish()
    elapsed = time.perf_counter() - t0
    assert result.stored == len(hits), result
    engine.dispose()
    return elapsed


def tenths(times: Sequence[float], batch: int) -> str:
    """Rate over the first and the last tenth of the batches: does it slow as tables grow?"""
    k = max(1, len(times) // 10)
    first, last = batch * k / sum(times[:k]), batch * k / sum(times[-k:])
    return f"first tenth {first:,.0f}/s, last tenth {last:,.0f}/s"


def measure(
    backend: str,
    args: argparse.Namespace,
    tmp: Path,
    pipeline: Pipeline,
    hits: list[RawHit],
    deliveries: dict[int, Any],
) -> None:
    settings = Settings.model_construct()
    n, batch = len(hits), args.batch
    print(f"\n=== {backend} ===")

    def fresh(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp / f'{name}.db'}"
        return fresh_pg(args.pg_url, f"ms_bench_{name}")

    anchors: dict[str, float] = {}
    rows = anchor_rows(hits, pipeline)
    if backend == "sqlite":
        times = sqlite_anchor(tmp / "anchor.db", rows, batch)
        anchors["executemany"] = n / sum(times)
        print(
            f"anchor, sqlite3 executemany of {n:,} rows: {anchors['executemany']:,.0f} rows/s "
            f"({tenths(times, batch)})"
        )
    else:
        url = fresh("anchor")
        for how in ("executemany", "copy"):
            times = pg_anchor(url, rows, batch, how)
            anchors[how] = n / sum(times)
            print(
                f"anchor, psycopg {how} of {n:,} rows: {anchors[how]:,.0f} rows/s "
                f"({tenths(times, batch)})"
            )
        drop_pg(args.pg_url, "ms_bench_anchor")
    del rows

    def ratios(rate: float) -> str:
        return ", ".join(f"{rate / a:.3f}x {how}" for how, a in anchors.items())

    if args.mode in ("live", "both"):
        url = fresh("live")
        setup_db(url, deliveries)
        gc.collect()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        with Phases() as phases:
            times, commits = run_live(url, hits, batch, pipeline, settings)
        if profiler:
            profiler.disable()
        total = sum(times)
        rate = n / total
        print(
            f"live path (store_hits, as the ingest worker): {n:,} hits in {total:.1f} s = "
            f"{rate:,.0f} hits/s = {ratios(rate)} (batch p50 "
            f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; "
            f"{tenths(times, batch)})"
        )
        phases.report(total, commits)
        if profiler:
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats("tottime").print_stats(args.profile)
            stats.sort_stats("cumulative").print_stats(args.profile)
        if backend == "postgresql" and not args.keep:
            drop_pg(args.pg_url, "ms_bench_live")
    if args.mode in ("backfill", "both"):
        url = fresh("backfill")
        setup_db(url, deliveries)
        gc.collect()
        elapsed = run_backfill(url, hits, batch, pipeline, settings)
        rate = n / elapsed
        print(
            f"backfill (import hits: Backfill): {n:,} hits in {elapsed:.1f} s = "
            f"{rate:,.0f} hits/s = {ratios(rate)}"
        )
        if backend == "postgresql" and not args.keep:
            drop_pg(args.pg_url, "ms_bench_backfill")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="hits per store_hits call")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    parser.add_argument("--profile", type=int, default=0, help="cProfile the live path; top N")
    parser.add_argument("--keep", type=Path, default=None, help="SQLite directory to keep")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="a server to create databases on")
    parser.add_argument("--mode", choices=("live", "backfill", "both"), default="both")
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
    print(
        f"lookup data (network lists + UA parser, warmed): +{rss_mib() - rss0:.1f} MiB RSS, "
        f"loaded in {time.perf_counter() - t0:.2f} s (target <= 150 MB)"
    )
    t0 = time.perf_counter()
    es, hits, deliveries = build(args.hits, args.seed)
    opens = sum(1 for h in hits if h.kind is TokenKind.OPEN)
    print(
        f"generated {len(hits):,} hits ({opens:,} opens) for {len(es.emails):,} emails, "
        f"{len(deliveries):,} deliveries in {time.perf_counter() - t0:.1f} s"
    )
    quiet_gc()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="ms-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for backend in args.backends.split(","):
            measure(backend.strip(), args, tmp, pipeline, hits, deliveries)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nprocess RSS at the end: {rss_mib():.0f} MiB (the generated hits held in memory)")


if __name__ == "__main__":
    main()
