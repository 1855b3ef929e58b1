"""Reply classification on real-shaped messages (tests/fixtures/replies/*.eml).

The fixtures copy the header sets of real messages: Gmail and Outlook replies, an
Exchange Online out-of-office (Mailbox Rules Agent), Gmail's vacation responder, a
client-side Outlook rule reply in French, Postfix / Exim / Exchange / qmail bounces, a
Gmail delay notice, raw 8-bit headers and broken MIME."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from conftest import FIXTURES
from mailsignal.model import Verdict
from mailsignal.replies import RULES, Analysis, ReplyKind, analyse, normalise_id, parse
from mailsignal.replies.headers import decode_value, message_ids

SENT = "20261120093000.4711@northwind.test"
DIR = FIXTURES / "replies"


def _load(name: str) -> Analysis:
    return analyse(parse((DIR / name).read_bytes()))


def _fired(a: Analysis) -> set[str]:
    return {e.rule for e in a.classification.fired}


def _msg(headers: str, body: str = "Thanks, that works.\n") -> Analysis:
    return analyse(parse((headers.strip() + "\n\n" + body).encode()))


@pytest.mark.parametrize(
    ("name", "kind", "rules", "sender"),
    [
        ("gmail_human_reply.eml", ReplyKind.HUMAN, {"reply.threaded"}, "dana@contoso.test"),
        ("outlook_human_reply.eml", ReplyKind.HUMAN, {"reply.threaded"}, "lee@fabrikam.test"),
        (
            "exchange_oof.eml",
            ReplyKind.AUTO_REPLY,
            {"reply.auto_submitted", "reply.ms_oof", "reply.ooo_subject", "reply.null_return_path"},
            "lee@fabrikam.test",
        ),
        (
            "gmail_vacation.eml",
            ReplyKind.AUTO_REPLY,
            {"reply.auto_submitted", "reply.x_autoreply", "reply.precedence"},
            "dana@contoso.test",
        ),
        ("outlook_rule_reply_fr.eml", ReplyKind.AUTO_REPLY, {"reply.ooo_subject"}, None),
        (
            "postfix_bounce.eml",
            ReplyKind.BOUNCE,
            {"reply.dsn", "reply.mailer_daemon", "reply.bounce_subject", "reply.auto_submitted"},
            "mailer-daemon@mx1.northwind.test",
        ),
        (
            "exim_bounce.eml",
            ReplyKind.BOUNCE,
            {"reply.dsn", "reply.failed_recipients", "reply.mailer_daemon"},
            None,
        ),
        ("exchange_ndr.eml", ReplyKind.BOUNCE, {"reply.dsn", "reply.ms_ndr"}, None),
        (
            "qmail_failure_notice.eml",
            ReplyKind.BOUNCE,
            {"reply.mailer_daemon", "reply.bounce_subject"},
            None,
        ),
        ("gmail_delay_dsn.eml", ReplyKind.NOTICE, {"reply.dsn", "reply.mailer_daemon"}, None),
        ("eight_bit_headers.eml", ReplyKind.HUMAN, {"reply.threaded"}, "jurgen@contoso.test"),
        ("malformed_mime.eml", ReplyKind.HUMAN, set(), "dana@contoso.test"),
    ],
)
def test_fixture_kind_rules_and_match(
    name: str, kind: ReplyKind, rules: set[str], sender: str | None
) -> None:
    a = _load(name)
    assert a.kind is kind
    assert rules <= _fired(a), _fired(a)
    human = kind is ReplyKind.HUMAN
    assert a.classification.verdict is (Verdict.HUMAN if human else Verdict.MACHINE)
    assert 0.8 < a.classification.confidence < 1.0
    assert set(a.classification.not_fired) == {r.id for r in RULES} - _fired(a)
    # Every fixture answers the same sent message, and names it first.
    assert normalise_id(a.references[0].id) == SENT.lower()
    if sender:
        assert a.sender == sender
    if human:  # no machine rule may fire on a person's reply
        assert all(e.weight > 0 for e in a.classification.fired)


def test_reasons_are_sentences_with_stable_ids() -> None:
    a = _load("exchange_oof.eml")
    by_rule = {e.rule: e for e in a.classification.fired}
    assert "Mailbox Rules Agent" in by_rule["reply.ms_oof"].text
    assert "'Automatic reply:'" in by_rule["reply.ooo_subject"].text
    assert all(e.text.endswith(".") for e in a.classification.fired)
    assert a.classification.version == "replies-1"


def test_references_order_in_reply_to_then_newest_reference() -> None:
    a = _load("gmail_human_reply.eml")
    assert [(r.id, r.via) for r in a.references] == [
        (SENT, "in_reply_to"),
        ("20261118080000.1234@northwind.test", "references"),
    ]
    a = _msg(
        "From: x@contoso.test\nReferences: <a@n.test>\n <b@n.test> <c@n.test>\n"
        "X-MailSignal-Id: 5f0c4c1e-2b1a-4d7e-9a51-0d5b8c3e7f21"
    )
    assert [r.id for r in a.references] == [
        "c@n.test",
        "b@n.test",
        "a@n.test",
        "5f0c4c1e-2b1a-4d7e-9a51-0d5b8c3e7f21",
    ]
    assert a.references[-1].via == "x_mailsignal_id"


def test_bounce_details_per_mta() -> None:
    postfix = _load("postfix_bounce.eml").bounce
    assert postfix is not None and postfix.failed == ("lee@fabrikam.test",)
    assert postfix.recipients[0].status == "5.1.1"
    assert "User unknown" in postfix.recipients[0].diagnostic
    assert postfix.original_message_ids == (SENT,)
    exim = _load("exim_bounce.eml").bounce  # original as text/rfc822-headers
    assert exim is not None and exim.failed == ("dana@contoso.test",)
    assert exim.original_message_ids == (SENT,)
    ndr = _load("exchange_ndr.eml")
    assert ndr.bounce is not None and ndr.bounce.failed == ("lee@fabrikam.test",)
    assert ndr.bounce.recipients[0].status == "5.1.10"
    assert ndr.references[0].via == "bounce_original"
    qmail = _load("qmail_failure_notice.eml").bounce  # no DSN: address and id from the text
    assert qmail is not None and qmail.failed == ("dana@contoso.test",)
    assert qmail.original_message_ids == (SENT,)
    delay = _load("gmail_delay_dsn.eml").bounce
    assert delay is not None and delay.failed == ()
    assert delay.recipients[0].action == "delayed"


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Hello",
        "RE: Automatic reply: Hello",
        "Out of Office: Hello",
        "Out of Office AutoReply: Hello",
        "Automatische Antwort: Hello",
        "Abwesenheitsnotiz: Hello",
        "Réponse automatique : Hello",
        "Respuesta automática: Hello",
        "Automatisch antwoord: Hello",
        "Risposta automatica: Hello",
        "Resposta automática: Hello",
        "Automatiskt svar: Hello",
        "Automatisk svar: Hello",
        "Automaattinen vastaus: Hello",
        "Odpowiedź automatyczna: Hello",
        "Automatická odpověď: Hello",
        "自動応答: Hello",
        "自动回复: Hello",
        "Автоответ: Hello",
    ],
)
def test_localized_out_of_office_subjects(subject: str) -> None:
    a = _msg(f"From: x@contoso.test\nSubject: {subject}\nIn-Reply-To: <{SENT}>")
    assert a.kind is ReplyKind.AUTO_REPLY
    assert "reply.ooo_subject" in _fired(a)


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Hello",
        "Re: Our automatic reply feature",  # names the feature, is not the prefix
        "Re: Back in the office: notes from Monday",
        "Re: Undeliverable? Let's talk",
        "Undeliverable items in the Leeds warehouse",  # a subject alone is not a bounce
        "Returned mail: what our courier sent back",
    ],
)
def test_people_writing_about_these_words_stay_human(subject: str) -> None:
    a = _msg(f"From: x@contoso.test\nSubject: {subject}\nIn-Reply-To: <{SENT}>")
    assert a.kind is ReplyKind.HUMAN, _fired(a)


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Auto-Submitted: auto-replied", ReplyKind.AUTO_REPLY),
        ("Auto-Submitted: auto-generated", ReplyKind.AUTO_REPLY),
        ("Auto-Submitted: no", ReplyKind.HUMAN),
        ("X-Autorespond: yes", ReplyKind.AUTO_REPLY),
        ("Precedence: auto_reply", ReplyKind.AUTO_REPLY),
        ("Precedence: junk", ReplyKind.AUTO_REPLY),
        ("Precedence: list", ReplyKind.HUMAN),  # a list can carry a person's answer
        ("X-Auto-Response-Suppress: All", ReplyKind.HUMAN),  # Outlook sets it on plain mail
        ("X-MS-Exchange-Inbox-Rules-Loop: x@contoso.test", ReplyKind.HUMAN),  # rule forwards
        ("X-MS-Exchange-Message-Is-Ndr:", ReplyKind.BOUNCE),
        ("X-Failed-Recipients: x@contoso.test", ReplyKind.BOUNCE),
    ],
)
def test_single_headers(header: str, kind: ReplyKind) -> None:
    assert _msg(f"From: x@contoso.test\nSubject: Re: Hello\n{header}").kind is kind


def test_sender_addresses() -> None:
    noreply = _msg("From: Notifications <no-reply@contoso.test>\nSubject: Re: Hello")
    assert noreply.kind is ReplyKind.AUTO_REPLY and "reply.noreply_sender" in _fired(noreply)
    daemon = _msg("From: MAILER-DAEMON@mx.contoso.test\nSubject: Hello")
    assert daemon.kind is ReplyKind.NOTICE  # a mail system wrote, but nothing says it failed
    exchange = _msg(
        "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@c.test>\n"
        "Subject: Undeliverable: Hello"
    )
    assert exchange.kind is ReplyKind.BOUNCE


def test_eight_bit_headers_are_repaired() -> None:
    a = _load("eight_bit_headers.eml")
    assert a.subject == "Re: Hello – Angebot für Müller & Söhne"
    assert not any("\udc80" <= ch <= "\udcff" for ch in a.subject)
    # Windows-1252 bytes (not UTF-8) fall back instead of failing.
    assert decode_value("Ren\udce9e <r@c.test>") == "Renée <r@c.test>"
    assert decode_value("=?utf-8?q?broken?=?= =?x-unknown?q?abc?=")  # no exception


def test_malformed_mime_is_analysed_and_reports_defects() -> None:
    a = _load("malformed_mime.eml")
    assert a.defects  # the missing separator is recorded, not raised
    assert a.references[0].id == SENT  # a bare In-Reply-To without brackets still counts
    assert a.date is not None and a.date.utcoffset() is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01\x02 not mail at all",
        b"From: \r\nSubject: =?utf-8?b?!!!?=\r\nDate: yesterday\r\nMessage-ID: <<>>\r\n\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\n--x--",
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\n",
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    a = analyse(parse(raw))
    assert isinstance(a.kind, ReplyKind)
    assert a.message_id in (None, "") or "@" in (a.message_id or "@")


def test_message_ids_and_normalisation() -> None:
    assert message_ids("<a@b> <c@d>") == ["a@b", "c@d"]
    assert message_ids("a@b") == ["a@b"]
    assert message_ids("not an id") == []
    assert normalise_id(" <ABC@Example.TEST> ") == "abc@example.test"


def test_accepts_an_email_message_built_in_code() -> None:
    msg = EmailMessage()
    msg["From"] = "Dana <dana@contoso.test>"
    msg["Subject"] = "Re: Hello"
    msg["In-Reply-To"] = f"<{SENT}>"
    msg.set_content("Yes.")
    a = analyse(msg)
    assert a.kind is ReplyKind.HUMAN and a.sender == "dana@contoso.test"


def test_every_rule_is_documented() -> None:
    text = (FIXTURES.parent.parent / "docs" / "replies.md").read_text()
    for rule in RULES:
        assert f"| `{rule.id}` |" in text, rule.id
    for note in ("match.in_reply_to", "reply.other_address", "bounce.sole_recipient"):
        assert f"`{note}`" in text
