"""Score recompute over 10M events, and the cost of one new event (issues #5, #9).

Targets: recomputing every score from 10M events takes <= 60 s on one core; a single new
event updates its scores in O(1) queries.

On the dataset of bench/views.py (bench/dataset.py; `--reuse` takes the databases left
by `views.py --keep`, otherwise they are generated here), for each backend:

1. `store.rescore.recompute_all` (one streamed pass over the events), timed end to end
   (wall and this process's CPU time; PostgreSQL's own work is in its server process);
2. `store.rescore.rescore` (set-wise, what the pipeline falls back to) on `--sample`
   random parties of each kind, in a transaction rolled back afterwards: its rows must
   equal what the full pass wrote (same `now`), and its time per party is printed;
3. one new event: in a transaction rolled back at the end, two new contacts (each with
   an account) get 10 and 1,000 events; then one more event is tallied for each
   (`pipeline.tally.apply`, as ingest does) while a `before_cursor_execute` listener
   counts the statements. The counts must be equal.

    .venv/bin/python bench/scores.py [--reuse] [--emails 1000000] [--events N]
        [--backends sqlite,postgresql] [--sqlite PATH] [--pg-url URL]
        [--sample 500] [--drop]

`--drop` removes the databases at the end (also the reused ones).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dataset import Shape, describe, drop, load  # noqa: E402
from sqlalchemy import Connection, Engine, event, func, insert, select  # noqa: E402

from mailsignal.engagement import effective_time, weights_of  # noqa: E402
from mailsignal.pipeline import tally  # noqa: E402
from mailsignal.settings import Settings  # noqa: E402
from mailsignal.store import events as store_events  # noqa: E402
from mailsignal.store import rescore  # noqa: E402
from mailsignal.store.db import make_engine  # noqa: E402
from mailsignal.store.parties import TABLES  # noqa: E402
from mailsignal.store.schema import (  # noqa: E402
    account,
    contact,
    email,
    emaildelivery,
    interactionforemail,
)

TARGET_S = 60.0
DEFAULT_SQLITE = "/tmp/ms_bench/ms_bench.db"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/ms_bench"
COMPARED = (
    "engagementscore",
    "emailsfollowedcount",
    "humanopencount",
    "humanclickcount",
    "replycount",
    "humandownloadcount",
    "lasthumanengagementon",
)


@contextmanager
def counted(engine: Engine) -> Iterator[list[tuple[str, float]]]:
    """(statement, ms) of every statement the engine sends to the driver meanwhile."""
    seen: list[tuple[str, float]] = []
    started: list[float] = []

    def before(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        started.append(time.perf_counter())

    def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        ms = (time.perf_counter() - started.pop()) * 1000
        seen.append((" ".join(statement.split()), ms))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def party_row(conn: Connection, kind: str, party: uuid.UUID) -> dict[str, Any]:
    table, key = TABLES[kind]
    row = conn.execute(select(*[table.c[c] for c in COMPARED]).where(table.c[key] == party))
    return dict(row.one()._mapping)


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if abs(a["engagementscore"] - b["engagementscore"]) > 1e-9 * max(1.0, a["engagementscore"]):
        return False
    return all(a[c] == b[c] for c in COMPARED[1:])


def bulk(engine: Engine, settings: Settings, now: datetime) -> dict[str, float]:
    written = 0

    def progress(n: int) -> None:
        nonlocal written
        written += n

    t0, c0 = time.perf_counter(), time.process_time()
    done = rescore.recompute_all(engine, weights_of(settings), now, progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert done == written
    return {"parties": done, "wall": wall, "cpu": cpu}


def sample(engine: Engine, settings: Settings, now: datetime, size: int) -> list[str]:
    """`rescore.rescore` on random parties of each kind, compared with the full pass's rows."""
    weights, rng, lines = weights_of(settings), random.Random(7), []
    with engine.connect() as conn:
        for kind, (table, key) in TABLES.items():
            ids = conn.execute(select(table.c[key])).scalars().all()
            chosen = rng.sample(list(ids), min(size, len(ids)))
            before = {p: party_row(conn, kind, p) for p in chosen}
            t0 = time.perf_counter()
            rescore.rescore(conn, {(kind, p) for p in chosen}, weights, now)
            spent = time.perf_counter() - t0
            equal = sum(same(before[p], party_row(conn, kind, p)) for p in chosen)
            lines.append(
                f"  {kind:<8} {len(chosen):>5} of {len(ids):>7,} rescored set-wise in "
                f"{spent * 1000:8.1f} ms; rows equal to the full pass: {equal}/{len(chosen)}"
            )
        conn.rollback()
    return lines


