"""`WriterLock`: one SQLite writer at a time across threads and relay processes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

WRITER_LOCK_FILE = "relay-sqlite.lock"  # under data_dir


class WriterLock:
    """One writer at a time across this process's threads and every relay process.

    SQLite has one writer anyway; waiting here rather than in SQLite's busy handler
    (which polls, sleeping up to 100 ms between tries) hands the database over the
    moment the previous writer commits. `flock` excludes other processes (a killed
    process's lock ends with it), the thread lock this process's own threads, which
    share the descriptor and so the `flock`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
