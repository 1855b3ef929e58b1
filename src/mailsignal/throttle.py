"""Failed sign-in attempts, counted per (client address, login) and per client address,
with a lock that doubles: the SMTP relay's AUTH and the panel's sign-in form both use it.

Never per login alone: someone guessing from elsewhere cannot lock the real user out of
their own address.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# A key's failures: how many, and when the last was (seconds on the limiter's clock).
_Entry = tuple[int, float]


class FailureLimiter:
    """AUTH failures per (client address, login) and per client address, with backoff.

    A pair is locked after `login_limit` failures, an address after `address_limit`
    (higher: an office behind one NAT address shares it, and the pair limit already
    stops guessing at one login). The first lock lasts `first_lock` seconds; every
    failure after a lock has lapsed doubles it, up to `max_lock`. A key is forgotten
    `forget` seconds after its last failure, and a successful login clears its pair
    (not its address: one good key must not buy more guesses at other logins).

    With `path` the counts live in that file, shared by every relay process on the host
    (`relay_workers`) and kept across restarts: each call takes an `flock` on it, reads
    it, and writes it back when something changed. Otherwise they live in this object.
    Keys are hashed, so the file names no address or login; it is small (only keys with
    a failure inside `forget`, at most `max_keys` of them) and read once or twice per
    AUTH attempt. A file that cannot be parsed counts as empty: the limit slows guessing
    down, it is not what keeps a 256-bit key safe.
    """

    def __init__(
        self,
        *,
        login_limit: int = 5,
        address_limit: int = 20,
        first_lock: float = 60.0,
        max_lock: float = 3600.0,
        forget: float = 86400.0,
        clock: Callable[[], float] | None = None,
        path: Path | None = None,
        max_keys: int = 10_000,
    ) -> None:
        self.login_limit, self.address_limit = login_limit, address_limit
        self.first_lock, self.max_lock, self.forget = first_lock, max_lock, forget
        # Wall time in the file: it outlives processes (and reboots).
        self.clock = clock or (time.time if path is not None else time.monotonic)
        self.path = path
        self.max_keys = max_keys
        self._failures: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(address: str, login: str) -> tuple[str, str]:
        """(the pair's key, the address's key), hashed. An IPv6 client counts as its /64:
        one host there has all of them to hop between."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            ip = None
        if isinstance(ip, ipaddress.IPv6Address):
            mapped = ip.ipv4_mapped  # an IPv4 client on a dual-stack socket
            address = str(mapped or ipaddress.ip_network(f"{ip}/64", strict=False))

        def key(*parts: str) -> str:
            return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

        return key("pair", address, login), key("address", address)

    def _locked_until(self, entry: _Entry | None, limit: int) -> float:
        if entry is None or entry[0] < limit:
            return 0.0
        count, last = entry
        return last + min(self.first_lock * 2.0 ** min(count - limit, 32), self.max_lock)

    def locked(self, address: str, login: str) -> bool:
        """Whether an attempt at `login` from `address` is refused without a check."""
        pair, wide = self._keys(address, login)
        now = self.clock()
        with self._state(write=False) as state:
            return (
                self._locked_until(state.get(pair), self.login_limit) > now
                or self._locked_until(state.get(wide), self.address_limit) > now
            )

    def failed(self, address: str, login: str) -> None:
        now = self.clock()
        with self._state(write=True) as state:
            for key in self._keys(address, login):
                count = state[key][0] if key in state else 0
                state[key] = (count + 1, now)
            if len(state) > self.max_keys:  # keep the most recent guessers
                by_age = sorted(state, key=lambda k: state[k][1])
                for key in by_age[: len(state) - self.max_keys]:
                    del state[key]

    def succeeded(self, address: str, login: str) -> None:
        pair, _wide = self._keys(address, login)
        with self._state(write=True) as state:
            state.pop(pair, None)

    @contextlib.contextmanager
    def _state(self, write: bool) -> Iterator[dict[str, _Entry]]:
        """The failures by key, without those forgotten; saved on exit when `write` and
        changed."""
        with self._lock:
            if self.path is None:
                self._failures = self._pruned(self._failures)
                yield self._failures
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                with os.fdopen(os.dup(fd), "r+b") as fh:
                    text = fh.read()
                    state = self._pruned(self._parse(text))
                    yield state
                    saved = json.dumps(state, separators=(",", ":")).encode()
                    if write and saved != text:
                        fh.seek(0)
                        fh.truncate()
                        fh.write(saved)
            finally:
                os.close(fd)  # closing the last descriptor releases the lock

    @staticmethod
    def _parse(text: bytes) -> dict[str, _Entry]:
        """{key: [count, last failure]} from the file; what is not that is dropped."""
        try:
            loaded = json.loads(text or b"{}")
        except ValueError:
            return {}
        if not isinstance(loaded, dict):
            return {}
        state: dict[str, _Entry] = {}
        for key, value in loaded.items():
            match value:
                case [int(count), int() | float() as last] if count > 0:
                    state[key] = (count, float(last))
        return state

    def _pruned(self, state: dict[str, _Entry]) -> dict[str, _Entry]:
        cutoff = self.clock() - self.forget
        return {k: v for k, v in state.items() if v[1] > cutoff}
