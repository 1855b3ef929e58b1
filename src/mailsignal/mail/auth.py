"""SMTP AUTH for the relay: the user's address as login, one of their API keys as password.

No second password table: an API key already names a user, can be revoked, and records
its last use. Failed attempts are counted per client address and per login in a sliding
window; past the limit every attempt is refused with a temporary 454 until the window
slides on, and each failure is answered only after a short delay, which together make
guessing a 256-bit key hopeless and keep a scripted guesser from costing much. The relay
keeps the counts in a file under the data directory, so they hold across its worker
processes (`relay_workers`) and its restarts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AuthUser:
    """Who an SMTP session authenticated as (kept in aiosmtpd's `session.auth_data`)."""

    address: str
    role: str
    user_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class FailureLimiter:
    """Counts failures per key (client IP, login) within `window` seconds.

    With `path` the counts live in that file, shared by every relay process on the host
    (`relay_workers`) and kept across restarts: each call takes an `flock` on it, reads
    it, and a failure writes it back. Otherwise they live in this object. The file is
    small (only keys with a failure inside the window, at most `max_keys` of them) and
    is read once per AUTH attempt, so it costs nothing a client would notice. A file
    that cannot be parsed counts as empty: the limit slows guessing down, it is not
    what keeps a 256-bit key safe.
    """

    def __init__(
        self,
        limit: int = 5,
        window: float = 600.0,
        clock: Callable[[], float] | None = None,
        *,
        path: Path | None = None,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        # Wall time in the file: it outlives processes (and reboots).
        self.clock = clock or (time.time if path is not None else time.monotonic)
        self.path = path
        self.max_keys = max_keys
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _state(self, write: bool) -> Iterator[dict[str, list[float]]]:
        """The failure times by key, pruned of those outside the window; saved on exit
        when `write`."""
        with self._lock:
            if self.path is None:
                self._failures = self._pruned(self._failures)
                yield self._failures
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                with os.fdopen(os.dup(fd), "r+b") as fh:
                    try:
                        loaded = json.loads(fh.read() or b"{}")
                        state = self._pruned(
                            {str(k): [float(t) for t in v] for k, v in loaded.items()}
                        )
                    except (ValueError, TypeError, AttributeError):
                        state = {}
                    yield state
                    if write:
                        fh.seek(0)
                        fh.truncate()
                        fh.write(json.dumps(state, separators=(",", ":")).encode())
            finally:
                os.close(fd)  # closing the last descriptor releases the lock

    def _pruned(self, state: dict[str, list[float]]) -> dict[str, list[float]]:
        cutoff = self.clock() - self.window
        kept = {k: [t for t in v if t >= cutoff] for k, v in state.items()}
        return {k: v for k, v in kept.items() if v}

    def blocked(self, *keys: str) -> bool:
        with self._state(write=False) as state:
            return any(len(state.get(k, ())) >= self.limit for k in keys if k)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._state(write=True) as state:
            for key in keys:
                if key:
                    state.setdefault(key, []).append(now)
            if len(state) > self.max_keys:  # keep the most recent guessers
                by_age = sorted(state, key=lambda k: state[k][-1])
                for key in by_age[: len(state) - self.max_keys]:
                    del state[key]


def decode_plain(blob: bytes) -> tuple[str, str] | None:
    """(login, password) from a SASL PLAIN response "authzid\\0login\\0password"."""
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        return None
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        return None


def b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
