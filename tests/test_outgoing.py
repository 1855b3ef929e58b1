"""`Outgoing.track` makes one email of one message (issue 11, item 10), on SQLite and
PostgreSQL, even when two transactions track it at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, func, select

from helpers import HTML, add_rep
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store.db import writing
from mailsignal.store.schema import email, emaildelivery
from mailsignal.tokens import Signer

RECIPIENTS = ["dana@contoso.test", "lee@fabrikam.test"]


def _track(
    engine: Engine,
    service: outgoing.Outgoing,
    hold: threading.Event | None = None,
    tracked: threading.Event | None = None,
) -> outgoing.TrackedEmail:
    msg = outgoing.build_message(
        "rep@northwind.test", RECIPIENTS, "Hi", HTML, None, "<once@northwind.test>"
    )
    with engine.begin() as conn:
        result = service.track(conn, msg, sender="rep@northwind.test", recipients=RECIPIENTS)
        if tracked is not None:
            tracked.set()
        if hold is not None:
            hold.wait(10)  # keep the transaction open while the other one tries
    return result


def test_a_second_transaction_waits_and_gets_the_first_email(
    engine: Engine, settings: Settings
) -> None:
    with writing(engine) as conn:
        add_rep(conn)
    service = outgoing.Outgoing(Signer(*load_keyring(settings.secret_file)), "http://t.test")
    hold, tracked = threading.Event(), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_track, engine, service, hold, tracked)
        assert tracked.wait(10)
        second = pool.submit(_track, engine, service)
        hold.set()
        a, b = first.result(timeout=30), second.result(timeout=30)
    assert not a.replayed and b.replayed
    assert a.activity_id == b.activity_id and a.tracking_id == b.tracking_id
    assert [c.delivery_id for c in a.copies] == [c.delivery_id for c in b.copies]
    assert [c.as_bytes() for c in a.copies] == [c.as_bytes() for c in b.copies]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(email)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(emaildelivery)).scalar_one() == 2


def test_migration_0008_keeps_the_first_of_duplicates_from_before(engine: Engine) -> None:
    """Emails recorded twice before 0008 stay; the first becomes the one a repeat finds."""
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import insert

    from mailsignal.model import new_id
    from mailsignal.store import sent
    from mailsignal.store.db import alembic_config
    from mailsignal.store.schema import email

    command.downgrade(alembic_config(engine), "0007")
    with engine.begin() as conn:
        rep = add_rep(conn)
        ids = [new_id(), new_id()]
        for n, activity_id in enumerate(ids):
            conn.execute(
                insert(email).values(
                    activityid=activity_id,
                    sender="rep@northwind.test",
                    ownerid=rep,
                    messageid="<old@northwind.test>",
                    createdon=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
                )
            )
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        found = sent.sent_at_of(conn, "rep@northwind.test", "<old@northwind.test>")
        rows = conn.execute(select(sent.sentmessage.c.emailactivityid)).scalars().all()
    assert rows == [ids[0]] and found is None  # no senton was given
