"""The relay under the `consent` tracking basis (issue 13), on SQLite and PostgreSQL: a
recipient without consent gets an untracked copy that ends with the consent request
line (its own entry, no tracking URL, no X-MailSignal-Id); one who also said
do-not-track gets the client's bytes as they came; one with a consent a tracked copy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from mail.test_relay import (  # noqa: F401 (fixtures)
    BUYER,
    PRIVATE,
    REP,
    Clock,
    Relay,
    clock,
    connect,
    sales_email,
    tracked_urls,
    world,
)
from mailsignal.keyring import load_keyring
from mailsignal.pipeline import consent
from mailsignal.tokens import Signer

CONSENTED = "kim@client.test"


def test_the_relay_asks_for_consent_and_tracks_who_gave_it(
    world: Any,  # noqa: F811 - the fixtures imported above
    engine: Engine,
    clock: Clock,  # noqa: F811 - the fixtures imported above
) -> None:
    settings, upstream, keys = world
    strict = settings.model_copy(update={"tracking_basis": "consent"})
    with engine.begin() as conn:
        given = consent.check(CONSENTED, None, "api", "Track my opens, please.")
        consent.record(conn, Signer(*load_keyring(settings.secret_file)), given, actor="cli")
    original = sales_email()
    relay = Relay(strict, engine, clock).start()
    try:
        with connect(relay, strict.relay_tls_cert, keys[REP]) as client:
            assert client.sendmail(REP, [BUYER, PRIVATE, CONSENTED], original) == {}
        relay.settle()
    finally:
        relay.stop()
    [asked] = upstream.to(BUYER)
    [private] = upstream.to(PRIVATE)
    [tracked] = upstream.to(CONSENTED)
    assert private == original  # do-not-track too: the client's bytes, never asked
    text = asked.decode()
    assert "/k/" in text and not tracked_urls(text) and "X-MailSignal-Id" not in text
    assert "Allow tracking of my email" in text
    assert tracked_urls(tracked.decode()) and "X-MailSignal-Id" in tracked.decode()
