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


# --- the aggregate open pixel (issue 13) -------------------------------------------------

DANA, LEE, KIM = "dana@contoso.fr", "lee@fabrikam.fr", "kim@adatum.fr"


def _consent_send(
    engine: Engine, settings: Settings, to: list[str], **update: object
) -> outgoing.TrackedEmail:
    """Send the HTML email under the consent basis (with `update` on the settings), KIM
    having consented."""
    from mailsignal.pipeline import consent as consents
    from mailsignal.store import users

    # One copy lacking consent may get the aggregate pixel here: the threshold's own test
    # says otherwise.
    strict = settings.model_copy(
        update={"tracking_basis": "consent", "aggregate_opens_min_copies": 1, **update}
    )
    signer = Signer(*load_keyring(settings.secret_file))
    with writing(engine) as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            add_rep(conn)
            given = consents.check(KIM, None, "api", "I agree.", "v1", "en")
            consents.record(conn, signer, given, actor="cli")
        msg = outgoing.build_message("rep@northwind.test", to, "Hi", HTML, "Hello")
        service = outgoing.Outgoing.from_settings(strict, signer)
        return service.track(conn, msg, sender="rep@northwind.test", recipients=to)


def test_a_copy_untracked_for_want_of_consent_carries_one_aggregate_pixel(
    engine: Engine, settings: Settings
) -> None:
    from helpers import tracked_urls
    from mailsignal.model import TokenKind
    from mailsignal.store.schema import aggregatepixel
    from mailsignal.urls import parse_url

    signer = Signer(*load_keyring(settings.secret_file))
    sent = _consent_send(engine, settings, [DANA, LEE, KIM], aggregate_opens=True)
    with engine.connect() as conn:
        pixels = conn.execute(select(aggregatepixel)).mappings().all()
    assert [(p["emailactivityid"], p["opencount"]) for p in pixels] == [(sent.activity_id, 0)]
    by_address = {c.recipient: c for c in sent.copies}
    aggregate_urls = set()
    for address in (DANA, LEE):
        copy = by_address[address]
        assert copy.decision.reasons == ("recipient.no_consent",)
        urls = tracked_urls(copy.message)
        assert len(urls) == 1 and urls[0].endswith(".gif"), urls  # no click, no other pixel
        found = parse_url(urls[0])
        assert found is not None
        claims = signer.verify(found[0])
        assert claims.kind is TokenKind.AGGREGATE_OPEN
        assert claims.delivery_id == pixels[0]["pixelid"]  # the email's pixel, no copy's
        aggregate_urls.add(urls[0])
        body = copy.message.get_body(("html",))
        assert body is not None
        html = str(body.get_content())
        assert "/k/" in html  # the consent request line stays
        assert "/p/" not in html
    assert len(aggregate_urls) == 1  # the same URL in both: nothing tells them apart
    tracked = by_address[KIM]
    assert tracked.decision.tracked
    kinds = []
    for url in tracked_urls(tracked.message):
        found = parse_url(url)
        assert found is not None
        kinds.append(signer.verify(found[0]).kind)
    assert TokenKind.OPEN in kinds and TokenKind.AGGREGATE_OPEN not in kinds
    # Another email has a pixel of its own: counts are per email.
    again = _consent_send(engine, settings, [DANA], aggregate_opens=True)
    assert not again.replayed
    assert tracked_urls(again.copies[0].message)[0] not in aggregate_urls
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(aggregatepixel)).scalar_one() == 2


def test_no_aggregate_pixel_without_the_setting_or_for_other_reasons(
    engine: Engine, settings: Settings
) -> None:
    """Setting off: the untracked copy has no pixel at all. Under `off`, or when the
    sender has not opted in, nobody gets one either (off means off; a sender who did
    not opt in asked for no measuring)."""
    from helpers import tracked_urls
    from mailsignal.store import users
    from mailsignal.store.schema import aggregatepixel

    plain = _consent_send(engine, settings, [DANA])
    assert plain.copies[0].decision.reasons == ("recipient.no_consent",)
    assert tracked_urls(plain.copies[0].message) == []
    off = _consent_send(
        engine, settings, [DANA], aggregate_opens=True, tracking_basis_rules=["*=off"]
    )
    assert "org.basis_off" in off.copies[0].decision.reasons
    assert tracked_urls(off.copies[0].message) == []
    with writing(engine) as conn:
        users.add(conn, "Nova", "nova@northwind.test", opt_in=False)
    signer = Signer(*load_keyring(settings.secret_file))
    strict = settings.model_copy(
        update={
            "tracking_basis": "consent",
            "aggregate_opens": True,
            "aggregate_opens_min_copies": 1,
        }
    )
    with writing(engine) as conn:
        msg = outgoing.build_message("nova@northwind.test", [LEE], "Hi", HTML, None)
        nova = outgoing.Outgoing.from_settings(strict, signer).track(
            conn, msg, sender="nova@northwind.test", recipients=[LEE]
        )
    assert set(nova.copies[0].decision.reasons) == {"recipient.no_consent", "sender.not_opted_in"}
    assert tracked_urls(nova.copies[0].message) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(aggregatepixel)).scalar_one() == 0


def test_a_message_sent_again_gives_a_new_recipient_the_same_aggregate_pixel(
    engine: Engine, settings: Settings
) -> None:
    """A client sending each recipient apart (one Message-ID): one pixel for the email."""
    from helpers import tracked_urls
    from mailsignal.store.schema import aggregatepixel

    strict = settings.model_copy(
        update={
            "tracking_basis": "consent",
            "aggregate_opens": True,
            "aggregate_opens_min_copies": 1,
        }
    )
    service = outgoing.Outgoing.from_settings(strict, Signer(*load_keyring(settings.secret_file)))
    with writing(engine) as conn:
        add_rep(conn)
    pixels = []
    for to in (DANA, LEE):
        msg = outgoing.build_message(
            "rep@northwind.test", [to], "Hi", HTML, None, "<apart@northwind.test>"
        )
        with writing(engine) as conn:
            sent = service.track(conn, msg, sender="rep@northwind.test", recipients=[to])
        pixels += tracked_urls(sent.copies[0].message)
    assert sent.replayed and len(pixels) == 2 and pixels[0] == pixels[1]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(aggregatepixel)).scalar_one() == 1


def test_too_few_copies_lacking_consent_get_no_aggregate_pixel(
    engine: Engine, settings: Settings
) -> None:
    """With the default threshold (5), one-to-one mail and a mail to two people without
    consent carry no aggregate pixel: a count per email would say whose opens they are.
    Five get one."""
    from helpers import tracked_urls
    from mailsignal.store.schema import aggregatepixel

    few = _consent_send(
        engine, settings, [DANA, LEE], aggregate_opens=True, aggregate_opens_min_copies=5
    )
    assert all(tracked_urls(c.message) == [] for c in few.copies)
    five = [f"p{n}@client.test" for n in range(5)]
    many = _consent_send(engine, settings, five, aggregate_opens=True, aggregate_opens_min_copies=5)
    pixels = {u for c in many.copies for u in tracked_urls(c.message)}
    assert len(pixels) == 1 and next(iter(pixels)).endswith(".gif")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(aggregatepixel)).scalar_one() == 1
