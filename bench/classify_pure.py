"""Enrich and classify throughput on one core, pure (no database), medians over rounds.

    .venv/bin/python bench/classify_pure.py [--hits 100000] [--rounds 5] [--cpu 0]
    .venv/bin/python bench/classify_pure.py --profile 30       # cProfile of one round
    .venv/bin/python bench/classify_pure.py --profile 30 --only classify

The same data and the same steps as the "pure, no database" line of bench/classify.py
(`run_pure`): hits from the evaluation set's generator (bench/evalset.py) in time order,
each enriched by `Pipeline.default()` and turned into an `Event` of its delivery's
timeline; then `classify_timeline` once per timeline. Two numbers (issue #3 targets):

- enrich: hits/s for `pipeline.enrich(hit)` plus building the `Event`, with a fresh
  pipeline each round (a cold user-agent cache; the UA parser itself stays loaded);
- classify: events/s for `classify_timeline` once per delivery timeline.

`--batch N` adds ingest's pattern: every touched timeline classified again after each
batch of N hits (as `reclassify` does), reported as hits/s.

Rates are given per CPU second of this process (`time.process_time`) and per wall second:
on a shared machine the wall figure swings with the neighbours' load, the CPU one much
less. Both are medians over the rounds. The classifier's caches live as long as the
process (as in the ingest worker), so round 1 also pays for filling them.

Each figure also says how much of the CPU went to the garbage collector (gc.callbacks)
and the rate without it: keeping 100k events with their facts alive, as this bench and
bench/classify.py do, sets off full collections that walk the whole heap, generated set
included; that is half of enrich's time here, more than in a worker whose batches die.
`--gc-threshold 10000` raises the collector's first threshold from 700 (gc.set_threshold)
to show what a worker could win by doing the same.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from evalset import SEED
from hits import build

from mailsignal.classify import RULES, Context, Event, classify_timeline
from mailsignal.enrich import Pipeline
from mailsignal.enrich.useragent import resolver_name
from mailsignal.model import EventKind, RawHit, TokenKind


def enrich_all(hits: Sequence[RawHit], pipeline: Pipeline) -> dict[int, list[Event]]:
    timelines: dict[int, list[Event]] = defaultdict(list)
    for h in hits:
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
    return timelines


def classify_all(timelines: dict[int, list[Event]], contexts: dict[int, Context]) -> int:
    n = 0
    for d, events in timelines.items():
        n += len(classify_timeline(events, contexts[d], RULES))
    return n


def reclassify_batches(
    hits: Sequence[RawHit], batch: int, pipeline: Pipeline, contexts: dict[int, Context]
) -> None:
    """Enrich, then classify every touched timeline again after each batch."""
    timelines: dict[int, list[Event]] = defaultdict(list)
    for i in range(0, len(hits), batch):
        chunk = hits[i : i + batch]
        for d, events in enrich_all(chunk, pipeline).items():
            timelines[d].extend(events)
        for d in {h.delivery_id for h in chunk}:
            classify_timeline(timelines[d], contexts[d], RULES)


Seconds = tuple[float, float, float]  # (CPU, wall, CPU spent collecting garbage)


class GcClock:
    """CPU time spent in the garbage collector, through gc.callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.seconds += time.process_time() - self._start


GC_CLOCK = GcClock()


def timed(fn: Any, *args: Any) -> tuple[Seconds, Any]:
    gc.collect()
    c0, w0, g0 = time.process_time(), time.perf_counter(), GC_CLOCK.seconds
    result = fn(*args)
    return (time.process_time() - c0, time.perf_counter() - w0, GC_CLOCK.seconds - g0), result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    parser.add_argument("--batch", type=int, default=0, help="also time per-batch reclassify")
    parser.add_argument("--profile", type=int, default=0, help="cProfile one round; top N")
    parser.add_argument("--only", choices=("enrich", "classify"), default=None)
    parser.add_argument("--gc-threshold", type=int, default=0, help="gc.set_threshold(N)")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])

    print(f"python {sys.version.split()[0]}, ua-parser resolver {resolver_name()}")
    t0 = time.perf_counter()
    es, hits, deliveries = build(args.hits, args.seed)
    contexts = {
        d: Context(sent_at=e.sent_at, link_count=e.links, now=es.now)
        for d, (e, _base) in deliveries.items()
    }
    n = len(hits)
    print(
        f"generated {n:,} hits for {len(es.emails):,} emails, {len(deliveries):,} "
        f"deliveries in {time.perf_counter() - t0:.1f} s"
    )
    Pipeline.default().enrich(hits[0])  # load the UA parser outside the timings

    if args.profile:
        profile(args, hits, contexts)
        return

    enrich_s: list[Seconds] = []
    classify_s: list[Seconds] = []
    batch_s: list[Seconds] = []
    for _ in range(args.rounds):
        pipeline = Pipeline.default()
        t, timelines = timed(enrich_all, hits, pipeline)
        enrich_s.append(t)
        t, events = timed(classify_all, timelines, contexts)
        classify_s.append(t)
        assert events == n, (events, n)
        if args.batch:
            pipeline = Pipeline.default()
            batch_s.append(timed(reclassify_batches, hits, args.batch, pipeline, contexts)[0])
        print(
            f"  round {len(enrich_s)}: enrich {n / enrich_s[-1][0]:,.0f} hits/CPU s, classify "
            f"{n / classify_s[-1][0]:,.0f} events/CPU s",
            flush=True,
        )
        del timelines  # before the next round builds its own

    def rates(seconds: list[Seconds]) -> str:
        cpu = sorted(n / s for s, _w, _g in seconds)
        wall = statistics.median(n / w for _c, w, _g in seconds)
        no_gc = statistics.median(n / (c - g) for c, _w, g in seconds)
        in_gc = statistics.median(g / c for c, _w, g in seconds)
        return (
            f"median {statistics.median(cpu):>9,.0f} per CPU s (min {cpu[0]:,.0f}, max "
            f"{cpu[-1]:,.0f}); {wall:,.0f} per wall s; {in_gc:.0%} of CPU in the GC, "
            f"{no_gc:,.0f} per CPU s without it"
        )

    print(
        f"over {args.rounds} rounds of {n:,} hits, gc thresholds {gc.get_threshold()} "
        "(targets >= 150,000 per CPU s):"
    )
    print(f"  enrich (+ Event), hits:          {rates(enrich_s)}")
    print(f"  classify once/timeline, events:  {rates(classify_s)}")
    if batch_s:
        print(f"  enrich + reclassify per batch of {args.batch}, hits: {rates(batch_s)}")


def profile(args: argparse.Namespace, hits: Sequence[RawHit], contexts: dict[int, Context]) -> None:
    pipeline = Pipeline.default()
    timelines = enrich_all(hits, Pipeline.default()) if args.only == "classify" else None
    prof = cProfile.Profile()
    prof.enable()
    if args.only != "classify":
        timelines = enrich_all(hits, pipeline)
    if args.only != "enrich":
        assert timelines is not None
        classify_all(timelines, contexts)
    prof.disable()
    stats = pstats.Stats(prof).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.profile)
    stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
