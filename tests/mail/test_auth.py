"""Relay AUTH: failures limited per (login, client address) and per address, with backoff,
never per login alone (the limiter itself: tests/test_throttle.py); a session's user
disabled or key revoked after AUTH can send no more. The real relay (aiosmtpd) with real
smtplib clients from different loopback addresses (127.0.0.2 is as local as 127.0.0.1)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from mail.test_relay import BUYER, REP, Clock, Relay, Upstream, make_cert, sales_email
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.store.db import writing

USER, ATTACKER = "127.0.0.1", "127.0.0.2"


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
