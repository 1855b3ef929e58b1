"""Reply storage on SQLite and PostgreSQL: matching, verdicts, counters, exactly-once,
bounces failing deliveries, and the IMAP sync loop against the in-memory fake server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from conftest import FIXTURES
from helpers import HTML, add_rep
from mailsignal import outgoing
from mailsignal.errors import ConfigError, InputError
from mailsignal.keyring import Keyring, load_keyring, rotate_secret
from mailsignal.mail.imap import FakeServer
from mailsignal.pipeline.mailboxes import set_mailbox
from mailsignal.pipeline.mailsync import import_messages, sync_all
from mailsignal.pipeline.replies import IncomingMessage, Outcome, store_messages
from mailsignal.sealing import seal, unseal
from mailsignal.settings import Settings
from mailsignal.store import emails as store_emails
from mailsignal.store import events as store_events
from mailsignal.store import parties, users
from mailsignal.store.schema import email, emaildelivery, interactionforemail, mailbox
from mailsignal.tokens import Signer

SENT_ID = "<20261120093000.4711@northwind.test>"
SENT_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
PEOPLE = ["dana@contoso.test", "lee@fabrikam.test"]
PASSWORD = "pw"


def _fixture(name: str) -> IncomingMessage:
    return IncomingMessage((FIXTURES / "replies" / name).read_bytes(), name)


def _send(
    engine: Engine, settings: Settings, recipients: list[str] = PEOPLE, message_id: str = SENT_ID
) -> Any:
    with engine.begin() as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            add_rep(conn)
            parties.add(conn, "contact", "Dana Whitfield", "dana@contoso.test")
        msg = outgoing.build_message(
            "rep@northwind.test", recipients, "Hello", HTML, None, message_id, SENT_AT
        )
        service = outgoing.Outgoing(
            Signer(*load_keyring(settings.secret_file)), "http://track.test"
        )
        return service.track(
            conn, msg, sender="rep@northwind.test", recipients=recipients, sent_at=SENT_AT
        )


def _store(engine: Engine, settings: Settings, *names: str) -> list[Outcome]:
    with engine.begin() as conn:
        return [o for o, _e in store_messages(conn, [_fixture(n) for n in names], settings)]


def _email(engine: Engine, activity_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = store_emails.get(conn, activity_id)
        row["events"] = store_events.of_email(conn, activity_id)
        row["deliveries"] = {
            d["emailaddress"]: d for d in store_emails.deliveries(conn, activity_id)
        }
    return row


def _rules(event: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in event["reasons"]["fired"]]


def test_human_replies_count_once_and_say_why(engine: Engine, settings: Settings) -> None:
    sent = _send(engine, settings)
    outcomes = _store(engine, settings, "gmail_human_reply.eml", "outlook_human_reply.eml")
    assert outcomes == [Outcome.REPLY, Outcome.REPLY]
    row = _email(engine, sent.activity_id)
    assert row["replycount"] == 2 and row["engagementverdict"] == "human"
    dana = next(e for e in row["events"] if e["interactionrepliedby"] == "dana@contoso.test")
    assert dana["interactiontype"] == 3 and dana["verdict"] == "human"
    assert dana["confidence"] > 0.9
    assert dana["emailaddress"] == "dana@contoso.test"
    assert dana["replymessageid"].startswith("<CAO8yZ4s1qE2vC")
    assert dana["hitid"] == "reply:cao8yz4s1qe2vc=xnt7w3jfu9h6k0plrm5dga1byc@mail.gmail.com"
    assert dana["emailinteractiontime"] == datetime(2026, 11, 20, 10, 40, 52, tzinfo=UTC)
    assert {"reply.threaded", "match.in_reply_to"} <= set(_rules(dana))
    assert "reply.auto_submitted" in dana["reasons"]["not_fired"]
    # The reply sits on the contact's delivery, so it rolls up to the contact.
    assert row["deliveries"]["dana@contoso.test"]["recipientobjecttypecode"] == "contact"
    assert dana["deliveryid"] == row["deliveries"]["dana@contoso.test"]["deliveryid"]
    # Reading the same messages again (a retried batch, a re-import) adds nothing.
    again = _store(engine, settings, "gmail_human_reply.eml", "outlook_human_reply.eml")
    assert again == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    row = _email(engine, sent.activity_id)
    assert row["replycount"] == 2 and len(row["events"]) == 2


def test_auto_replies_are_stored_labelled_and_not_counted(
    engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings)
    outcomes = _store(
        engine, settings, "exchange_oof.eml", "gmail_vacation.eml", "outlook_rule_reply_fr.eml"
    )
    assert outcomes == [Outcome.AUTO_REPLY] * 3
    row = _email(engine, sent.activity_id)
    assert row["replycount"] == 0 and len(row["events"]) == 3
    assert {e["verdict"] for e in row["events"]} == {"machine"}
    oof = next(e for e in row["events"] if "reply.ms_oof" in _rules(e))
    assert oof["emailaddress"] == "lee@fabrikam.test"
    # The French rule reply came from an address the email never went to.
    fr = next(e for e in row["events"] if e["interactionrepliedby"] == "camille@fabrikam.test")
    assert "reply.other_address" in _rules(fr) and fr["verdict"] == "machine"


@pytest.mark.parametrize(
    ("name", "failed"),
    [
        ("postfix_bounce.eml", "lee@fabrikam.test"),
        ("exim_bounce.eml", "dana@contoso.test"),
        ("exchange_ndr.eml", "lee@fabrikam.test"),
        ("qmail_failure_notice.eml", "dana@contoso.test"),
    ],
)
def test_bounce_fails_the_named_delivery(
    engine: Engine, settings: Settings, name: str, failed: str
) -> None:
    sent = _send(engine, settings)
    assert _store(engine, settings, name) == [Outcome.BOUNCE]
    row = _email(engine, sent.activity_id)
    statuses = {a: d["status"] for a, d in row["deliveries"].items()}
    assert statuses == {a: ("failed" if a == failed else "sent") for a in PEOPLE}
    (event,) = row["events"]
    assert event["verdict"] == "machine" and event["emailaddress"] == failed
    assert event["facts"]["reply"]["bounce"][0]["action"] == "failed"
    assert row["replycount"] == 0
    assert _store(engine, settings, name) == [Outcome.DUPLICATE]


def test_delay_notice_changes_no_status(engine: Engine, settings: Settings) -> None:
    sent = _send(engine, settings)
    assert _store(engine, settings, "gmail_delay_dsn.eml") == [Outcome.NOTICE]
    row = _email(engine, sent.activity_id)
    assert {d["status"] for d in row["deliveries"].values()} == {"sent"}
    assert row["events"][0]["emailaddress"] == "dana@contoso.test"


def test_bounce_naming_an_alias_fails_a_sole_recipient(engine: Engine, settings: Settings) -> None:
    sent = _send(engine, settings, ["sales@fabrikam.test"])
    assert _store(engine, settings, "postfix_bounce.eml") == [Outcome.BOUNCE]
    row = _email(engine, sent.activity_id)
    assert row["deliveries"]["sales@fabrikam.test"]["status"] == "failed"
    assert "bounce.sole_recipient" in _rules(row["events"][0])


def test_unmatched_own_and_forwarded(engine: Engine, settings: Settings) -> None:
    sent = _send(engine, settings)
    stranger = b"From: a@b.test\nSubject: Re: lunch\nIn-Reply-To: <nope@b.test>\n\nyes\n"
    own = (
        f"From: Rep <rep@northwind.test>\nSubject: Re: Hello\nMessage-ID: <own-1@northwind.test>"
        f"\nIn-Reply-To: {SENT_ID}\n\nFollowing up.\n"
    ).encode()
    with engine.begin() as conn:
        outcomes = store_messages(
            conn,
            [
                IncomingMessage(stranger, "a"),
                IncomingMessage(own, "b"),
                _fixture("eight_bit_headers.eml"),  # Jürgen: a colleague of Dana's
            ],
            settings,
        )
    assert [o for o, _e in outcomes] == [Outcome.UNMATCHED, Outcome.OWN, Outcome.FORWARD]
    row = _email(engine, sent.activity_id)
    (event,) = row["events"]
    assert event["verdict"] == "forward" and event["interactionrepliedby"] == "jurgen@contoso.test"
    assert "reply.other_address" in _rules(event)
    assert row["replycount"] == 1  # a colleague's answer is still an answer


def test_tracking_header_and_fallback_time_and_no_message_id(
    engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings)
    with engine.connect() as conn:
        tracking = conn.execute(
            select(email.c.emailtrackingid).where(email.c.activityid == sent.activity_id)
        ).scalar_one()
    raw = (
        f"From: dana@contoso.test\nSubject: quick question\nX-MailSignal-Id: {tracking}\n\n"
        "Is this still on?\n"
    ).encode()
    arrived = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        first = store_messages(conn, [IncomingMessage(raw, "x", arrived)], settings)
    with engine.begin() as conn:
        second = store_messages(conn, [IncomingMessage(raw, "x", arrived)], settings)
    assert [o for o, _ in first + second] == [Outcome.REPLY, Outcome.DUPLICATE]
    (event,) = _email(engine, sent.activity_id)["events"]
    assert "match.x_mailsignal_id" in _rules(event)
    assert event["emailinteractiontime"] == arrived  # no Date header: INTERNALDATE
    assert event["hitid"].startswith("reply:raw:") and event["replymessageid"] is None


def test_import_batches_and_summary(engine: Engine, settings: Settings) -> None:
    _send(engine, settings)
    names = sorted(p.name for p in (FIXTURES / "replies").glob("*.eml"))
    summary = import_messages(engine, settings, [_fixture(n) for n in names * 2], batch=5)
    assert summary.read == 2 * len(names)
    assert summary.counts[Outcome.DUPLICATE] == len(names)
    assert summary.counts[Outcome.BOUNCE] == 4 and summary.counts[Outcome.NOTICE] == 1
    assert summary.errors == []


# --- mailbox settings and secrets -------------------------------------------------------


def _keyring(settings: Settings) -> Keyring:
    return load_keyring(settings.secret_file)


def test_secret_is_sealed_bound_to_the_rep_and_survives_rotation(
    engine: Engine, settings: Settings
) -> None:
    _send(engine, settings)
    with engine.begin() as conn:
        row = set_mailbox(
            conn,
            _keyring(settings),
            "rep@northwind.test",
            host="imap.northwind.test",
            password="pässwörd-1",
        )
        stored = conn.execute(select(mailbox.c.secret)).scalar_one()
    assert row["secret"] == "set (encrypted)" and row["port"] == 993
    assert "pässwörd" not in stored and stored.startswith("v1:1:")
    user = row["systemuserid"]
    assert unseal(_keyring(settings), stored, user.bytes) == "pässwörd-1"
    with pytest.raises(ConfigError, match="does not decrypt"):
        unseal(_keyring(settings), stored, uuid.uuid4().bytes)  # copied onto another rep
    rotate_secret(settings.secret_file)
    assert unseal(_keyring(settings), stored, user.bytes) == "pässwörd-1"
    assert seal(_keyring(settings), "x", b"").startswith("v1:2:")
    with pytest.raises(ConfigError, match="not in the keyring"):
        unseal(({1: b"k" * 32}, 1), "v1:7:AAAA", b"")


def test_mailbox_settings_are_checked(engine: Engine, settings: Settings) -> None:
    _send(engine, settings)
    keys = _keyring(settings)
    with engine.begin() as conn:
        with pytest.raises(InputError, match="needs a password"):
            set_mailbox(conn, keys, "rep@northwind.test", host="imap.northwind.test")
        with pytest.raises(InputError, match="only for a server on this machine"):
            set_mailbox(
                conn, keys, "rep@northwind.test", host="imap.x.test", security="none", password="p"
            )
        with pytest.raises(InputError, match="security must be"):
            set_mailbox(conn, keys, "rep@northwind.test", host="h", security="ssl", password="p")
        set_mailbox(
            conn,
            keys,
            "rep@northwind.test",
            host="127.0.0.1",
            security="none",
            password="p",
            folders=["INBOX", "Sales"],
        )
        conn.execute(mailbox.update().values(syncstate={"INBOX": {"uidvalidity": 1, "lastuid": 9}}))
        kept = set_mailbox(conn, keys, "rep@northwind.test", host="127.0.0.1", security="none")
        assert kept["syncstate"] == {"INBOX": {"uidvalidity": 1, "lastuid": 9}}
        assert kept["port"] == 143 and kept["folders"] == ["INBOX"]
        moved = set_mailbox(conn, keys, "rep@northwind.test", host="imap.x.test")
        assert moved["syncstate"] == {}  # another server: its UIDs mean nothing here


# --- the sync loop against the fake server ----------------------------------------------


def _mailbox(engine: Engine, settings: Settings, password: str = PASSWORD) -> None:
    with engine.begin() as conn:
        set_mailbox(
            conn,
            _keyring(settings),
            "rep@northwind.test",
            host="imap.northwind.test",
            password=password,
        )


def _state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(mailbox.c.syncstate, mailbox.c.lasterror)).one()
    return {"state": row.syncstate, "error": row.lasterror}


def test_sync_reads_each_message_once(engine: Engine, settings: Settings) -> None:
    sent = _send(engine, settings)
    _mailbox(engine, settings)
    server = FakeServer(password=PASSWORD)
    for name in ("gmail_human_reply.eml", "exchange_oof.eml"):
        server.deliver(_fixture(name).raw)
    server.deliver(b"From: news@shop.test\nSubject: Sale\n\n50% off\n")
    ((address, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert address == "rep@northwind.test" and summary.failed is None
    assert (summary.counts[Outcome.REPLY], summary.counts[Outcome.AUTO_REPLY]) == (1, 1)
    assert summary.counts[Outcome.UNMATCHED] == 1
    server.deliver(_fixture("outlook_human_reply.eml").raw)
    ((_a, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert summary.read == 1 and server.fetched == [1, 2, 3, 4]  # only the new one
    assert _state(engine) == {"state": {"INBOX": {"uidvalidity": 1, "lastuid": 4}}, "error": None}
    assert _email(engine, sent.activity_id)["replycount"] == 2


def test_dropped_connection_keeps_progress_and_loses_nothing(
    engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings, [f"p{i}@contoso.test" for i in range(60)])
    _mailbox(engine, settings)
    server = FakeServer(password=PASSWORD, drop_after_fetches=1)
    for i in range(60):
        server.deliver(
            f"From: p{i}@contoso.test\nSubject: Re: Hello\nMessage-ID: <r{i}@contoso.test>\n"
            f"In-Reply-To: {SENT_ID}\n\nyes\n".encode()
        )
    ((_a, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert summary.failed and "lost while fetching" in summary.failed
    assert summary.counts[Outcome.REPLY] == 25  # the first batch, committed
    assert _state(engine) == {
        "state": {"INBOX": {"uidvalidity": 1, "lastuid": 25}},
        "error": summary.failed,
    }
    server.drop_after_fetches = None
    ((_a, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert summary.failed is None and summary.counts[Outcome.REPLY] == 35
    assert server.fetched == list(range(1, 61))  # nothing read twice
    assert _email(engine, sent.activity_id)["replycount"] == 60
    assert _state(engine)["error"] is None


def test_uidvalidity_change_rereads_without_double_counting(
    engine: Engine, settings: Settings
) -> None:
    sent = _send(engine, settings)
    _mailbox(engine, settings)
    server = FakeServer(password=PASSWORD)
    server.deliver(_fixture("gmail_human_reply.eml").raw)
    server.deliver(_fixture("postfix_bounce.eml").raw)
    sync_all(engine, settings, _keyring(settings), server.connect)
    server.renumber()
    ((_a, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert "UIDVALIDITY changed" in summary.notes[0]
    assert summary.counts[Outcome.DUPLICATE] == 2 and summary.read == 2
    assert _state(engine)["state"] == {"INBOX": {"uidvalidity": 2, "lastuid": 2}}
    row = _email(engine, sent.activity_id)
    assert row["replycount"] == 1 and len(row["events"]) == 2


def test_wrong_password_is_reported_without_the_secret(engine: Engine, settings: Settings) -> None:
    _send(engine, settings)
    _mailbox(engine, settings, password="correct horse")
    server = FakeServer(password="something else")
    ((_a, summary),) = sync_all(engine, settings, _keyring(settings), server.connect)
    assert summary.failed and "login" in summary.failed
    assert "correct horse" not in summary.failed
    with engine.connect() as conn:
        assert conn.execute(select(interactionforemail)).first() is None
        assert conn.execute(select(emaildelivery.c.status)).scalars().all() == ["sent", "sent"]
