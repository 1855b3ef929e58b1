"""The durable outbound queue: one spool entry per SMTP transaction to the smarthost.

Layout under `<data_dir>/outbound/`::

    <id>.eml        the exact bytes to send (never rewritten)
    <id>.pending    the JSON envelope while the relay's database transaction is open
    <id>.json       the JSON envelope once the email is committed: ready to deliver
    failed/         entries that could not even be bounced (kept for an operator)

Why two envelope names: the relay must not answer 250 before the mail is both recorded
and safely queued, and must not send mail it never recorded. So it writes the files
as `.pending` inside the database transaction, commits, then renames them to `.json`.
A crash before the commit leaves `.pending` files whose email does not exist (the client
got no 250 and will resend): the worker deletes them. A crash after the commit leaves
`.pending` files whose email exists: the worker promotes them. Either way nothing
answered with 250 is lost and nothing unrecorded is sent.

Every file is written to a temporary name, fsynced and renamed (store/files.py). The
relay stages the entries of one message with `durable=False` and makes them durable with
one `sync`: their files are fsynced all at once (the filesystem commits them to its
journal together, where one fsync after the other waits for a journal commit each),
renamed, and the directory is fsynced once. A worker claims an entry with `flock` on its
`.eml`, so several relay processes can share one spool, and a killed worker's claim ends
with its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..store.files import fsync_dir, write_atomic

_FSYNC_THREADS = 8
_fsync_pool: ThreadPoolExecutor | None = None
_fsync_pool_lock = threading.Lock()


def _fsyncs() -> ThreadPoolExecutor:
    """Threads that wait on fsync (shared by every spool; idle threads cost nothing)."""
    global _fsync_pool
    with _fsync_pool_lock:
        if _fsync_pool is None:
            _fsync_pool = ThreadPoolExecutor(_FSYNC_THREADS, thread_name_prefix="spool-fsync")
        return _fsync_pool


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) with `data`, without fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class Rcpt:
    address: str
    delivery_id: int | None = None  # None for bounces: no delivery row behind them


@dataclass(slots=True)
class QueuedMessage:
    """A spool envelope: who sends to whom, and how delivery has gone so far."""

    id: str
    mail_from: str  # "" is the null reverse-path of a bounce
    rcpts: list[Rcpt]
    created: float
    deadline: float
    next_attempt: float
    options: list[str] = field(default_factory=list)  # MAIL options kept: SMTPUTF8, BODY=
    activity_id: str | None = None
    attempts: int = 0
    last_error: str = ""
    bounce: bool = False  # a bounce is never bounced in turn

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> QueuedMessage:
        data: dict[str, Any] = json.loads(raw)
        data["rcpts"] = [Rcpt(**r) for r in data["rcpts"]]
        return cls(**data)


class Spool:
    """The outbound directory. Methods are blocking; the relay calls them off the loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.failed_dir = root / "failed"
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        # Entries staged with durable=False: id -> [(temporary path, final path)].
        self._unsynced: dict[str, list[tuple[Path, Path]]] = {}
        self._lock = threading.Lock()

    def _path(self, entry_id: str, suffix: str) -> Path:
        if not entry_id or "/" in entry_id or entry_id.startswith("."):
            raise ValueError(f"bad spool id {entry_id!r}")
        return self.root / f"{entry_id}{suffix}"

    def stage(
        self,
        data: bytes,
        *,
        mail_from: str,
        rcpts: list[Rcpt],
        now: float,
        deadline: float,
        options: list[str] | None = None,
        activity_id: str | None = None,
        bounce: bool = False,
        durable: bool = True,
    ) -> str:
        """Write a `.pending` entry (no directory fsync: `sync` does it once for a batch).

        With `durable=False` the entry's files are written under temporary names only,
        neither fsynced nor named: `sync(ids)` does both for a batch of entries at once,
        and until then `discard` forgets the entry.
        """
        entry_id = f"{int(now * 1000):014d}-{uuid.uuid4().hex[:12]}"
        queued = QueuedMessage(
            entry_id,
            mail_from,
            rcpts,
            created=now,
            deadline=deadline,
            next_attempt=now,
            options=list(options or []),
            activity_id=activity_id,
            bounce=bounce,
        )
        if durable:
            write_atomic(self._path(entry_id, ".eml"), data, sync_dir=False)
            write_atomic(self._path(entry_id, ".pending"), queued.to_json(), sync_dir=False)
            return entry_id
        files: list[tuple[Path, Path]] = []
        try:
            for suffix, blob in ((".eml", data), (".pending", queued.to_json())):
                name = f"{entry_id}{suffix}"  # entry_id is made here: no need to check it
                files.append((self.root / f".{name}.tmp", self.root / name))
                _write_new(files[-1][0], blob)
        except BaseException:
            for tmp, _final in files:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
        with self._lock:
            self._unsynced[entry_id] = files
        return entry_id

    def sync(self, ids: Sequence[str] = ()) -> None:
        """Make staged entries durable: fsync the files of `ids` staged with
        `durable=False` all at once and name them, then fsync the directory."""
        with self._lock:
            files = [f for entry_id in ids for f in self._unsynced.pop(entry_id, [])]
        try:
            if len(files) > 1:
                list(_fsyncs().map(_fsync_file, [tmp for tmp, _final in files]))
            elif files:
                _fsync_file(files[0][0])
            for tmp, final in files:  # named only once every file is on disk
                os.replace(tmp, final)
        except BaseException:
            for tmp, _final in files:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
        fsync_dir(self.root)

    def commit(self, ids: list[str], *, durable: bool = True) -> None:
        """Make staged entries deliverable (after the database commit).

        `durable=False` leaves the renames to the filesystem's own pace: for entries
        whose email is in the database, a crash that undoes a rename leaves a `.pending`
        entry the worker promotes from the database (`Spool.pending`), so the relay
        need not wait for another directory fsync before its 250. Entries without an
        email behind them (bounces) must be committed durably.
        """
        with self._lock:
            unsynced = [entry_id for entry_id in ids if entry_id in self._unsynced]
        if unsynced:
            self.sync(unsynced)
        for entry_id in ids:
            os.replace(self._path(entry_id, ".pending"), self._path(entry_id, ".json"))
        if ids and durable:
            fsync_dir(self.root)

    def discard(self, ids: list[str]) -> None:
        """Forget staged entries (the transaction rolled back; the client gets a 4xx)."""
        with self._lock:
            files = [f for entry_id in ids for f in self._unsynced.pop(entry_id, [])]
        for tmp, _final in files:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        for entry_id in ids:
            for suffix in (".pending", ".eml"):
                with contextlib.suppress(FileNotFoundError):
                    self._path(entry_id, suffix).unlink()

    def ready(self) -> list[str]:
        """Ids of deliverable entries, oldest first."""
        return sorted(p.name[:-5] for p in self.root.glob("*.json") if not p.name.startswith("."))

    def pending(self, older_than: float) -> list[tuple[str, str | None]]:
        """(id, activity id) of `.pending` entries last touched before `older_than`."""
        found: list[tuple[str, str | None]] = []
        for path in self.root.glob("*.pending"):
            try:
                if path.stat().st_mtime < older_than:
                    found.append(
                        (path.stem, QueuedMessage.from_json(path.read_bytes()).activity_id)
                    )
            except (OSError, ValueError, TypeError, KeyError):
                continue
        return found

    def load(self, entry_id: str) -> QueuedMessage | None:
        try:
            return QueuedMessage.from_json(self._path(entry_id, ".json").read_bytes())
        except FileNotFoundError:
            return None

    def data(self, entry_id: str) -> bytes:
        return self._path(entry_id, ".eml").read_bytes()

    def save(self, queued: QueuedMessage) -> None:
        write_atomic(self._path(queued.id, ".json"), queued.to_json())

    def done(self, entry_id: str) -> None:
        """Delivered: remove the envelope first, so a crash never leaves it without data."""
        for suffix in (".json", ".eml"):
            with contextlib.suppress(FileNotFoundError):
                self._path(entry_id, suffix).unlink()

    def set_aside(self, entry_id: str, suffix: str = ".json") -> None:
        """Move an entry into failed/ for an operator; it is never deleted silently."""
        for name in (f"{entry_id}.eml", f"{entry_id}{suffix}"):
            with contextlib.suppress(FileNotFoundError):
                shutil.move(self.root / name, self.failed_dir / name)
        fsync_dir(self.failed_dir)
        fsync_dir(self.root)

    def failed(self) -> list[QueuedMessage]:
        out: list[QueuedMessage] = []
        for path in sorted(self.failed_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                out.append(QueuedMessage.from_json(path.read_bytes()))
        return out

    def requeue_failed(self, entry_id: str, now: float, deadline: float) -> bool:
        """Give a set-aside entry a fresh deadline and put it back in the queue."""
        path = self.failed_dir / f"{entry_id}.json"
        if not path.is_file() or not (self.failed_dir / f"{entry_id}.eml").is_file():
            return False
        queued = QueuedMessage.from_json(path.read_bytes())
        queued.next_attempt, queued.deadline, queued.attempts = now, deadline, 0
        shutil.move(self.failed_dir / f"{entry_id}.eml", self._path(entry_id, ".eml"))
        self.save(queued)
        path.unlink()
        return True

    @contextlib.contextmanager
    def claim(self, entry_id: str) -> Iterator[bool]:
        """Hold the entry exclusively; yields False when another worker holds it (or it's gone)."""
        try:
            fd = os.open(self._path(entry_id, ".eml"), os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock
