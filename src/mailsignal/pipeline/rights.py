"""The recipient's rights of access and erasure (issue 13, docs/privacy.md "Rights of
access and erasure"): what `mailsignal privacy export|erase` and the admin REST
endpoints do.

`export` writes ONE JSON document with every stored row about an address, streaming the
copies and events, so memory stays bounded whatever their number.

`erase` deletes or anonymises every row and file about an address, in transactions of
`batch` copies each (a crash part-way leaves a consistent store; running it again
finishes the job):
1. each batch of copies sent to it: their events, retained tallies, the copies; their
   emails' torecipients say `erased@invalid` instead; the emails' counters are recounted
   from what remains (tally.recount), in the same transaction; after its commit, the
   batch's rows in the hit journal and its spool files;
2. replies recorded from it on other copies (their emails rebuilt);
3. emails left without any copy are deleted whole (subject, links, attachment records)
   and their attachment files removed when no other email shares them;
4. its contacts and leads deleted, an account with it deleted or (other contacts hang
   off it) kept with its address nulled; the parties the erased copies counted for
   rescored; the do-not-track choice kept by keyed hash;
5. outbound copies queued to it under `<data_dir>/outbound/`; on SQLite the store is
   VACUUMed (unless `vacuum=False`) and its WAL checkpointed, so no deleted byte stays
   in the file;
6. the audit record, with the counts (an erasure cut short before it has none: run it
   again, which finds what is left and records it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from sqlalchemy import Engine

from ..addresses import normalise_address
from ..engagement import weights_of
from ..settings import Settings
from ..store import audit, donottrack, erasure, rescore, subjectrows
from ..store.db import writing
from ..store.files import AttachmentFiles, fsync_dir, write_atomic
from ..tokens import Signer
from . import tally

FORMAT = "mailsignal.privacy-export/1"
NO_CONSENT = "not recorded by this version"
SCORE_COLUMNS = (
    "engagementscore",
    "engagementscoreupdatedon",
    "emailsfollowedcount",
    "humanopencount",
    "humanclickcount",
    "replycount",
    "humandownloadcount",
    "lasthumanengagementon",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dump(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, sort_keys=True)


OTHER = "(another address)"


def _theirs(rows: Iterable[dict[str, Any]], address: str) -> Iterator[dict[str, Any]]:
    """Rows as the person may see them: a reply on their copy sent from someone else's
    address (a colleague, a forward) names that address in `interactionrepliedby` and
    its reasons; it is someone else's personal data, so it reads OTHER instead."""
    for row in rows:
        sender = row.get("interactionrepliedby")
        if sender and sender.strip().lower() != address:
            shown = json.loads(_dump({k: row[k] for k in ("reasons", "headers") if k in row}))
            text = json.dumps(shown).replace(json.dumps(sender)[1:-1], OTHER)
            row = {**row, **json.loads(text), "interactionrepliedby": OTHER}
        yield row


def _array(out: IO[str], name: str, rows: Iterable[dict[str, Any]]) -> int:
    out.write(f",\n{json.dumps(name)}: [")
    n = 0
    for row in rows:
        out.write(("\n  " if n == 0 else ",\n  ") + _dump(row))
        n += 1
    out.write("\n]" if n else "]")
    return n


def export(
    engine: Engine,
    signer: Signer,
    address: str,
    out: IO[str],
    settings: Settings,
    *,
    actor: str,
    now: datetime | None = None,
) -> dict[str, int]:
    """Write the export document of `address` to `out`; the number of rows of each kind.
    The export is recorded in the audit trail (subject: the address's keyed hash)."""
    now = now or datetime.now(UTC)
    address = normalise_address(address)
    digest = signer.address_hash(address)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        parties = subjectrows.parties(conn, address)
        head = {
            "format": FORMAT,
            "address": address,
            "addresshash": digest,
            "generatedon": now,
            "notes": {
                "ip_storage": settings.ip_storage,
                "ipaddress": "as stored: ip_storage=truncated keeps an IPv4 /24 or IPv6 /48 "
                "network, none keeps no address; network owner and country are kept as facts",
            },
            "parties": parties,
            "scores": [
                {"kind": kind, "id": row[subjectrows.PARTIES[kind][1]]}
                | {c: row[c] for c in SCORE_COLUMNS}
                for kind, rows in parties.items()
                for row in rows
            ],
        }
        out.write(_dump(head)[:-1])  # the object stays open for the streamed arrays
        counts["parties"] = sum(len(rows) for rows in parties.values())
        counts["deliveries"] = _array(out, "deliveries", subjectrows.deliveries(conn, address))
        events = _theirs(subjectrows.events(conn, address), address)
        counts["events"] = _array(out, "events", events)
        replies = _theirs(subjectrows.replies(conn, address), address)
        counts["replies"] = _array(out, "replies", replies)
        counts["retained"] = _array(out, "retainedaggregates", subjectrows.retained(conn, address))
        entry = donottrack.entry(conn, digest)
        consent = subjectrows.consent(conn, address, digest)
        out.write(f',\n"donottrack": {_dump(entry)}')
        out.write(f',\n"consent": {_dump(NO_CONSENT if consent is None else consent)}\n}}\n')
    out.flush()
    with writing(engine) as conn:
        audit.record(conn, "privacy.export", actor=actor, subject=digest, details=counts, at=now)
    return counts


# What `erase` counts, every key always present (docs/privacy.md explains each).
COUNTS = (
    "deliveries",
    "events",
    "replies",
    "emails_deleted",
    "attachment_files",
    "contacts",
    "leads",
    "accounts_deleted",
    "accounts_kept",
    "donottrack_kept",
    "journal_hits",
    "spooled_hits",
    "spool_files_busy",
    "outbound_removed",
    "outbound_rewritten",
    "outbound_busy",
    "vacuumed",
)


