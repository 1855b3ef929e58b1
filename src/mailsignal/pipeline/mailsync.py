"""Read each rep's mailbox (or a file of messages) and store what it holds, batch by batch.

A batch is fetched, then stored and its folder cursor advanced in one transaction, so a
server that drops the connection mid-fetch, or a crash, loses at most the batch in
flight, and that batch is fetched again next run; re-storing is harmless anyway
(`hitid`). A changed UIDVALIDITY means the server renumbered the folder: the cursor goes
back to 0 and everything is read again, which stores nothing twice for the same reason.

`MailSession` is the interface this layer needs from an IMAP client; `mail.imap` has the
real implementation (imaplib) and a fake, so this module never touches a socket.
Reply matching and storing is replies.py's.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

from sqlalchemy import Engine

from ..errors import MailSignalError
from ..keyring import Keyring
from ..settings import Settings
from ..store import mailboxes as stored
from .mailboxes import MailAccount, account, list_mailboxes
from .replies import IncomingMessage, Outcome, SyncSummary, store_messages

__all__ = [
    "Connector",
    "Fetched",
    "IncomingMessage",
    "MailSession",
    "Outcome",
    "SyncSummary",
    "import_messages",
    "sync_all",
    "sync_mailbox",
]

BATCH = 25  # messages per fetch and per transaction: small enough to lose little on a drop
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    raw: bytes
    internaldate: datetime | None = None


class MailSession(Protocol):
    """One logged-in IMAP connection. Every method raises MailSignalError on failure."""

    def select(self, folder: str) -> int:
        """Open the folder read-only (flags stay untouched); return its UIDVALIDITY."""
        ...

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending."""
        ...

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """These messages, whole (a message deleted meanwhile is simply missing)."""
        ...

    def close(self) -> None: ...


Connector = Callable[[MailAccount], MailSession]


def _batches(items: Iterable[IncomingMessage], size: int) -> Iterator[list[IncomingMessage]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def import_messages(
    engine: Engine,
    settings: Settings,
    messages: Iterable[IncomingMessage],
    *,
    batch: int = 200,
    progress: Progress | None = None,
) -> SyncSummary:
    """Store messages from files (.eml, mbox); each batch is its own transaction."""
    summary = SyncSummary()
    for chunk in _batches(messages, batch):
        with engine.begin() as conn:
            summary.add(store_messages(conn, chunk, settings))
        if progress:
            progress("import", summary.read, 0)
    return summary


def sync_mailbox(
    engine: Engine,
    settings: Settings,
    keyring: Keyring,
    user_id: uuid.UUID,
    connect: Connector,
    *,
    full: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> SyncSummary:
    """Read the new messages of one rep's folders; errors end up in the summary."""
    summary = SyncSummary()
    try:  # a secret that no longer decrypts, or a server that refuses us, stops this one only
        with engine.begin() as conn:
            mail_account = account(conn, keyring, user_id)
            state = stored.cursor(conn, user_id)
        session = connect(mail_account)
    except MailSignalError as exc:
        return _stop(engine, user_id, summary, exc.message)
    reader = _Reader(engine, settings, session, mail_account, batch, progress, summary)
    try:
        for folder in mail_account.folders:
            reader.read(folder, state.get(folder) or {}, full)
    except MailSignalError as exc:
        return _stop(engine, user_id, summary, exc.message)
    finally:
        with contextlib.suppress(MailSignalError, OSError):
            session.close()
    with engine.begin() as conn:
        stored.finish(conn, user_id, None, datetime.now(UTC))
    return summary


@dataclass(slots=True)
class _Reader:
    """What reading each folder of one mailbox needs."""

    engine: Engine
    settings: Settings
    session: MailSession
    account: MailAccount
    batch: int
    progress: Progress | None
    summary: SyncSummary

    def read(self, folder: str, saved: dict[str, int], full: bool) -> None:
        validity = self.session.select(folder)
        last = 0 if full else int(saved.get("lastuid", 0))
        if saved and saved.get("uidvalidity") != validity:
            self.summary.notes.append(
                f"{self.account.address} {folder}: UIDVALIDITY changed "
                f"({saved.get('uidvalidity')} -> {validity}); the folder is read again and "
                "replies already stored are recognised"
            )
            last = 0
        uids = [u for u in self.session.uids_after(last) if u > last]  # "n:*" can return n
        user = self.account.user_id
        if not uids:  # still record the UIDVALIDITY, so a later change is noticed
            with self.engine.begin() as conn:
                stored.advance(conn, user, folder, validity, last)
            return
        for i in range(0, len(uids), self.batch):
            chunk = uids[i : i + self.batch]
            fetched = self.session.fetch(chunk)
            incoming = [
                IncomingMessage(f.raw, f"{folder} UID {f.uid}", f.internaldate) for f in fetched
            ]
            with self.engine.begin() as conn:  # events and cursor move together, or neither
                self.summary.add(store_messages(conn, incoming, self.settings))
                stored.advance(conn, user, folder, validity, max(chunk))
            if self.progress:
                self.progress(f"{self.account.address} {folder}", i + len(chunk), len(uids))


def _stop(engine: Engine, user_id: uuid.UUID, summary: SyncSummary, error: str) -> SyncSummary:
    summary.failed = error
    with engine.begin() as conn:
        stored.finish(conn, user_id, error[:2000], datetime.now(UTC))
    return summary


def sync_all(
    engine: Engine,
    settings: Settings,
    keyring: Keyring,
    connect: Connector,
    *,
    address: str | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> list[tuple[str, SyncSummary]]:
    """Sync every configured mailbox (or one rep's); one failing mailbox stops only itself."""
    with engine.begin() as conn:
        targets = [(m["address"], m["systemuserid"]) for m in list_mailboxes(conn, address)]
    return [
        (addr, sync_mailbox(engine, settings, keyring, uid, connect, full=full, progress=progress))
        for addr, uid in targets
    ]
