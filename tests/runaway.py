"""The runaway query of issue #10 and the data that makes it run away.

Two outer self-joins of `interactionforemail` on one email with N events count N³ rows:
with 2,000 events that is 8·10⁹ rows, minutes of one core on either backend, which is
what a rep's Web API query did to a real instance.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select, text

from conftest import LiveServer, cli
from helpers import track_html
from mailsignal.keyring import load_keyring
from mailsignal.store.db import make_engine
from mailsignal.store.schema import emaildelivery, interactionforemail
from mailsignal.tokens import Signer

RUNAWAY = (
    '<fetch aggregate="true"><entity name="interactionforemail">'
    '<attribute name="interactionforemailid" alias="n" aggregate="count"/>'
    '<link-entity name="interactionforemail" from="emailactivityid" to="emailactivityid" '
    'link-type="outer" alias="a"/>'
    '<link-entity name="interactionforemail" from="emailactivityid" to="emailactivityid" '
    'link-type="outer" alias="b"/>'
    "</entity></fetch>"
)
EVENTS = 2000


def seed(engine: Engine, secret_file: Path, events: int = EVENTS) -> uuid.UUID:
    """One email from rep@northwind.test (who must exist) with `events` opens."""
    signer = Signer(*load_keyring(secret_file))
    with engine.begin() as conn:
        tracked = track_html(conn, signer, ["dana@contoso.test"])
        delivery = conn.execute(
            select(emaildelivery.c.deliveryid).where(
                emaildelivery.c.emailactivityid == tracked.activity_id
            )
        ).scalar_one()
        now = datetime.now(UTC)
        conn.execute(
            insert(interactionforemail),
            [
                {
                    "emailactivityid": tracked.activity_id,
                    "deliveryid": delivery,
                    "interactiontype": 0,
                    "emailinteractiontime": now,
                    "emailaddress": "dana@contoso.test",
                    "hitid": f"runaway:{i}",
                }
                for i in range(events)
            ],
        )
    activity_id: uuid.UUID = tracked.activity_id
    return activity_id


def pg_active(admin: Engine, database: str) -> list[str]:
    """The runaway queries running now in `database` (PostgreSQL; its SQL joins
    interactionforemail a third time, which nothing else MailSignal runs does)."""
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT query FROM pg_stat_activity WHERE datname = :db AND state = 'active' "
                "AND pid <> pg_backend_pid() AND query LIKE '%JOIN interactionforemail AS t2%'"
            ),
            {"db": database},
        ).all()
    return [r.query for r in rows]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until it holds; the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(data_dir: Path, db_url: str, **env: str) -> tuple[LiveServer, str]:
    """A real `mailsignal serve` on `db_url` with the runaway data; (server, rep's key).

    `env` are extra MAILSIGNAL_* settings, by name without the prefix.
    """
    extra = {"MAILSIGNAL_DATABASE_URL": db_url}
    extra.update({f"MAILSIGNAL_{k.upper()}": v for k, v in env.items()})
    server = LiveServer(data_dir, extra_env=extra)
    cli(server.env, "init")
    out = cli(server.env, "users", "add", "rep@northwind.test", "--opt-in", "--key")
    key = out.stdout.strip().rsplit(" ", 1)[-1]
    engine = make_engine(db_url)
    seed(engine, data_dir / "secret.key")
    engine.dispose()
    server.start()
    return server, key


def worker_pids(pid: int) -> list[int]:
    """The granian worker processes of a `mailsignal serve` (children running `serve`;
    the other child is the ingest worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(c)
        for c in children
        if Path(f"/proc/{c}/cmdline").read_bytes().rstrip(b"\0").endswith(b"serve")
    ]