@dataclass
class Erasure:
    """What an erasure did (also the audit record's details, without the hash)."""

    address_hash: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def add(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def _chunks(ids: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def erase(
    engine: Engine,
    signer: Signer,
    address: str,
    settings: Settings,
    *,
    actor: str,
    source: str,
    now: datetime | None = None,
    batch: int = 200,
    vacuum: bool = True,
) -> Erasure:
    """Erase every row and file about `address` (see the module docstring). `source` is
    the do-not-track source ("cli" or "api") should the choice need keeping; `vacuum`
    (SQLite) rebuilds the database file afterwards (store/erasure.checkpoint)."""
    now = now or datetime.now(UTC)
    address = normalise_address(address)
    done = Erasure(signer.address_hash(address))
    erased: list[int] = []
    emails: set[UUID] = set()
    parties: set[erasure.Party] = set()
    while True:
        with writing(engine) as conn:
            erasure.secure(conn)
            ids = subjectrows.delivery_ids(conn, address, 0, batch)
            if not ids:
                break
            gone, touched, counted = erasure.erase_copies(conn, address, ids)
            tally.recount(conn, touched, settings, now)
        erased += ids
        emails |= touched
        parties |= counted
        done.add("deliveries", len(ids))
        done.add("events", gone)
        # Their hits in the journal and spool now, batch by batch: the journal names a
        # copy only by its id, which a run cut short and started again no longer knows.
        done.add("journal_hits", erasure.journal_hits(settings.journal_file, ids))
        spooled, busy = erasure.spooled_hits(settings.journal_spool_dir, ids)
        done.add("spooled_hits", spooled)
        done.add("spool_files_busy", busy)
    while True:
        with writing(engine) as conn:
            erasure.secure(conn)
            gone, touched = erasure.erase_replies(conn, address, batch * 10)
            if not gone:
                break
            tally.rebuild(conn, touched, settings, now)
        done.add("replies", gone)
    attachments = AttachmentFiles(settings.attachment_dir)
    for chunk in _chunks(sorted(emails, key=lambda u: u.bytes), batch):
        with writing(engine) as conn:
            erasure.secure(conn)
            deleted, files = erasure.delete_emails(conn, erasure.bare_emails(conn, chunk))
        done.add("emails_deleted", deleted)
        for attachment_id, sha in files:
            done.add("attachment_files", attachments.remove(attachment_id, sha))
    with writing(engine) as conn:
        erasure.secure(conn)
        found = erasure.erase_parties(conn, address)
        rescore.rescore(conn, parties | set(found["rescore"]), weights_of(settings), now)
        for name in ("contacts", "leads", "accounts_deleted", "accounts_kept"):
            done.add(name, found[name])
        kept = donottrack.entry(conn, done.address_hash) is not None
        if found["opted_out"] and not kept:
            kept = donottrack.add(conn, done.address_hash, source, now)
        done.counts["donottrack_kept"] = int(kept)
    removed, rewritten, busy = outbound_copies(settings.data_dir / "outbound", address, set(erased))
    done.add("outbound_removed", removed)
    done.add("outbound_rewritten", rewritten)
    done.add("outbound_busy", busy)
    done.counts["vacuumed"] = int(erasure.checkpoint(engine, vacuum=vacuum))
    with writing(engine) as conn:  # last: the record says what was done, all of it
        details = dict(done.counts)
        audit.record(
            conn, "privacy.erase", actor=actor, subject=done.address_hash, details=details, at=now
        )
    return done


def _entries(root: Path) -> Iterator[tuple[Path, Path]]:
    """(envelope, message) of each outbound entry, ready, pending or set aside."""
    for directory in (root, root / "failed"):
        if not directory.is_dir():
            continue
        for envelope in sorted(directory.iterdir()):
            if envelope.suffix in (".json", ".pending") and not envelope.name.startswith("."):
                yield envelope, envelope.with_suffix(".eml")


def outbound_copies(root: Path, address: str, delivery_ids: set[int]) -> tuple[int, int, int]:
    """Outbound entries (mail/outbound.py's layout) queued to `address`: an entry whose
    every recipient is it (its own tracked copy), or a bounce whose message names it, is
    deleted (it will not be sent); an entry for several recipients loses it from its
    envelope (its message bytes, DKIM-signed, stay as submitted). An entry a relay worker
    is sending right now is left (counted busy). (removed, rewritten, busy)."""
    removed = rewritten = busy = 0
    needle = address.encode()
    for envelope, message in _entries(root):
        try:
            data = json.loads(envelope.read_bytes())
            body = message.read_bytes() if message.is_file() else b""
        except (OSError, ValueError):
            continue
        rcpts = data.get("rcpts", [])
        mine = [
            r
            for r in rcpts
            if r.get("delivery_id") in delivery_ids
            or str(r.get("address", "")).strip().lower() == address
        ]
        names_it = bool(data.get("bounce")) and needle in body.lower()
        if not mine and not names_it:
            continue
        with _claimed(message) as ok:
            if not ok:
                busy += 1
                continue
            if names_it or len(mine) == len(rcpts):
                for path in (envelope, message):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                fsync_dir(envelope.parent)
                removed += 1
            else:
                data["rcpts"] = [r for r in rcpts if r not in mine]
                write_atomic(envelope, json.dumps(data, separators=(",", ":")).encode())
                rewritten += 1
    return removed, rewritten, busy


@contextlib.contextmanager
def _claimed(message: Path) -> Iterator[bool]:
    """Hold an entry as a relay worker does (flock on its message); False when held."""
    try:
        fd = os.open(message, os.O_RDONLY)
    except FileNotFoundError:
        yield True  # an envelope without its message: nobody can be sending it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
