"""instrument/notice.py: the stop-tracking line each tracked copy ends with (issue 13),
its language, and that its link is never rewritten into a click link."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from instrument.common import FIXTURES, PIXEL, Recorder, load  # type: ignore[import-not-found]
from mailsignal.instrument import decide, prepare
from mailsignal.instrument.notice import (
    LINES,
    message_language,
    notice_html,
    notice_text,
    pick_language,
)
from mailsignal.model import TrackingDecision
from mailsignal.outgoing import build_message

STOP = "https://t.example/p/STOPTOKEN"


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ((None,), "en"),
        (("de",), "de"),
        (("de-CH",), "de"),
        (("FR-ca",), "fr"),
        (("es_MX",), "es"),
        (("it, fr",), "fr"),  # the first language the line exists in
        (("ja",), "en"),
        (("", "es"), "es"),  # no party language: the message's
        (("de", "fr"), "de"),  # a party's language before the message's
    ],
)
def test_the_language_is_the_first_known_one(
    candidates: tuple[str | None, ...], expected: str
) -> None:
    assert pick_language(*candidates) == expected


def test_the_language_comes_from_content_language() -> None:
    msg = build_message("rep@n.test", ["d@c.test"], "Hallo", "<p>Hallo</p>", "Hallo")
    assert message_language(msg) is None
    assert prepare(msg).language == "en"
    msg["Content-Language"] = "de-DE"
    assert prepare(msg).language == "de"
    part_only = build_message("rep@n.test", ["d@c.test"], "Hola", None, "Hola")
    part_only.make_mixed()
    part_only.get_payload()[0]["Content-Language"] = "es"  # type: ignore[index]
    assert message_language(part_only) == "es"


def test_the_html_line_is_escaped_and_ascii() -> None:
    evil = 'https://t.example/p/x"><script>alert(1)</script>'
    html = notice_html(evil, "de")
    assert "<script>" not in html and "&#34;&gt;&lt;script&gt;" in html
    assert html.isascii() and "ge&#246;ffnet" in html
    assert html.startswith('<p lang="de"') and "data-mailsignal-notrack" in html
    assert 'href="https://t.example/p/x' in html and "?l=de" in html


def test_the_text_line_falls_back_to_english_where_the_charset_cannot_hold_it() -> None:
    assert LINES["de"][1] in notice_text(STOP, "de", "utf-8", "\n")
    ascii_line = notice_text(STOP, "de", "ascii", "\r\n")
    assert LINES["en"][1] in ascii_line and ascii_line.endswith("\r\n")
    assert f"{STOP}?l=de" in ascii_line


def test_a_listed_recipient_is_not_tracked() -> None:
    assert decide(True, True, True, listed=True) == TrackingDecision(
        False, ("recipient.opted_out",)
    )


def _parts(msg: EmailMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            out[part.get_content_subtype()] = str(part.get_content())
    return out


def test_html_and_text_parts_end_with_the_line_and_its_link_is_not_rewritten() -> None:
    msg = build_message(
        "rep@n.test",
        ["d@c.test"],
        "Hola",
        '<html><body><p><a href="https://example.com/a">a</a></p></body></html>',
        "See https://example.com/a\n",
    )
    msg["Content-Language"] = "es"
    rec = Recorder()
    copy = prepare(msg).render(rec, PIXEL, None, STOP).message()
    parts = _parts(copy)
    assert rec.calls == ["https://example.com/a"]  # the stop link was never offered
    html = parts["html"]
    assert html.index("Dejar de rastrear") < html.index(PIXEL) < html.index("</body>")
    assert f'href="{STOP}?l=es"' in html
    assert parts["plain"].endswith(f"Dejar de rastrear mis correos: {STOP}?l=es\n")
    # Without a notice URL (the setting off) the copy has no line.
    plain = _parts(prepare(msg).render(rec, PIXEL).message())
    assert STOP not in plain["html"] and STOP not in plain["plain"]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_real_client_message_gets_one_line_per_kind_of_part(name: str) -> None:
    msg = load(name)
    prepared = prepare(msg)
    copy = prepared.render(Recorder(), PIXEL, None, STOP)
    data = copy.as_bytes()
    assert data == copy.message().as_bytes(policy=copy.message().policy)
    texts = _parts(copy.message())
    kinds = {k for k in ("html", "plain") if k in texts}
    for kind in kinds:
        assert f"{STOP}?l=" in texts[kind], (name, kind)
