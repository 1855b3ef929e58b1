"""Relay AUTH: failures limited per (login, client address) and per address, with backoff,
never per login alone; a session's user disabled or key revoked after AUTH can send no
more. The limiter on its own, then the real relay (aiosmtpd) with real smtplib clients
from different loopback addresses (127.0.0.2 is as local as 127.0.0.1)."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from mail.test_relay import BUYER, REP, Clock, Relay, Upstream, make_cert, sales_email
from mailsignal.mail.auth import FailureLimiter
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.db import writing

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


# --- the real relay ----------------------------------------------------------------------


@pytest.fixture
def world(
    tmp_path: Path, settings: Settings, engine: Engine
) -> Iterator[tuple[Settings, Upstream, dict[str, str]]]:
    """A rep with a key, a contact, a TLS certificate and a running smarthost."""
    cert, key = make_cert(tmp_path)
    upstream = Upstream(tmp_path / "upstream").start()
    with engine.begin() as conn:
        keys = {REP: users.create_api_key(conn, users.add(conn, "Rep", REP, opt_in=True))}
        parties.add(conn, "contact", "Dana Buyer", BUYER)
    update = {"relay_tls_cert": cert, "relay_tls_key": key, "smarthost_security": "none"}
    update["smarthost"] = f"127.0.0.1:{upstream.port}"
    yield settings.model_copy(update=update), upstream, keys
    upstream.stop()


@pytest.fixture
def relay(world: Any, engine: Engine) -> Iterator[tuple[Relay, Clock]]:
    clock = Clock()
    relay = Relay(world[0], engine, clock).start()
    yield relay, clock
    relay.stop()


def client_from(relay: Relay, cert: Path, source: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", relay.port, timeout=30, source_address=(source, 0))
    client.starttls(context=ssl.create_default_context(cafile=str(cert)))
    client.ehlo()
    return client


def attempt(client: smtplib.SMTP, login: str, key: str) -> int:
    """AUTH PLAIN on an open session; the reply code."""
    client.user, client.password = login, key
    try:
        return client.auth("PLAIN", client.auth_plain)[0]
    except smtplib.SMTPAuthenticationError as exc:
        return exc.smtp_code


def test_an_attacker_elsewhere_cannot_lock_the_user_out(
    relay: tuple[Relay, Clock], world: Any
) -> None:
    server, _clock = relay
    settings, upstream, keys = world
    cert = settings.relay_tls_cert
    with client_from(server, cert, ATTACKER) as attacker:
        codes = [attempt(attacker, REP, f"msk_{n:012x}_wrong") for n in range(8)]
        assert codes == [535] * 5 + [454] * 3
        assert attempt(attacker, REP, keys[REP]) == 454  # even the right key, from there
    with client_from(server, cert, USER) as user:
        assert attempt(user, REP, keys[REP]) == 235
        assert user.sendmail(REP, [BUYER], sales_email()) == {}
    server.settle()
    assert len(upstream.to(BUYER)) == 1


def test_the_lock_doubles_with_each_failure_after_it(
    relay: tuple[Relay, Clock], world: Any
) -> None:
    server, clock = relay
    settings, _upstream, keys = world
    with client_from(server, settings.relay_tls_cert, ATTACKER) as attacker:
        for _ in range(5):
            assert attempt(attacker, REP, "msk_000000000000_wrong") == 535
        assert attempt(attacker, REP, keys[REP]) == 454
        clock.now += 61  # the first lock (a minute) is over: one more guess
        assert attempt(attacker, REP, "msk_000000000000_wrong") == 535
        clock.now += 61
        assert attempt(attacker, REP, keys[REP]) == 454  # now two minutes
        clock.now += 60
        assert attempt(attacker, REP, keys[REP]) == 235


def _expect_refused_at_mail(client: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail(REP, [BUYER], sales_email())
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (550, b"5.7.1")
    assert b"disabled or its API key was revoked" in refused.value.smtp_error


def test_a_session_ends_when_its_user_is_disabled(
    relay: tuple[Relay, Clock], world: Any, engine: Engine
) -> None:
    server, _clock = relay
    settings, upstream, keys = world
    cert = settings.relay_tls_cert
    with client_from(server, cert, USER) as client:
        assert attempt(client, REP, keys[REP]) == 235
        assert client.sendmail(REP, [BUYER], sales_email("<before@northwind.test>")) == {}
        with writing(engine) as conn:
            users.set_disabled(conn, users.by_address(conn, REP)["systemuserid"], True)
        _expect_refused_at_mail(client)
    with client_from(server, cert, USER) as client:
        assert attempt(client, REP, keys[REP]) == 535  # and no new session either
    with writing(engine) as conn:
        users.set_disabled(conn, users.by_address(conn, REP)["systemuserid"], False)
    with client_from(server, cert, USER) as client:
        assert attempt(client, REP, keys[REP]) == 235
        assert client.sendmail(REP, [BUYER], sales_email("<after@northwind.test>")) == {}
    server.settle()
    assert len(upstream.to(BUYER)) == 2


def test_a_session_ends_when_its_key_is_revoked(
    relay: tuple[Relay, Clock], world: Any, engine: Engine
) -> None:
    server, _clock = relay
    settings, _upstream, keys = world
    with engine.begin() as conn:
        second = users.create_api_key(conn, users.by_address(conn, REP)["systemuserid"], "2nd")
    cert = settings.relay_tls_cert
    with client_from(server, cert, USER) as client, client_from(server, cert, USER) as other:
        assert attempt(client, REP, keys[REP]) == 235
        assert attempt(other, REP, second) == 235
        with engine.begin() as conn:
            users.revoke_api_keys(conn, [users.key_prefix(keys[REP])])
        _expect_refused_at_mail(client)
        assert other.sendmail(REP, [BUYER], sales_email()) == {}  # its own key is live
