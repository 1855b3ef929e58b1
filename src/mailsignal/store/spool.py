"""The journal's spool: hits the journal could not take, kept durably on another path.

Why: a tracking request is answered even when the journal's disk is full or failing (a
person's click must reach its page), so the hit has to be kept somewhere else until the
journal can take it. When a group commit fails, the writer appends the batch's rows to
its spool file (write + fsync, then answer), and later moves each file into the journal
in one transaction that also records the file's name (store/journal.py), so a file is
journaled exactly once even if the process dies between that commit and the unlink.

Several processes (server workers) may share one spool directory, so files are guarded
with `flock`, which the kernel releases when a process dies:
- a writer creates its file under a dot-name, locks it, then renames it into view, so no
  other process ever sees a file whose owner has not locked it yet;
- a file is claimable only while nobody holds its lock: its writer sealed it (rotation,
  a retry, shutdown) or died. A claimer takes the lock without waiting, then checks the
  name still names the same file: a claimer that journaled it unlinks it before releasing
  the lock, so a late claimer that opened it earlier finds it gone and skips it.

Files are mode 0600 in a 0700 directory: they hold IP addresses and user agents.
One JSON array per line; a line without its newline is a write torn by a crash before
its fsync, so no request was answered for it and it is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HitRow = tuple[float, int, int, int | None, str, str, str, str]
SUFFIX = ".spool"
# A sealed file is journaled in one transaction: bound it so replay stays a modest write.
ROTATE_ROWS = 20_000


@dataclass(slots=True)
class SpoolFile:
    """A claimed file: locked by this process until `Spool.release`."""

    name: str
    path: Path
    rows: list[HitRow]
    bad_lines: int
    fd: int


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse(data: bytes) -> tuple[list[HitRow], int]:
    """The rows of a spool file's bytes, and how many complete lines were unreadable."""
    rows: list[HitRow] = []
    bad = 0
    lines = data.split(b"\n")
    for line in lines[:-1]:  # the last piece is empty, or a torn, unanswered write
        try:
            value = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(value, list) and len(value) == 8:
            rows.append(tuple(value))
        else:
            bad += 1
    return rows, bad


def read(path: Path) -> list[HitRow]:
    """Every row of one spool file (for inspection; replay goes through `claims`)."""
    return parse(path.read_bytes())[0]


class Spool:
    """One process's writer into a shared spool directory, and its claimer of files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
        self.last_error = ""
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._rows = 0

    def append(self, rows: list[HitRow]) -> bool:
        """Write rows durably. False when they are not on disk (the reason in last_error)."""
        data = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        try:
            fd = self._fd if self._fd is not None else self._create()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            self.last_error = exc.strerror or type(exc).__name__
            self._abandon_write()
            return False
        self._size += len(data)
        self._rows += len(rows)
        if self._rows >= ROTATE_ROWS:
            self.seal()
        return True

    def _create(self) -> int:
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        hidden = self.dir / f".{name}.tmp"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(hidden, self.dir / (name + SUFFIX))
            _fsync_dir(self.dir)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(hidden)
            raise
        self._fd, self._size, self._rows, self._path = fd, 0, 0, self.dir / (name + SUFFIX)
        return fd

    def _abandon_write(self) -> None:
        """Cut a failed write off and seal the file, so no later line follows a torn one."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
            if self._size == 0 and self._path is not None:  # nothing answered lives in it
                os.unlink(self._path)
        except OSError:
            log.exception("could not cut a failed write off a spool file")
        self.seal()

    def seal(self) -> None:
        """Stop appending to the current file and release it to any claimer."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def pending(self) -> int:
        """Spool files not yet journaled, this process's open one included."""
        try:
            with os.scandir(self.dir) as entries:
                return sum(1 for e in entries if e.name.endswith(SUFFIX))
        except OSError:
            return 0

    def claims(self) -> Iterator[SpoolFile]:
        """Lock and read each claimable file, oldest first; `release` each one yielded."""
        try:
            names = sorted(e.name for e in os.scandir(self.dir) if e.name.endswith(SUFFIX))
        except OSError:
            return
        for name in names:
            claimed = self._claim(self.dir / name)
            if claimed is not None:
                yield claimed

    def _claim(self, path: Path) -> SpoolFile | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            now, mine = os.stat(path), os.fstat(fd)
            if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
                raise FileNotFoundError(path)
            with os.fdopen(os.dup(fd), "rb") as fh:
                rows, bad = parse(fh.read())
        except OSError:  # locked by its writer or a claimer, or already journaled
            os.close(fd)
            return None
        return SpoolFile(path.name.removesuffix(SUFFIX), path, rows, bad, fd)

    @staticmethod
    def release(claimed: SpoolFile, journaled: bool) -> None:
        """Unlink a journaled file, then unlock it (in that order: see the module doc)."""
        try:
            if journaled:
                os.unlink(claimed.path)
        finally:
            os.close(claimed.fd)