def add_events(
    conn: Connection, rep: uuid.UUID, party: uuid.UUID, emails: int, per_email: int, at: datetime
) -> list[tuple[uuid.UUID, int]]:
    """`emails` new emails to contact `party`, each with `per_email` events."""
    out = []
    for n in range(emails):
        activity = uuid.uuid4()
        conn.execute(
            insert(email).values(
                activityid=activity,
                subject=f"O(1) demo {n}",
                sender="rep@northwind.test",
                ownerid=rep,
                senton=at - timedelta(days=3),
                regardingobjectid=party,
                regardingobjecttypecode="contact",
            )
        )
        delivery = conn.execute(
            insert(emaildelivery)
            .values(
                emailactivityid=activity,
                emailaddress=f"{party.hex}@demo.test",
                recipientobjectid=party,
                recipientobjecttypecode="contact",
                tracked=True,
            )
            .returning(emaildelivery.c.deliveryid)
        ).scalar_one()
        if per_email:
            conn.execute(
                insert(interactionforemail),
                [
                    {
                        "emailactivityid": activity,
                        "deliveryid": delivery,
                        "interactiontype": i % 3,
                        "verdict": "human" if i % 2 else "machine",
                        "emailinteractiontime": at - timedelta(hours=i + 1),
                        "emailaddress": f"{party.hex}@demo.test",
                        "hitid": f"demo:{uuid.uuid4().hex}",
                    }
                    for i in range(per_email)
                ],
            )
        out.append((activity, delivery))
    return out


def one_event(engine: Engine, settings: Settings, rep: str) -> tuple[bool, list[str]]:
    """Statements and time of rescoring after one new event, for 10 vs 1,000 events."""
    lines, counts = [], []
    now = datetime.now(UTC)
    owner = uuid.UUID(rep)
    with engine.connect() as conn:
        for label, emails, per_email in (("10 events", 1, 10), ("1,000 events", 100, 10)):
            acct, person = uuid.uuid4(), uuid.uuid4()
            conn.execute(insert(account).values(accountid=acct, name=f"Demo {label}"))
            conn.execute(
                insert(contact).values(
                    contactid=person, fullname=f"Demo {label}", parentcustomerid=acct
                )
            )
            sent = add_events(conn, owner, person, emails, per_email, now)
            events = conn.execute(
                select(func.count())
                .select_from(interactionforemail.join(emaildelivery))
                .where(emaildelivery.c.recipientobjectid == person)
            ).scalar_one()
            _activity, delivery = sent[0]
            deliveries = store_events.deliveries(conn, [delivery])
            change = tally.Change(delivery, 0, None, "human", now, effective_time(now, now))
            with counted(engine) as seen:
                t0 = time.perf_counter()
                tally.apply(conn, [change], deliveries, settings, now)
                ms = (time.perf_counter() - t0) * 1000
            touched = len(deliveries[delivery].parties)
            score = party_row(conn, "contact", person)["engagementscore"]
            counts.append(len(seen))
            lines.append(
                f"  contact with {events + 1:>5} events: {len(seen)} statements, {ms:8.2f} ms, "
                f"{touched} parties updated (contact score {score:.2f})"
            )
            for sql, spent in seen:
                lines.append(f"    {spent:8.2f} ms  {sql[:110]}{'...' if len(sql) > 110 else ''}")
        conn.rollback()
    return len(set(counts)) == 1, lines


def run_backend(url: str, args: argparse.Namespace, settings: Settings) -> bool:
    loaded = describe(url)
    print(f"  rows: {loaded.counts}")
    engine = make_engine(url)
    ok = True
    try:
        now = datetime.now(UTC)
        b = bulk(engine, settings, now)
        verdict = "PASS" if b["wall"] <= TARGET_S else "FAIL"
        ok &= verdict == "PASS"
        print(
            f"  rescore.recompute_all: {b['parties']:,} parties from "
            f"{loaded.counts['interactionforemail']:,} events in {b['wall']:.1f} s wall, "
            f"{b['cpu']:.1f} s CPU in Python  {verdict} (<= {TARGET_S:g} s)",
            flush=True,
        )
        if args.sample:
            print("  rescore (set-wise) on a sample, vs the full pass's rows:")
            print("\n".join(sample(engine, settings, now, args.sample)))
        equal, lines = one_event(engine, settings, loaded.busiest_rep)
        ok &= equal
        lazy = " (SQLite: ms of execute; rows are fetched afterwards)" if "sqlite" in url else ""
        print(f"  one new event -> tally.apply, statements and their ms{lazy}:")
        print("\n".join(lines))
        print(f"  statement count independent of the party's events: {'PASS' if equal else 'FAIL'}")
    finally:
        engine.dispose()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="use the databases of views.py --keep")
    ap.add_argument("--emails", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=None, help="default: 10 per email")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--sqlite", default=DEFAULT_SQLITE)
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--sample", type=int, default=500, help="parties per kind (0: skip)")
    ap.add_argument("--drop", action="store_true", help="drop the databases at the end")
    args = ap.parse_args()
    urls = {"sqlite": f"sqlite:///{args.sqlite}", "postgresql": args.pg_url}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            url = urls[backend]
            print(f"== {backend}")
            if not args.reuse:
                shape = Shape.scaled(args.emails, args.events)
                loaded = load(url, shape, say=lambda s: print(s, flush=True))
                print(f"  generated in {loaded.seconds:.0f} s")
            settings = Settings(data_dir=Path(tmp), database_url=url, base_url="http://bench.test")
            ok &= run_backend(url, args, settings)
            if args.drop:
                drop(url)
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
