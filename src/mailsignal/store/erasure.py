"""The right to erasure in SQL (issue 13): delete or anonymise every stored row about one
recipient address. pipeline/rights.erase calls these in bounded transactions, in order:

    erase_copies        a batch of copies sent to the address: their events, what
                        retention folded of them, the copies; their emails' torecipients
                        rewritten without the address
    erase_replies       reply records sent from the address to other copies
    bare_emails         emails left with no copy at all (every recipient erased):
    delete_emails       deleted with their links, attachment records, Message-ID keys
                        and aggregate pixel
    erase_parties       contacts and leads with the address deleted; an account with it
                        deleted when no contact hangs off it, else its address nulled
    journal_hits        the hit journal's (and spool's) rows of the erased copies (not
                        aggregate opens: their `delivery` is a pixel id, naming no one)

On SQLite the erase connection turns `secure_delete` on (`secure`), so deleted rows are
overwritten with zeros rather than left in free pages, and `checkpoint` empties the WAL
afterwards. The chart roll-ups (engagementhour, environmentday) are counters without
personal data and keep their values, as they do under retention.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select, update
from sqlalchemy.exc import OperationalError

from ..model import TokenKind
from .bulk import in_ids
from .files import write_atomic
from .schema import (
    account,
    aggregatepixel,
    contact,
    email,
    emaildelivery,
    interactionforemail,
    retainedtally,
    sentmessage,
    trackedattachment,
    trackedlink,
)
from .subjectrows import PARTIES

log = logging.getLogger(__name__)
# What torecipients says in place of an erased address when other recipients stay.
ERASED = "erased@invalid"


def secure(conn: Connection) -> None:
    """SQLite: overwrite what this connection deletes (no-op on PostgreSQL, whose VACUUM
    reclaims dead rows; see docs/privacy.md)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def checkpoint(engine: Engine, *, vacuum: bool) -> bool:
    """SQLite: with `vacuum`, rebuild the database file, so no byte of an earlier version
    of an erased row survives in a page's free space (an UPDATE made by a connection
    without secure_delete leaves the old row there); then copy the WAL into the file and
    truncate it, so no frame of a page as it was before stays in the -wal file. Whether
    the file was rebuilt: False on PostgreSQL, without `vacuum`, or when another
    connection kept SQLite from it (logged; run the erasure again later)."""
    if engine.dialect.name != "sqlite":
        return False
    done = False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if vacuum:
            try:
                conn.exec_driver_sql("VACUUM")
                done = True
            except OperationalError as exc:
                log.warning("VACUUM after an erasure failed (%s); run it again later", exc)
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return done


def _rewrite(recipients: str, address: str) -> str:
    kept = [a if a.strip().lower() != address else ERASED for a in recipients.split(";")]
    return ";".join(kept)


Party = tuple[str, uuid.UUID]


def erase_copies(
    conn: Connection, address: str, ids: Sequence[int]
) -> tuple[int, set[uuid.UUID], set[Party]]:
    """Delete these copies (sent to `address`) with their events and retained tallies;
    (events deleted, their emails, the parties they counted for: to rescore)."""
    if not ids:
        return 0, set(), set()
    d, i = emaildelivery, interactionforemail
    # Lock the copies first (PostgreSQL; SQLite's writer lock covers it): an ingest or
    # retention run inserting an event or a tally for one of them waits, then finds the
    # copy gone (an orphan), instead of this transaction failing on its new row.
    conn.execute(select(d.c.deliveryid).where(in_ids(conn, d.c.deliveryid, ids)).with_for_update())
    found = conn.execute(
        select(
            d.c.emailactivityid,
            d.c.recipientobjecttypecode,
            d.c.recipientobjectid,
            contact.c.parentcustomerid,
        )
        .select_from(
            d.outerjoin(
                contact,
                (d.c.recipientobjecttypecode == "contact")
                & (contact.c.contactid == d.c.recipientobjectid),
            )
        )
        .where(in_ids(conn, d.c.deliveryid, ids))
    ).all()
    emails = {r[0] for r in found}
    parties: set[Party] = {(r[1], r[2]) for r in found if r[2] is not None and r[1]}
    parties |= {("account", r[3]) for r in found if r[3] is not None}
    gone = conn.execute(delete(i).where(in_ids(conn, i.c.deliveryid, ids))).rowcount
    conn.execute(delete(retainedtally).where(in_ids(conn, retainedtally.c.deliveryid, ids)))
    conn.execute(delete(d).where(in_ids(conn, d.c.deliveryid, ids)))
    rows = conn.execute(
        select(email.c.activityid, email.c.torecipients).where(
            in_ids(conn, email.c.activityid, list(emails))
        )
    )
    for activity_id, recipients in rows.all():
        rewritten = _rewrite(recipients or "", address)
        if rewritten != recipients:
            conn.execute(
                update(email)
                .where(email.c.activityid == activity_id)
                .values(torecipients=rewritten)
            )
    return int(gone), emails, parties


