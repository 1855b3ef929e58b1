"""A large synthetic MailSignal database for bench/views.py and bench/scores.py.

`load(url, Shape(...))` migrates a fresh SQLite or PostgreSQL database (the real
`store.db.migrate`) and fills it fast: SQLite through `executemany` in transactions of
tens of thousands of rows with `PRAGMA synchronous=OFF` and `journal_mode=OFF` for the
load only (restored to the application's WAL afterwards), PostgreSQL through `COPY FROM
STDIN` (psycopg `cursor.copy`) with foreign-key triggers off for the session
(`session_replication_role=replica`). Secondary indexes of the big tables are dropped
before and rebuilt after the load (the usual bulk-load order; unique and primary keys
stay); PostgreSQL then gets `VACUUM ANALYZE`, which autovacuum would do on its own.

The data (seeded, so both backends get the same rows):

- one organization, one admin and `reps` (~200) reps with mixed time zones; owners are
  Zipf-like (the busiest rep sends ~5% of the mail);
- `accounts`, `contacts` (80% with an account) and `leads`;
- `emails` sent over the last 180 days, in send order, one delivery each (88% to a
  contact, 10% to a lead, 2% to an unknown address; 3% untracked, so no events);
- about `events` interactionforemail rows in all, spread so that most emails have 0-3
  opens, a quarter are discussed at length and ~10% are scanner noise (dozens to
  hundreds of machine opens, far above the noise threshold of 20). Opens, clicks,
  attachment opens and replies; human, machine, forward and unknown verdicts; events
  come within a few days of sending (machine ones within minutes) and never after
  `now`;
- each email's counters (opencount, humanopencount, lastopenedtime, ...) follow from its
  events exactly as `ingest.recount` computes them.
"""

from __future__ import annotations

import bisect
import itertools
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import create_engine, make_url, text

from mailsignal.store.db import alembic_config, make_engine, migrate


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DAY = 86400.0
ZONES = ("UTC", "America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London")
ZONES += ("Europe/Berlin", "Europe/Paris", "Asia/Singapore", "Australia/Sydney")
WORDS = _names(
    """pricing proposal renewal demo follow-up quarterly review contract onboarding invoice
    security questionnaire webinar pilot roadmap integration migration budget kickoff intro
    meeting agenda case study discount expansion licence support escalation"""
)
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15",
    "Mozilla/5.0",
    "GoogleImageProxy",
)
# In the form enrich/network.py writes them (labels and owner of the matching lists).
FACTS = (
    '{"ua": {"family": "Chrome", "os": "Windows"}, "net": {"labels": [], "owner": null}}',
    '{"ua": {"family": "Outlook"}, "net": {"labels": ["microsoft-eop", "security-gateway"],'
    ' "owner": "microsoft"}}',
    '{"ua": {"family": "Mobile Safari"}, "net": {"labels": ["apple-private-relay"],'
    ' "owner": "apple"}}',
    '{"ua": {"family": "Other"}, "net": {"labels": ["proofpoint", "security-gateway"],'
    ' "owner": "proofpoint"}}',
)
REASONS = ('["ua.browser"]', '["net.apple_relay", "timing.prefetch"]', '["net.datacenter"]', "[]")
OPEN, CLICK, ATTACHMENT, REPLY = 0, 1, 2, 3
NOISE_THRESHOLD = 20  # settings.noise_open_threshold's default
LOADED_AT = "0010"  # the schema the rows below are written for (see `load`)


