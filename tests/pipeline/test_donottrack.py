"""Do-not-track applies to mail already sent (issue 13, parts 1 and 2): hits arriving
after followemail=false, after the recipient's opt-out or with the org switch off are
answered by the tracker but not stored at ingest, and counted; on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from helpers import OUTLOOK, PERSON_IP, add_rep, track_html
from mailsignal.enrich import Pipeline
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline import donottrack as service
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import audit, donottrack, parties, users
from mailsignal.store import emails as store_emails
from mailsignal.store import events as store_events
from mailsignal.store.journal import JournalWriter
from mailsignal.store.schema import contact
from mailsignal.store.schema import donottrack as dnt_table
from mailsignal.tokens import Signer

PIPELINE = Pipeline.default()
DANA = "dana@contoso.test"


def _signer(settings: Settings) -> Signer:
    return Signer(*load_keyring(settings.secret_file))


def _open(settings: Settings, delivery: int, at: float, ip: str = PERSON_IP) -> None:
    writer = JournalWriter(settings.journal_file)

    async def main() -> None:
        await writer.append((at, int(TokenKind.OPEN), delivery, None, ip, OUTLOOK, "GET", "{}"))

    asyncio.run(main())
    writer.close()


def _sent(engine: Engine, settings: Settings, *to: str) -> tuple[Any, list[int]]:
    sent = datetime.now(UTC) - timedelta(hours=3)
    with engine.begin() as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            add_rep(conn)
        result = track_html(conn, _signer(settings), list(to), sent_at=sent)
    return result, [c.delivery_id for c in result.copies]


def _opens(engine: Engine, activity: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return store_events.of_email(conn, activity)


def _dropped(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {reason: hits for _day, reason, hits in donottrack.dropped(conn)}


def test_followemail_false_stops_opens_of_mail_sent_earlier(
    engine: Engine, settings: Settings
) -> None:
    """The bug the issue reports: after followemail=false, opens of mail sent to the
    person before were still recorded and counted."""
    with engine.begin() as conn:
        dana = parties.add(conn, "contact", "Dana", DANA)
    result, (delivery,) = _sent(engine, settings, DANA)
    now = datetime.now(UTC).timestamp()
    _open(settings, delivery, now - 60)
    ingestor = Ingestor(engine, settings, PIPELINE)
    assert ingestor.drain() == 1
    with engine.begin() as conn:  # the rep marks Dana "do not allow" tracking
        conn.execute(update(contact).where(contact.c.contactid == dana).values(followemail=False))
    _open(settings, delivery, now - 30)
    _open(settings, delivery, now - 10)
    assert ingestor.drain() == 0
    assert len(_opens(engine, result.activity_id)) == 1
    with engine.connect() as conn:
        assert store_emails.get(conn, result.activity_id)["opencount"] == 1
    assert _dropped(engine) == {"recipient.do_not_track": 2}


def test_org_switch_off_stops_hits_on_mail_already_sent(engine: Engine, settings: Settings) -> None:
    result, (delivery,) = _sent(engine, settings, DANA)
    with engine.begin() as conn:
        users.set_org(conn, monitoring=False)
    _open(settings, delivery, datetime.now(UTC).timestamp())
    ingestor = Ingestor(engine, settings, PIPELINE)
    assert ingestor.drain() == 0
    assert _opens(engine, result.activity_id) == []
    assert _dropped(engine) == {"org.monitoring_disabled": 1}
    with engine.begin() as conn:
        users.set_org(conn, monitoring=True)
    _open(settings, delivery, datetime.now(UTC).timestamp())
    assert ingestor.drain() == 1


def test_opt_out_covers_an_address_no_party_has(engine: Engine, settings: Settings) -> None:
    result, (lee, dana) = _sent(engine, settings, "lee@fabrikam.test", DANA)
    with engine.begin() as conn:
        done = service.opt_out(
            conn, _signer(settings), " Dana@Contoso.TEST ", settings, source="cli", actor="cli"
        )
        stored = conn.execute(select(dnt_table)).mappings().all()
        trail = audit.search(conn, audit.Filter(action="recipient.optout"))
    assert done.new and done.parties == 0
    # Only a keyed hash is kept, never the address; the audit trail names the hash too.
    assert [r["addresshash"] for r in stored] == [_signer(settings).address_hash(DANA)]
    assert DANA not in repr(stored) and DANA not in repr(trail)
    assert [r["subject"] for r in trail] == [done.address_hash]
    now = datetime.now(UTC).timestamp()
    _open(settings, dana, now)
    _open(settings, lee, now)
    assert Ingestor(engine, settings, PIPELINE).drain() == 1
    assert [e["emailaddress"] for e in _opens(engine, result.activity_id)] == ["lee@fabrikam.test"]
    assert _dropped(engine) == {"recipient.opted_out": 1}
    with engine.begin() as conn:  # a party added later takes followemail=false too
        assert (
            service.opt_out(conn, _signer(settings), DANA, settings, source="api", actor="cli").new
            is False
        )
        removed, _n = service.opt_in(conn, _signer(settings), DANA, actor="cli")
    assert removed
    _open(settings, dana, now + 1)
    assert Ingestor(engine, settings, PIPELINE).drain() == 1


def test_opt_out_sets_followemail_false_on_contacts_and_leads(
    engine: Engine, settings: Settings
) -> None:
    with engine.begin() as conn:
        ids = [parties.add(conn, kind, "Dana", DANA.upper()) for kind in ("contact", "lead")]
        done = service.opt_out(conn, _signer(settings), DANA, settings, source="cli", actor="cli")
        rows = [
            parties.get(conn, kind, i) for kind, i in zip(("contact", "lead"), ids, strict=True)
        ]
    assert done.parties == 2
    assert [r["followemail"] for r in rows if r] == [False, False]


def test_next_copy_to_an_opted_out_address_is_not_instrumented(
    engine: Engine, settings: Settings
) -> None:
    with engine.begin() as conn:
        service.opt_out(conn, _signer(settings), DANA, settings, source="link", actor="recipient")
    result, _ids = _sent(engine, settings, DANA, "lee@fabrikam.test")
    copies = {c.recipient: c for c in result.copies}
    assert not copies[DANA].decision.tracked
    assert copies[DANA].decision.reasons == ("recipient.opted_out",)
    assert b"/o/" not in copies[DANA].as_bytes() and b"/p/" not in copies[DANA].as_bytes()
    assert copies["lee@fabrikam.test"].decision.tracked
    with engine.connect() as conn:
        found = store_emails.deliveries(conn, result.activity_id)
    reasons = {d["emailaddress"]: d["untrackedreasons"] for d in found}
    assert reasons[DANA] == ["recipient.opted_out"]


def test_erase_events_on_optout_deletes_past_events_and_recounts(
    engine: Engine, settings: Settings
) -> None:
    settings = settings.model_copy(update={"erase_events_on_optout": True})
    with engine.begin() as conn:
        dana = parties.add(conn, "contact", "Dana", DANA)
    result, (lee, dana_copy) = _sent(engine, settings, "lee@fabrikam.test", DANA)
    now = datetime.now(UTC).timestamp()
    for delivery in (lee, dana_copy):
        _open(settings, delivery, now - 600)
    assert Ingestor(engine, settings, PIPELINE).drain() == 2
    with engine.begin() as conn:
        done = service.opt_out(conn, _signer(settings), DANA, settings, source="cli", actor="cli")
    assert done.erased == 1
    assert [e["emailaddress"] for e in _opens(engine, result.activity_id)] == ["lee@fabrikam.test"]
    with engine.connect() as conn:
        assert store_emails.get(conn, result.activity_id)["opencount"] == 1
        party = parties.get(conn, "contact", dana)
    assert party is not None and party["humanopencount"] == 0


@pytest.mark.parametrize("size", [1, 400])
def test_a_batch_is_screened_in_two_statements(
    engine: Engine, settings: Settings, size: int
) -> None:
    """Ingest is hot: the org switch once and the do-not-track check once per batch,
    however many hits and addresses the batch holds."""
    to = [f"r{i}@example.test" for i in range(size)]
    _result, ids = _sent(engine, settings, *to)
    with engine.begin() as conn:
        service.opt_out(conn, _signer(settings), to[0], settings, source="cli", actor="cli")
    with engine.connect() as conn:
        deliveries = store_events.deliveries(conn, ids)
        hits = [
            RawHit(
                hit_id=f"h{i}",
                received_at=datetime.now(UTC),
                kind=TokenKind.OPEN,
                delivery_id=d,
                link_id=None,
                ip=PERSON_IP,
                user_agent=OUTLOOK,
                method="GET",
            )
            for i, d in enumerate(ids * 2)
        ]
        statements: list[str] = []
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        kept, dropped = service.drop_hits(conn, hits, deliveries, settings, datetime.now(UTC))
    assert dropped == 2 and len(kept) == len(hits) - 2
    # The org row, the screen, and the counter upsert (only when something was dropped).
    assert len(statements) == 3, statements


def test_tracking_notice_line_off_leaves_the_line_out(engine: Engine, settings: Settings) -> None:
    from mailsignal.outgoing import Outgoing, build_message

    with engine.begin() as conn:
        add_rep(conn)
    for on in (True, False):
        msg = build_message(
            "rep@northwind.test", [DANA], "Hi", "<p>Hi</p>", "Hi", f"<n{on}@northwind.test>"
        )
        changed = settings.model_copy(update={"tracking_notice_line": on})
        service_ = Outgoing.from_settings(changed, _signer(settings))
        with engine.begin() as conn:
            copy = service_.track(conn, msg, sender="rep@northwind.test", recipients=[DANA])
        data = copy.copies[0].as_bytes()
        assert (b"/p/" in data) is on and b"/o/" in data
