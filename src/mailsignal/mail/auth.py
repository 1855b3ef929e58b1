"""SMTP AUTH for the relay: the user's address as login, one of their API keys as password.

No second password table: an API key already names a user, can be revoked, and records
its last use. Failed attempts are counted per client address and per login in a sliding
window; past the limit every attempt is refused with a temporary 454 until the window
slides on, and each failure is answered only after a short delay, which together make
guessing a 256-bit key hopeless and keep a scripted guesser from costing much.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


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
    """Counts failures per key (client IP, login) within `window` seconds."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures[key]
        cutoff = self.clock() - self.window
        while times and times[0] < cutoff:
            times.popleft()
        if not times:
            del self._failures[key]  # keep the map as small as the set of active guessers
            return deque()
        return times

    def blocked(self, *keys: str) -> bool:
        return any(len(self._recent(k)) >= self.limit for k in keys if k)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            if key:
                self._failures[key].append(now)


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
