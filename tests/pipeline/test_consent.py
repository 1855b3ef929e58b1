"""Consent mode end to end in one process (issue 13, "Consent mode"), on SQLite and
PostgreSQL: under `tracking_basis = consent` a recipient without consent gets an
untracked copy (`recipient.no_consent`) that carries the consent request line and no
tracking URL, and hits on copies sent earlier are dropped; once consent is recorded the
next copy is tracked and carries the withdrawal line even with tracking_notice_line
off; the stop-tracking opt-out withdraws it and stops recording for every earlier copy
at once. `off` tracks nobody and drops hits; domain rules pick the basis; the CSV
import records all or nothing and names the bad lines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from helpers import HTML, OUTLOOK, PERSON_IP, add_rep
from mailsignal import outgoing
from mailsignal.enrich import Pipeline
from mailsignal.errors import InputError
from mailsignal.keyring import load_keyring
from mailsignal.model import TokenKind
from mailsignal.pipeline import consent as service
from mailsignal.pipeline.donottrack import opt_out
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import consent, donottrack, users
from mailsignal.store import events as store_events
from mailsignal.store.journal import JournalWriter
from mailsignal.store.schema import auditrecord, consentrecord
from mailsignal.tokens import Signer

PIPELINE = Pipeline.default()
DANA, LEE = "dana@contoso.fr", "lee@fabrikam.test"


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _send(engine: Engine, settings: Settings, *to: str) -> Any:
    signer = _signer(settings)
    with engine.begin() as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            add_rep(conn)
        msg = outgoing.build_message("rep@northwind.test", list(to), "Hi", HTML, "Hello, see it")
        service_ = outgoing.Outgoing.from_settings(settings, signer)
        sent_at = datetime.now(UTC) - timedelta(hours=1)
        return service_.track(
            conn, msg, sender="rep@northwind.test", recipients=list(to), sent_at=sent_at
        )


def _open(settings: Settings, delivery: int, at: float) -> None:
    writer = JournalWriter(settings.journal_file)

    async def main() -> None:
        row = (at, int(TokenKind.OPEN), delivery, None, PERSON_IP, OUTLOOK, "GET", "{}")
        await writer.append(row)

    asyncio.run(main())
    writer.close()


def _stored(engine: Engine, activity: Any) -> int:
    with engine.connect() as conn:
        return len(store_events.of_email(conn, activity))


def _dropped(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {reason: hits for _day, reason, hits in donottrack.dropped(conn)}


def _record(engine: Engine, settings: Settings, address: str, source: str = "api") -> None:
    with engine.begin() as conn:
        given = service.check(address, None, source, "I agree to open tracking.", "v1", "en")
        service.record(conn, _signer(settings), given, actor="cli")


def _body(copy: Any) -> str:
    """The decoded text of every body part of a copy."""
    parts = copy.message.walk()
    return "\n".join(str(p.get_content()) for p in parts if p.get_content_maintype() == "text")


def test_consent_mode_from_no_consent_to_withdrawal(engine: Engine, settings: Settings) -> None:
    lax = settings.model_copy(update={"tracking_notice_line": False})
    strict = lax.model_copy(update={"tracking_basis": "consent"})
    # Sent earlier under legitimate interests: tracked.
    before = _send(engine, lax, DANA)
    assert before.copies[0].decision.tracked
    # Under consent, without consent: untracked, says why, asks, carries no tracking URL.
    first = _send(engine, strict, DANA)
    copy = first.copies[0]
    assert not copy.decision.tracked
    assert copy.decision.reasons == ("recipient.no_consent",)
    body = _body(copy)
    assert "/o/" not in body and "/c/" not in body and "/p/" not in body
    assert "Allow tracking of my email" in body and f"{settings.base_url}/k/" in body
    assert HTML.removesuffix("</body></html>") in body  # links kept byte for byte
    # Hits of the copy sent earlier are answered but not stored: no consent.
    ingestor = Ingestor(engine, strict, PIPELINE)
    now = datetime.now(UTC).timestamp()
    _open(settings, before.copies[0].delivery_id, now - 50)
    assert ingestor.drain() == 0
    assert _dropped(engine) == {"recipient.no_consent": 1}
    # Consent recorded: the next copy is tracked, with the withdrawal line (forced on).
    _record(engine, settings, DANA)
    second = _send(engine, strict, DANA)
    tracked = second.copies[0]
    assert tracked.decision.tracked
    assert "/o/" in _body(tracked) and "/p/" in _body(tracked) and "/k/" not in _body(tracked)
    _open(settings, tracked.delivery_id, now - 40)
    _open(settings, before.copies[0].delivery_id, now - 39)  # and the old copy counts again
    assert ingestor.drain() == 2
    # The recipient's stop link: consent withdrawn, every earlier copy stops recording.
    with engine.begin() as conn:
        opt_out(conn, _signer(settings), DANA, strict, source="link", actor="recipient")
    _open(settings, tracked.delivery_id, now - 20)
    _open(settings, before.copies[0].delivery_id, now - 10)
    assert ingestor.drain() == 0
    assert _stored(engine, second.activity_id) == 1 and _stored(engine, before.activity_id) == 1
    with engine.connect() as conn:
        assert consent.consented(conn, [_signer(settings).address_hash(DANA)]) == set()
        rows = conn.execute(select(consentrecord)).mappings().all()
        actions = conn.execute(select(auditrecord.c.action)).scalars().all()
    assert len(rows) == 1 and rows[0]["withdrawnon"] is not None  # kept, closed
    assert rows[0]["withdrawnsource"] == "link" and DANA not in str(dict(rows[0]))
    assert actions == ["recipient.consent", "recipient.optout"]
    third = _send(engine, strict, DANA).copies[0]
    assert third.decision.reasons == ("recipient.no_consent", "recipient.opted_out")
    assert "/k/" not in _body(third)  # who said stop is not asked again


def test_off_tracks_nobody_and_drops_hits(engine: Engine, settings: Settings) -> None:
    earlier = _send(engine, settings, DANA, LEE)
    off = settings.model_copy(update={"tracking_basis": "off"})
    now = _send(engine, off, DANA, LEE)
    assert [c.decision.reasons for c in now.copies] == [("org.basis_off",)] * 2
    assert all("/k/" not in _body(c) and "/o/" not in _body(c) for c in now.copies)
    t = datetime.now(UTC).timestamp()
    for c in earlier.copies:
        _open(settings, c.delivery_id, t - 5)
    assert Ingestor(engine, off, PIPELINE).drain() == 0
    assert _dropped(engine) == {"org.basis_off": 2}


def test_rules_pick_the_basis_per_domain(engine: Engine, settings: Settings) -> None:
    ruled = settings.model_copy(update={"tracking_basis_rules": [".fr=consent", "*=off"]})
    ruled = ruled.model_copy(update={"tracking_basis": "legitimate_interests"})
    got = {c.recipient: c.decision.reasons for c in _send(engine, ruled, DANA, LEE).copies}
    assert got == {DANA: ("recipient.no_consent",), LEE: ("org.basis_off",)}
    _record(engine, settings, DANA)
    mixed = settings.model_copy(update={"tracking_basis_rules": [".fr=consent"]})
    sent = _send(engine, mixed, DANA, LEE)
    assert all(c.decision.tracked for c in sent.copies)
    # Under legitimate interests the line follows the setting; under consent it is forced.
    quiet = mixed.model_copy(update={"tracking_notice_line": False})
    lines = {c.recipient: "/p/" in _body(c) for c in _send(engine, quiet, DANA, LEE).copies}
    assert lines == {DANA: True, LEE: False}


def test_consent_request_line_can_be_turned_off(engine: Engine, settings: Settings) -> None:
    plain = settings.model_copy(update={"tracking_basis": "consent", "consent_request_line": False})
    copy = _send(engine, plain, DANA).copies[0]
    assert not copy.decision.tracked and "/k/" not in _body(copy)
    assert "Allow tracking" not in _body(copy)


def test_csv_import_is_all_or_nothing_and_names_lines(engine: Engine, settings: Settings) -> None:
    signer = _signer(settings)
    good = (
        "address,given_at,source,text,text_id\n"
        f"{DANA},2026-03-01T09:00:00Z,import,I agree to open tracking,form-v2\n"
        f'{LEE},2026-03-02T09:00:00+01:00,link,"I agree, with a comma",\n'
    )
    bad = (
        "address,given_at,source,text\n"
        f"{DANA},2026-03-01T09:00:00Z,import,ok\n"
        "not-an-address,2026-03-01T09:00:00Z,import,ok\n"
        f"{LEE},yesterday,import,ok\n"
        f"{LEE},2026-03-01T09:00:00,import,ok\n"
        f"{LEE},2026-03-01T09:00:00Z,fax,ok\n"
        f"{LEE},2026-03-01T09:00:00Z,import,\n"
    )
    with engine.begin() as conn, pytest.raises(InputError) as caught:
        service.import_csv(conn, signer, bad, actor="cli")
    message = caught.value.message
    for line in (3, 4, 5, 6, 7):
        assert f"line {line}: " in message
    assert "line 2" not in message and "time zone" in message and "source" in message
    with pytest.raises(InputError, match=r"line 1: .*missing given_at"):
        service.parse_csv("address,source,text\n")
    with engine.connect() as conn:
        assert conn.execute(select(consentrecord)).all() == []  # nothing recorded
    with engine.begin() as conn:
        assert service.import_csv(conn, signer, good, actor="cli") == 2
    with engine.connect() as conn:
        history = service.history(conn, signer, "Dana@Contoso.FR")
    assert [(h["source"], h["textid"], h["current"]) for h in history] == [
        ("import", "form-v2", True)
    ]
    assert history[0]["givenon"].startswith("2026-03-01T09:00:00")
    assert history[0]["texthash"] == consent.text_hash("I agree to open tracking")
