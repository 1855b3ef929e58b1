"""The database side of bench/classify.py: the world ingest writes into, and the anchors.

`build` makes hits from the evaluation set's generator; `setup_db` bulk-inserts the
emails, deliveries, links and recipients (contacts in accounts, and leads) those hits
name, on SQLite or PostgreSQL, through the real schema (`migrate`). The anchors insert
rows of the shape bench/classify.py has always used (13 columns, the facts and reasons
of a typical event, the same keys and indexes as the events table) with nothing but the
driver: `sqlite3` executemany, and on PostgreSQL psycopg's executemany and COPY.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from mailsignal.classify import RULES
from mailsignal.enrich import Pipeline
from mailsignal.model import RawHit, new_id
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
    if engine.dialect.name == "postgresql":
        # Statistics, as autovacuum keeps them on a live database: without them the
        # planner takes the freshly loaded tables for small ones.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def fresh_pg(admin_url: str, name: str) -> str:
    """A new, empty PostgreSQL database `name` (dropped first); its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return url


def drop_pg(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def anchor_rows(hits: Sequence[RawHit], pipeline: Pipeline) -> list[tuple[Any, ...]]:
    """One row per hit, of the shape the anchors insert: the hit's own values, and the
    facts and reasons (every rule not fired) of the first hit, as typical text."""
    facts = json.dumps(pipeline.enrich(hits[0]))
    reasons = json.dumps({"fired": [], "not_fired": [r.id for r in RULES]})
    return [
        (
            new_id(),
            uuid.UUID(int=h.delivery_id),
            h.delivery_id,
            h.link_id,
            int(h.kind),
            h.received_at,
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


SQLITE_DDL = """
CREATE TABLE ev (
  id TEXT PRIMARY KEY, emailactivityid TEXT NOT NULL, deliveryid INTEGER NOT NULL,
  linkid INTEGER, interactiontype INTEGER NOT NULL, emailinteractiontime TEXT NOT NULL,
  interactionuseragent TEXT NOT NULL, ipaddress TEXT NOT NULL, httpmethod TEXT NOT NULL,
  facts TEXT NOT NULL, verdict TEXT NOT NULL, reasons TEXT NOT NULL, hitid TEXT NOT NULL UNIQUE
);
CREATE INDEX ev_delivery_time ON ev (deliveryid, emailinteractiontime);
CREATE INDEX ev_email ON ev (emailactivityid);
"""
PG_DDL = """
CREATE TABLE ev (
  id uuid PRIMARY KEY, emailactivityid uuid NOT NULL, deliveryid bigint NOT NULL,
  linkid bigint, interactiontype integer NOT NULL, emailinteractiontime timestamptz NOT NULL,
  interactionuseragent text NOT NULL, ipaddress varchar(45) NOT NULL,
  httpmethod varchar(8) NOT NULL, facts json NOT NULL, verdict varchar(16) NOT NULL,
  reasons json NOT NULL, hitid varchar(80) NOT NULL UNIQUE
);
CREATE INDEX ev_delivery_time ON ev (deliveryid, emailinteractiontime);
CREATE INDEX ev_email ON ev (emailactivityid);
"""
COLUMNS = (
    "id, emailactivityid, deliveryid, linkid, interactiontype, emailinteractiontime, "
    "interactionuseragent, ipaddress, httpmethod, facts, verdict, reasons, hitid"
)


def sqlite_anchor(path: Path, rows: list[tuple[Any, ...]], batch: int) -> list[float]:
    """Seconds per batch: `sqlite3` executemany, one commit per batch, WAL and
    synchronous=FULL and the page cache the store uses; ids and times as the store
    writes them (32 hex digits, SQLAlchemy's text format)."""
    text_rows = [
        (r[0].hex, r[1].hex, *r[2:5], r[5].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[6:]) for r in rows
    ]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    db.executescript(SQLITE_DDL)
    sql = f"INSERT INTO ev ({COLUMNS}) VALUES ({', '.join('?' * 13)})"  # noqa: S608
    times: list[float] = []
    for i in range(0, len(text_rows), batch):
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(sql, text_rows[i : i + batch])
        db.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    db.close()
    return times


def pg_anchor(url: str, rows: list[tuple[Any, ...]], batch: int, how: str) -> list[float]:
    """Seconds per batch on PostgreSQL: psycopg `executemany` (`how="executemany"`, which
    pipelines the statements) or `COPY ... FROM STDIN` (`how="copy"`), one commit per
    batch, into a table of the anchor's shape in its own database."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    times: list[float] = []
    with psycopg.connect(dsn) as db:
        db.execute("DROP TABLE IF EXISTS ev")
        db.execute(PG_DDL)
        db.commit()
        sql = f"INSERT INTO ev ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"  # noqa: S608
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            t0 = time.perf_counter()
            with db.cursor() as cur:
                if how == "copy":
                    with cur.copy(f"COPY ev ({COLUMNS}) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)
                else:
                    cur.executemany(sql, chunk)
            db.commit()
            times.append(time.perf_counter() - t0)
    return times