@dataclass(frozen=True)
class Shape:
    emails: int = 1_000_000
    events: int = 10_000_000
    contacts: int = 100_000
    accounts: int = 10_000
    leads: int = 10_000
    reps: int = 200
    seed: int = 5
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @staticmethod
    def scaled(emails: int, events: int | None = None, seed: int = 5) -> Shape:
        """Parties scale with the emails (100k contacts for 1M emails), at least a few."""
        return Shape(
            emails=emails,
            events=10 * emails if events is None else events,
            contacts=max(100, emails // 10),
            accounts=max(10, emails // 100),
            leads=max(10, emails // 100),
            seed=seed,
        )


@dataclass
class Loaded:
    """What the benchmarks need to know about a loaded database."""

    url: str
    admin_id: str
    busiest_rep: str
    counts: dict[str, int]
    seconds: float


# Column lists per table: the generator's tuples follow them; other columns keep defaults.
COLUMNS: dict[str, tuple[str, ...]] = {
    "organization": _names("organizationid name createdon modifiedon"),
    "systemuser": _names(
        "systemuserid fullname internalemailaddress accessrole createdon modifiedon"
    ),
    "usersettings": _names("systemuserid emailengagementoptin timezonename modifiedon"),
    "account": _names("accountid name emailaddress1 createdon modifiedon"),
    "contact": _names("contactid fullname emailaddress1 parentcustomerid createdon modifiedon"),
    "lead": _names("leadid fullname emailaddress1 companyname createdon modifiedon"),
    "email": _names(
        """activityid subject directioncode senton sender torecipients regardingobjectid
        regardingobjecttypecode ownerid messageid emailtrackingid conversationtrackingid
        isemailfollowed opencount lastopenedtime linksclickedcount attachmentopencount
        replycount humanopencount humanlinksclickedcount humanattachmentopencount
        machineopencount machinelinksclickedcount forwardopencount lasthumanopenedtime
        noiseflag engagementverdict createdon modifiedon"""
    ),
    "emaildelivery": _names(
        """deliveryid emailactivityid emailaddress recipientobjectid recipientobjecttypecode
        tracked untrackedreasons status createdon"""
    ),
    "interactionforemail": _names(
        """interactionforemailid emailactivityid deliveryid interactiontype
        emailinteractiontime interactionuseragent emailaddress ipaddress headers facts
        verdict confidence reasons classifierversion hitid createdon"""
    ),
}
BIG = ("email", "emaildelivery", "interactionforemail")
Rows = list[tuple[Any, ...]]


def _mean_of_noise(mean_events: float) -> float:
    """The noise emails' mean event count that makes the overall mean `mean_events`."""
    # Of the 97% tracked: 25% none, 40% light (mean 1.58), 25% discussed (mean 17.5),
    # 10% noise (20 + a geometric tail).
    return max(25.0, (mean_events / 0.97 - 0.40 * 1.582 - 0.25 * 17.5) / 0.10 + 0.5)


def generate(shape: Shape) -> Iterator[tuple[str, Rows]]:
    """(table, rows) chunks in foreign-key order; values are backend-neutral text/ints.

    Ids are 32 hex digits and datetimes 'YYYY-MM-DD HH:MM:SS.ffffff' UTC: what SQLAlchemy
    stores on SQLite and what PostgreSQL reads for uuid and (UTC session) timestamptz.
    """
    rng = random.Random(shape.seed)
    rnd, bits, expo = rng.random, rng.getrandbits, rng.expovariate
    now = shape.now.timestamp()
    epoch = datetime(1970, 1, 1)

    def stamp(t: float) -> str:
        return (epoch + timedelta(seconds=t)).isoformat(" ", "microseconds")

    def new_id() -> str:
        return f"{bits(128):032x}"

    made = stamp(now - 400 * DAY)
    yield "organization", [(new_id(), "Northwind", made, made)]
    admin = new_id()
    reps = [new_id() for _ in range(shape.reps)]
    users = [(admin, "Admin", "admin@northwind.test", "admin", made, made)]
    users += [
        (r, f"Rep {i}", f"rep{i}@northwind.test", "rep", made, made) for i, r in enumerate(reps)
    ]
    yield "systemuser", users
    zones = [ZONES[i % len(ZONES)] for i in range(len(users))]
    yield "usersettings", [(u[0], 1, z, made) for u, z in zip(users, zones, strict=True)]
    rep_mail = {r: f"rep{i}@northwind.test" for i, r in enumerate(reps)}
    # Zipf-like owners: rep i sends in proportion to 1 / (i + 1) ** 0.6.
    rep_cum = list(itertools.accumulate(1 / (i + 1) ** 0.6 for i in range(len(reps))))

    accounts = [new_id() for _ in range(shape.accounts)]
    yield (
        "account",
        [(a, f"Account {i}", f"info@acct{i}.test", made, made) for i, a in enumerate(accounts)],
    )
    contacts = [new_id() for _ in range(shape.contacts)]
    contact_mail = [f"c{i}@acct{i % max(1, shape.accounts)}.test" for i in range(shape.contacts)]
    rows: Rows = []
    for i, c in enumerate(contacts):
        parent = accounts[int(rnd() * len(accounts))] if rnd() < 0.8 else None
        rows.append((c, f"Contact {i}", contact_mail[i], parent, made, made))
        if len(rows) == 50_000:
            yield "contact", rows
            rows = []
    yield "contact", rows
    leads = [new_id() for _ in range(shape.leads)]
    lead_mail = [f"l{i}@prospect{i}.test" for i in range(shape.leads)]
    yield (
        "lead",
        [(p, f"Lead {i}", lead_mail[i], f"Prospect {i}", made, made) for i, p in enumerate(leads)],
    )

    noise_mean = _mean_of_noise(shape.events / max(1, shape.emails))
    sent_times = sorted(now - 180 * DAY * rnd() for _ in range(shape.emails))
    journals = [new_id() for _ in range(8)]
    hit = 0
    emails: Rows = []
    deliveries: Rows = []
    events: Rows = []
    for n, sent in enumerate(sent_times, start=1):
        activity = new_id()
        owner = reps[bisect.bisect_left(rep_cum, rnd() * rep_cum[-1])]
        u = rnd()
        if u < 0.88:
            i = int(len(contacts) * rnd() ** 1.6)  # some contacts get a lot more mail
            party, kind, address = contacts[i], "contact", contact_mail[i]
        elif u < 0.98:
            i = int(len(leads) * rnd())
            party, kind, address = leads[i], "lead", lead_mail[i]
        else:
            party, kind, address = None, None, f"unknown{n}@elsewhere.test"
        tracked = rnd() >= 0.03
        sent_s = stamp(sent)
        deliveries.append(
            (
                n,
                activity,
                address,
                party,
                kind,
                int(tracked),
                "[]" if tracked else '["dnt"]',
                "sent",
                sent_s,
            )
        )
        # How many events: none, light, discussed, or scanner noise.
        u = rnd()
        if not tracked or u < 0.25:
            count, noise = 0, False
        elif u < 0.65:
            count, noise = 1 + int(expo(1.0)), False
        elif u < 0.90:
            count, noise = 5 + int(expo(1 / 13.0)), False
        else:
            count, noise = 20 + int(expo(1 / (noise_mean - 20))), True
        opens = human_opens = clicks = human_clicks = files = human_files = replies = 0
        machine_opens = machine_clicks = forward_opens = 0
        last_open = last_human_open = 0.0
        label = "none"
        room = now - sent
        for _ in range(count):
            u = rnd()
            kind_e = OPEN if u < 0.78 else CLICK if u < 0.93 else ATTACHMENT if u < 0.97 else REPLY
            u = rnd()
            if noise:
                verdict = "machine" if u < 0.9 else "unknown"
                delay = min(room, expo(1 / 600.0))
            else:
                verdict = (
                    "human"
                    if u < 0.55
                    else "machine"
                    if u < 0.80
                    else "unknown"
                    if u < 0.92
                    else "forward"
                )
                if verdict == "machine":
                    delay = min(room, expo(1 / 120.0))
                else:  # within a few days of sending, mostly the first hours
                    delay = min(expo(1 / (0.4 * DAY)), 4 * DAY)
                    if delay > room:
                        delay = room * rnd()
            at = sent + delay
            hit += 1
            at_s = stamp(at)
            pick = hit % 4
            # fmt: off
            events.append((
                new_id(), activity, n, kind_e, at_s, AGENTS[pick], address,
                f"198.51.{hit % 200}.{hit % 250}", "{}", FACTS[pick], verdict,
                0.5 + (hit % 50) / 100, REASONS[pick], "rules-1",
                f"{journals[hit % 8]}:{hit}", at_s,
            ))
            # fmt: on
            if kind_e == REPLY:
                if verdict == "machine":
                    continue  # an auto-reply is not a reply (ingest.recount)
                replies += 1
                label = "human"
                continue
            human = verdict == "human"
            if kind_e == OPEN:
                opens += 1
                last_open = max(last_open, at)
                if human:
                    human_opens += 1
                    last_human_open = max(last_human_open, at)
                elif verdict == "machine":
                    machine_opens += 1
                elif verdict == "forward":
                    forward_opens += 1
            elif kind_e == CLICK:
                clicks += 1
                human_clicks += human
                machine_clicks += verdict == "machine"
            else:
                files += 1
                human_files += human
            if human or verdict == "forward":
                label = "human"
            elif label == "none":
                label = "machine"
        subject = f"{WORDS[n % len(WORDS)].capitalize()} {WORDS[(n * 7) % len(WORDS)]} #{n}"
        # fmt: off
        emails.append((
            activity, subject, 1, sent_s, rep_mail[owner], address, party, kind, owner,
            f"<{activity}@northwind.test>", new_id(), new_id(), int(tracked),
            opens, stamp(last_open) if opens else None, clicks, files, replies,
            human_opens, human_clicks, human_files, machine_opens, machine_clicks,
            forward_opens, stamp(last_human_open) if human_opens else None,
            int(opens > NOISE_THRESHOLD), label, sent_s, sent_s,
        ))
        # fmt: on
        if len(events) >= 100_000 or len(emails) >= 20_000:
            yield "email", emails
            yield "emaildelivery", deliveries
            yield "interactionforemail", events
            emails, deliveries, events = [], [], []
    yield "email", emails
    yield "emaildelivery", deliveries
    yield "interactionforemail", events


def _insert_sql(table: str, style: str) -> str:
    cols = COLUMNS[table]
    marks = ", ".join("?" for _ in cols) if style == "qmark" else ""
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608


def _load_sqlite(path: Path, shape: Shape, say: Callable[[str], None]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")  # load only; WAL is restored below
    con.execute("PRAGMA synchronous=OFF")  # load only
    con.execute("PRAGMA cache_size=-1000000")
    con.execute("PRAGMA temp_store=MEMORY")
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN (?, ?, ?)",
        BIG,
    ).fetchall()
    for name, _sql in indexes:
        con.execute(f'DROP INDEX "{name}"')
    done: dict[str, int] = {}
    con.execute("BEGIN")
    pending = 0
    for table, rows in generate(shape):
        con.executemany(_insert_sql(table, "qmark"), rows)
        done[table] = done.get(table, 0) + len(rows)
        pending += len(rows)
        if pending >= 500_000:
            con.execute("COMMIT")
            con.execute("BEGIN")
            pending = 0
            say(f"  loaded {done.get('interactionforemail', 0):,} events")
    con.execute("COMMIT")
    for name, sql in indexes:
        t0 = time.perf_counter()
        con.execute(sql)
        say(f"  index {name}: {time.perf_counter() - t0:.1f} s")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()


def _copy_text(value: Any) -> str:
    return r"\N" if value is None else str(value)


def _load_postgresql(url: str, shape: Shape, say: Callable[[str], None]) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("SET session_replication_role = replica")  # no FK triggers during load
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET maintenance_work_mem = '512MB'")
        indexes = con.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            (list(BIG),),
        ).fetchall()
        for name, _sql in indexes:
            con.execute(f'DROP INDEX "{name}"')
        done: dict[str, int] = {}
        last_said = 0
        with con.transaction():
            for table, rows in generate(shape):
                cols = ", ".join(COLUMNS[table])
                with con.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    copy.write("".join("\t".join(map(_copy_text, row)) + "\n" for row in rows))
                done[table] = done.get(table, 0) + len(rows)
                if done.get("interactionforemail", 0) - last_said >= 1_000_000:
                    last_said = done["interactionforemail"]
                    say(f"  loaded {last_said:,} events")
        # Ids were given explicitly: move the sequence past them for later inserts.
        con.execute(
            "SELECT setval(pg_get_serial_sequence('emaildelivery', 'deliveryid'), "
            "(SELECT coalesce(max(deliveryid), 0) + 1 FROM emaildelivery), false)"
        )
        for name, sql in indexes:
            t0 = time.perf_counter()
            con.execute(sql)
            say(f"  index {name}: {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        con.execute("VACUUM ANALYZE")
        say(f"  vacuum analyze: {time.perf_counter() - t0:.1f} s")


def _admin_url(url: str) -> tuple[str, str]:
    u = make_url(url)
    return u.set(database="postgres").render_as_string(False), str(u.database)


def drop(url: str) -> None:
    """Remove a benchmark database (SQLite file or PostgreSQL database)."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        return
    admin_url, name = _admin_url(url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def describe(url: str, seconds: float = 0.0) -> Loaded:
    """Ids and row counts of an existing benchmark database."""
    engine = make_engine(url)
    with engine.connect() as conn:
        admin = conn.execute(
            text("SELECT systemuserid FROM systemuser WHERE accessrole = 'admin' LIMIT 1")
        ).scalar_one()
        rep = conn.execute(
            text("SELECT ownerid FROM email GROUP BY ownerid ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()
        counts = {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608
            for t in ("email", "emaildelivery", "interactionforemail", "contact", "account", "lead")
        }
    engine.dispose()
    return Loaded(url, str(admin), str(rep), counts, seconds)


def load(url: str, shape: Shape, say: Callable[[str], None] = print) -> Loaded:
    """Create (replacing any previous one) and fill the benchmark database at `url`."""
    t0 = time.perf_counter()
    drop(url)
    if url.startswith("postgresql"):
        admin_url, name = _admin_url(url)
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    engine = make_engine(url)
    # The rows are written as of LOADED_AT; the later migrations then fill what they
    # derive from them (events' owners, the panel's roll-ups) exactly as on an upgrade,
    # and how long that takes at this size is printed.
    command.upgrade(alembic_config(engine), LOADED_AT)
    engine.dispose()
    if url.startswith("sqlite"):
        _load_sqlite(Path(url.split("///", 1)[1]), shape, say)
    else:
        _load_postgresql(url, shape, say)
    engine = make_engine(url)
    t1 = time.perf_counter()
    migrate(engine)
    engine.dispose()
    say(f"  migrations after {LOADED_AT}: {time.perf_counter() - t1:.1f} s")
    return describe(url, time.perf_counter() - t0)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
