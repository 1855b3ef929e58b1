"""The failure limiter (throttle.py) on its own, in memory and in its shared file: the
relay's AUTH (tests/mail/test_auth.py) and the panel's sign-in use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailsignal.throttle import FailureLimiter

REP = "rep@northwind.test"
USER, ATTACKER = "127.0.0.1", "127.0.0.2"


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def limiter(path: Path | None, now: Now, **kw: Any) -> FailureLimiter:
    return FailureLimiter(clock=now, path=path, **kw)


@pytest.fixture(params=["file", "memory"])
def made(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    path = tmp_path / "failures.json" if request.param == "file" else None
    return lambda now, **kw: limiter(path, now, **kw)


def test_failures_lock_the_pair_not_the_login(made: Any) -> None:
    now = Now()
    lim = made(now)
    for _ in range(4):
        lim.failed(ATTACKER, REP)
    assert not lim.locked(ATTACKER, REP)
    lim.failed(ATTACKER, REP)
    assert lim.locked(ATTACKER, REP)
    assert not lim.locked(USER, REP)  # the user's own address: never locked by others
    assert not lim.locked(ATTACKER, "other@northwind.test")  # the address: not yet


def test_an_address_guessing_many_logins_is_locked(made: Any) -> None:
    now = Now()
    lim = made(now)
    for n in range(19):
        lim.failed(ATTACKER, f"guess{n}@northwind.test")
    assert not lim.locked(ATTACKER, "fresh@northwind.test")
    lim.failed(ATTACKER, "guess19@northwind.test")
    assert lim.locked(ATTACKER, "fresh@northwind.test")  # any login from there
    assert not lim.locked(USER, "fresh@northwind.test")


def test_each_failure_after_a_lock_doubles_it_up_to_the_cap(made: Any) -> None:
    now = Now()
    lim = made(now, first_lock=60, max_lock=400, forget=3600)
    for _ in range(5):
        lim.failed(ATTACKER, REP)
    expected = [60, 120, 240, 400, 400]  # doubling, then the cap
    for lock in expected:
        now.t += lock - 1
        assert lim.locked(ATTACKER, REP), lock
        now.t += 1
        assert not lim.locked(ATTACKER, REP), lock
        lim.failed(ATTACKER, REP)  # the guesser tries again as soon as it may
    # A long quiet spell forgets the pair: the next typo is not punished for old ones.
    now.t += 3600
    lim.failed(ATTACKER, REP)
    assert not lim.locked(ATTACKER, REP)


def test_a_good_login_clears_its_pair_but_not_its_address(made: Any) -> None:
    now = Now()
    lim = made(now)
    for n in range(4):
        lim.failed(USER, REP)
        lim.failed(USER, f"guess{n}@northwind.test")
    lim.succeeded(USER, REP)
    for _ in range(4):
        lim.failed(USER, REP)
    assert not lim.locked(USER, REP)  # counting started again
    for n in range(8):
        lim.failed(USER, f"more{n}@northwind.test")
    assert lim.locked(USER, "new@northwind.test")  # 4 + 4 + 4 + 8 = 20 from the address


def test_an_ipv6_client_counts_as_its_64(made: Any) -> None:
    now = Now()
    lim = made(now)
    for n in range(5):
        lim.failed(f"2001:db8:1:2::{n + 1:x}", REP)  # hopping inside one /64
    assert lim.locked("2001:db8:1:2:ffff::9", REP)
    assert not lim.locked("2001:db8:1:3::1", REP)  # the next /64 is someone else
    for _ in range(5):
        lim.failed("::ffff:192.0.2.7", REP)  # an IPv4 client on a dual-stack socket
    assert lim.locked("192.0.2.7", REP)


def test_the_file_is_shared_names_nobody_and_survives_garbage(tmp_path: Path) -> None:
    now = Now()
    path = tmp_path / "failures.json"
    a, b = limiter(path, now, login_limit=2), limiter(path, now, login_limit=2)
    a.failed(ATTACKER, REP)
    assert not b.locked(ATTACKER, REP)
    b.failed(ATTACKER, REP)
    assert a.locked(ATTACKER, REP)  # counted across processes
    text = path.read_text()
    assert REP not in text and ATTACKER not in text  # keys are hashed
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(b"{not json")
    assert not a.locked(ATTACKER, REP)  # unreadable counts as empty, never as an error
    # The format before 0.x: {key: [failure times]}, keyed by address or login.
    path.write_text(json.dumps({ATTACKER: [now.t] * 9, REP: [now.t, now.t]}))
    assert not a.locked(ATTACKER, REP)
    a.failed(ATTACKER, REP)
    a.failed(ATTACKER, REP)
    assert b.locked(ATTACKER, REP)  # counting starts again in a rewritten file
    assert len(json.loads(path.read_text())) == 2  # the old entries are gone


def test_the_file_keeps_the_most_recent_guessers(tmp_path: Path) -> None:
    now = Now()
    path = tmp_path / "failures.json"
    lim = limiter(path, now, max_keys=6)
    for n in range(5):
        now.t += 1
        lim.failed(f"10.0.0.{n}", REP)  # two keys each: the pair and the address
    assert len(json.loads(path.read_text())) == 6
    assert all(v[1] >= now.t - 2 for v in json.loads(path.read_text()).values())