def erase_replies(conn: Connection, address: str, limit: int) -> tuple[int, set[uuid.UUID]]:
    """Delete up to `limit` events recorded as from `address` on other copies (a reply
    from it to mail sent to a colleague); (deleted, their emails)."""
    i = interactionforemail
    who = or_(func.lower(i.c.interactionrepliedby) == address, i.c.emailaddress == address)
    rows = conn.execute(
        select(i.c.interactionforemailid, i.c.emailactivityid).where(who).limit(limit)
    ).all()
    if not rows:
        return 0, set()
    conn.execute(delete(i).where(in_ids(conn, i.c.interactionforemailid, [r[0] for r in rows])))
    return len(rows), {r[1] for r in rows}


def bare_emails(conn: Connection, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these emails have no copy left."""
    wanted = list(set(ids))
    if not wanted:
        return []
    d = emaildelivery
    kept = select(d.c.emailactivityid).where(in_ids(conn, d.c.emailactivityid, wanted))
    left = {r[0] for r in conn.execute(kept.distinct())}
    return [i for i in wanted if i not in left]


def delete_emails(
    conn: Connection, ids: Sequence[uuid.UUID]
) -> tuple[int, list[tuple[int, str | None]]]:
    """Delete emails that have no copy left, with their links, attachment records,
    aggregate pixel (issue 13) and Message-ID keys; (emails deleted, [(attachment id,
    its blob's sha256 when no other attachment shares it, else None)]) for the caller
    to remove the files."""
    if not ids:
        return 0, []
    a = trackedattachment
    attachments = conn.execute(
        select(a.c.attachmentid, a.c.sha256).where(in_ids(conn, a.c.emailactivityid, ids))
    ).all()
    files: list[tuple[int, str | None]] = []
    mine = [r[0] for r in attachments]
    for attachment_id, sha in attachments:
        shared = conn.execute(
            select(func.count())
            .select_from(a)
            .where(a.c.sha256 == sha, ~in_ids(conn, a.c.attachmentid, mine))
        ).scalar_one()
        files.append((int(attachment_id), None if shared else str(sha)))
    i = interactionforemail
    conn.execute(delete(i).where(in_ids(conn, i.c.emailactivityid, ids)))
    conn.execute(delete(retainedtally).where(in_ids(conn, retainedtally.c.emailactivityid, ids)))
    for table in (trackedlink, trackedattachment, sentmessage, aggregatepixel):
        conn.execute(delete(table).where(in_ids(conn, table.c.emailactivityid, ids)))
    gone = conn.execute(delete(email).where(in_ids(conn, email.c.activityid, ids))).rowcount
    return int(gone), files


def erase_parties(conn: Connection, address: str) -> dict[str, Any]:
    """Delete the contacts and leads with `address`; an account with it is deleted when
    no contact hangs off it (it was this person's own record), else kept with its
    address nulled. Copies and emails naming a deleted party are unlinked. Returns the
    counts, the accounts to rescore and whether a deleted party said followemail=false."""
    found: dict[str, list[tuple[uuid.UUID, bool]]] = {}
    for kind, (table, key) in PARTIES.items():
        rows = conn.execute(
            select(table.c[key], table.c.followemail).where(
                func.lower(table.c.emailaddress1) == address
            )
        )
        found[kind] = [(r[0], bool(r[1])) for r in rows]
    opted_out = any(not follow for rows in found.values() for _id, follow in rows)
    contacts = [p for p, _f in found["contact"]]
    parents: set[uuid.UUID] = set()
    if contacts:
        parents = {
            r[0]
            for r in conn.execute(
                select(contact.c.parentcustomerid).where(
                    in_ids(conn, contact.c.contactid, contacts),
                    contact.c.parentcustomerid.is_not(None),
                )
            )
        }
    deleted: dict[str, list[uuid.UUID]] = {"contact": contacts, "lead": []}
    deleted["lead"] = [p for p, _f in found["lead"]]
    for kind in ("contact", "lead"):
        table, key = PARTIES[kind]
        if deleted[kind]:
            conn.execute(delete(table).where(in_ids(conn, table.c[key], deleted[kind])))
    kept: list[uuid.UUID] = []
    deleted["account"] = []
    for account_id, _follow in found["account"]:
        has_contacts = conn.execute(
            select(func.count())
            .select_from(contact)
            .where(contact.c.parentcustomerid == account_id)
        ).scalar_one()
        (kept if has_contacts else deleted["account"]).append(account_id)
    if kept:
        conn.execute(
            update(account)
            .where(in_ids(conn, account.c.accountid, kept))
            .values(emailaddress1=None)
        )
    if deleted["account"]:
        conn.execute(delete(account).where(in_ids(conn, account.c.accountid, deleted["account"])))
    for kind, ids in deleted.items():
        if not ids:
            continue
        d = emaildelivery
        conn.execute(
            update(d)
            .where(d.c.recipientobjecttypecode == kind, in_ids(conn, d.c.recipientobjectid, ids))
            .values(recipientobjectid=None, recipientobjecttypecode=None)
        )
        conn.execute(
            update(email)
            .where(
                email.c.regardingobjecttypecode == kind,
                in_ids(conn, email.c.regardingobjectid, ids),
            )
            .values(regardingobjectid=None, regardingobjecttypecode=None)
        )
    return {
        "contacts": len(deleted["contact"]),
        "leads": len(deleted["lead"]),
        "accounts_deleted": len(deleted["account"]),
        "accounts_kept": len(kept),
        "rescore": [("account", p) for p in (parents | set(kept)) - set(deleted["account"])],
        "opted_out": opted_out,
    }


def journal_hits(path: Path, delivery_ids: Sequence[int]) -> int:
    """Delete the hit journal's rows of these copies (hits not yet ingested, and ingested
    ones not yet pruned), overwriting them (secure_delete), then empty its WAL. The
    journal is shared with running servers: SQLite's locks serialise this with them."""
    if not delivery_ids or not path.is_file():
        return 0
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA secure_delete=ON")
        gone = 0
        ids = sorted(set(delivery_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # An aggregate open's `delivery` is a pixel id (issue 13): no copy's, kept.
            sql = f"DELETE FROM hit WHERE kind <> ? AND delivery IN ({marks})"  # noqa: S608
            gone += conn.execute(sql, [int(TokenKind.AGGREGATE_OPEN), *chunk]).rowcount
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone
    finally:
        conn.close()


def spooled_hits(directory: Path | None, delivery_ids: Sequence[int]) -> tuple[int, int]:
    """Drop the rows of these copies from the journal's spool files (store/spool.py):
    each file not held by its writer is locked, rewritten without them and renamed over
    itself. (rows dropped, files busy and left for ingest to skip as orphans)."""
    if directory is None or not directory.is_dir() or not delivery_ids:
        return 0, 0
    wanted = set(delivery_ids)
    dropped = busy = 0
    for path in sorted(directory.glob("*.spool")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy += 1
                continue
            lines = path.read_bytes().split(b"\n")
            kept: list[bytes] = []
            for line in lines[:-1]:
                with contextlib.suppress(ValueError, TypeError, IndexError):
                    row = json.loads(line)
                    if int(row[2]) in wanted and int(row[1]) != TokenKind.AGGREGATE_OPEN:
                        dropped += 1
                        continue
                kept.append(line + b"\n")
            if len(kept) != len(lines) - 1:
                write_atomic(path, b"".join(kept))
        finally:
            os.close(fd)
    return dropped, busy
