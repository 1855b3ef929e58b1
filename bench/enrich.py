"""Enrichment speed and memory, each figure next to an anchor measured in the same run.

    .venv/bin/python bench/enrich.py [--n 100000]

Anchors: a bare `ipaddress.ip_address()` parse loop (the floor under any IP lookup, as
the enricher must validate the string) and a dict lookup loop (the floor under any cache
hit). Ratios travel between machines better than absolute figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import ipaddress
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

from mailsignal.enrich.network import NetworkEnricher, load_networks
from mailsignal.enrich.useragent import UserAgentEnricher, _parser, resolver_name

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "user_agents.tsv"


def rate(fn: Callable[[str], object], items: Sequence[str]) -> float:
    """Calls per second of fn over items (one pass, GC off as in timeit)."""
    gc.disable()
    try:
        start = time.perf_counter()
        for item in items:
            fn(item)
        return len(items) / (time.perf_counter() - start)
    finally:
        gc.enable()


def rss_kib() -> int:
    """Current resident set size; Linux /proc, else the peak from getrusage."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * 4
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def random_ips(n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    v4 = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(n)]
    # Global unicast 2000::/3, where every bundled v6 prefix lives.
    v6 = [str(ipaddress.IPv6Address((1 << 125) | rng.getrandbits(125))) for _ in range(n)]
    return v4, v6


def unique_user_agents(n: int, seeds: Sequence[str]) -> list[str]:
    # Real strings with a varying build token: same shape as traffic, no cache hits.
    return [f"{seeds[i % len(seeds)]} build/{i}" for i in range(n)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="lookups per measurement")
    args = parser.parse_args(argv)
    n: int = args.n
    rng = random.Random(20261127)
    seeds = [row["user_agent"] for row in csv.DictReader(FIXTURE.open(), delimiter="\t")]

    print(f"python {sys.version.split()[0]}, n={n}")

    # --- loading ---------------------------------------------------------------------
    rss0 = rss_kib()
    t0 = time.perf_counter()
    networks = load_networks()
    load_s = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_kib()
    t0 = time.perf_counter()
    _parser().parse("warm-up")
    ua_init_s = time.perf_counter() - t0
    rss2 = rss_kib()
    # A second load under tracemalloc: the Python objects kept (pytricia's C nodes are not
    # traced, so RSS above is the figure to trust for the total).
    tracemalloc.start()
    again = load_networks()
    py_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del again
    print(
        f"network tables: {len(networks)} prefixes loaded in {load_s * 1000:.0f} ms, "
        f"RSS +{(rss1 - rss0) / 1024:.1f} MiB (of which traced Python objects "
        f"{py_bytes / 2**20:.1f} MiB)"
    )
    print(
        f"ua-parser ({resolver_name()}): first parse {ua_init_s * 1000:.0f} ms, "
        f"RSS +{(rss2 - rss1) / 1024:.1f} MiB; process RSS now {rss2 / 1024:.1f} MiB"
    )

    # --- network enricher, against ip_address() over the very same strings -------------
    v4, v6 = random_ips(n, rng)
    mixed = v4 + v6
    rng.shuffle(mixed)
    net = NetworkEnricher(networks)
    for label, items in (("IPv4", v4), ("IPv6", v6), ("mixed", mixed)):
        anchor = rate(ipaddress.ip_address, items)
        r = rate(net.describe, items)
        print(
            f"net.describe {label:5}: {r:>10,.0f}/s = {r / anchor:.2f} x "
            f"ip_address() ({anchor:,.0f}/s)"
        )
    hits = sum(1 for ip in v4 if net.describe(ip)["labels"])
    print(f"  ({hits / len(v4):.1%} of random IPv4 addresses fall in a bundled list)")

    # --- user-agent enricher ---------------------------------------------------------
    uniq = unique_user_agents(n, seeds)
    raw = rate(_parser().parse, uniq[: n // 4])
    fresh = UserAgentEnricher(cache_size=0)  # every call misses: table + parser each time
    unique_rate = rate(fresh.describe, uniq[: n // 4])
    cached_items = [seeds[i % len(seeds)] for i in range(n)]
    cached = UserAgentEnricher()
    for ua in seeds:
        cached.describe(ua)
    cached_rate = rate(cached.describe, cached_items)
    table = {ua: ua for ua in seeds}
    anchor_dict = rate(table.get, cached_items)
    print(f"ua-parser parse() alone, unique:   {raw:,.0f}/s")
    print(f"ua.describe unique (cache misses): {unique_rate:,.0f}/s")
    print(
        f"ua.describe cached (50 UAs):       {cached_rate:,.0f}/s"
        f" = {cached_rate / anchor_dict:.2f} x dict.get() ({anchor_dict:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
