"""Tests for `mailsignal.instrument`: decisions, parsing, link extraction and rewriting.

The fixtures in tests/fixtures/mail/ are modelled on what the clients really send:
Outlook 16 (windows-1252, QP, CRLF, Word HTML), Gmail web (UTF-8 QP, no <html>/<body>),
Apple Mail (alternative + related with an inline JPEG), an MJML newsletter with a VML
button (HTML in base64), Thunderbird plain text (format=flowed, 8bit) and a message
with an HTML report attached.
"""

from __future__ import annotations

import copy
import email
import html
import pickle
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsignal.errors import MimeError
from mailsignal.instrument import (
    LinkRef,
    decide,
    extract_links,
    instrument,
    parse_message,
    prepare,
)
from mailsignal.instrument_html import decode_attr, scan_html, splice
from mailsignal.model import TrackingDecision
from mailsignal.outgoing import build_message

MAIL = Path(__file__).parent / "fixtures" / "mail"
PIXEL = "https://t.example/o/PIXEL"
HONEYPOT = "https://t.example/h/TRAP"
PIXEL_TAG = (
    '<img src="https://t.example/o/PIXEL" width="1" height="1" alt="" border="0" '
    'style="width:1px;height:1px;border:0;margin:0;padding:0;display:block;overflow:hidden">'
)
HONEYPOT_TAG = (
    '<a href="https://t.example/h/TRAP" data-mailsignal-notrack aria-hidden="true" tabindex="-1" '
    'style="display:none!important;mso-hide:all;font-size:0;line-height:0;max-height:0;'
    'max-width:0;overflow:hidden;opacity:0"></a>'
)
FIXTURES = [
    "outlook_cp1252_qp.eml",
    "gmail_utf8_qp.eml",
    "apple_mail_related.eml",
    "mjml_newsletter_base64.eml",
    "thunderbird_text_only.eml",
    "html_attachment.eml",
]


class Recorder:
    """A rewrite() that hands out numbered tracking URLs and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, url: str) -> str:
        self.calls.append(url)
        return self.token(url)

    def token(self, url: str) -> str:
        return f"https://t.example/c/{self.calls.index(url) + 1:04d}"


class Const(Recorder):
    """A rewrite() that returns the same URL for every link."""

    def __init__(self, value: str) -> None:
        super().__init__()
        self.value = value

    def __call__(self, url: str) -> str:
        self.calls.append(url)
        return self.value


def load(name: str) -> EmailMessage:
    return parse_message((MAIL / name).read_bytes())


def body(msg: Message, ctype: str, index: int = 0) -> str:
    """Decoded text of the index-th non-attachment part of `ctype`."""
    parts = [
        p
        for p in msg.walk()
        if p.get_content_type() == ctype and p.get_content_disposition() != "attachment"
    ]
    payload = parts[index].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(parts[index].get_content_charset() or "utf-8")


def restore(text: str, rec: Recorder, raw: dict[str, str]) -> str:
    """Put the original attribute text (`raw[url]`, or the URL itself) back for each token."""
    for url in rec.calls:
        text = text.replace(rec.token(url), raw.get(url, url))
    return text


def html_message(markup: str, cte: str = "8bit", charset: str = "utf-8") -> EmailMessage:
    head = (
        "From: a@example.com\nTo: b@example.com\nSubject: t\nMIME-Version: 1.0\n"
        f"Content-Type: text/html; charset={charset}\nContent-Transfer-Encoding: {cte}\n\n"
    )
    return parse_message(head.encode("ascii") + markup.encode(charset))


def spliced(markup: str, rewrite: Recorder | None = None) -> str:
    out = instrument(html_message(markup), rewrite or Recorder(), None)
    return body(out, "text/html")


# --- decide ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("org", "sender", "recipient", "expected"),
    [
        (True, True, True, TrackingDecision(True, ())),
        (False, True, True, TrackingDecision(False, ("org.monitoring_disabled",))),
        (True, False, True, TrackingDecision(False, ("sender.not_opted_in",))),
        (True, True, False, TrackingDecision(False, ("recipient.do_not_track",))),
        (
            False,
            True,
            False,
            TrackingDecision(False, ("org.monitoring_disabled", "recipient.do_not_track")),
        ),
        (
            False,
            False,
            False,
            TrackingDecision(
                False,
                ("org.monitoring_disabled", "sender.not_opted_in", "recipient.do_not_track"),
            ),
        ),
    ],
)
def test_decide(org: bool, sender: bool, recipient: bool, expected: TrackingDecision) -> None:
    assert decide(org, sender, recipient) == expected


# --- parse_message -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty message: expected an RFC 5322 email with headers and a body"),
        (" \r\n\r\n", "empty message: expected an RFC 5322 email with headers and a body"),
        (
            b"not an email at all",
            "not an email message: no header block with From/To/Subject/Date/MIME-Version",
        ),
        (
            "X-Foo: bar\n\n<html><a href='https://a.example/'>x</a></html>",
            "not an email message: no header block with From/To/Subject/Date/MIME-Version",
        ),
        (
            b"From: a@example.com\nContent-Type: multipart/mixed\n\nno boundary",
            "broken MIME structure in multipart/mixed part: NoBoundaryInMultipartDefect, "
            "MultipartInvariantViolationDefect",
        ),
        (
            b"From: a@example.com\nContent-Type: multipart/mixed; boundary=zz\n\nnothing",
            "broken MIME structure in multipart/mixed part: StartBoundaryNotFoundDefect, "
            "MultipartInvariantViolationDefect",
        ),
        (
            (MAIL / "image_only.eml").read_bytes(),
            "no text/html or text/plain body part to track (found: image/png)",
        ),
        (
            b"From: a@example.com\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR",
            "no text/html or text/plain body part to track (found: text/calendar)",
        ),
    ],
)
def test_parse_message_rejects(raw: bytes | str, message: str) -> None:
    with pytest.raises(MimeError) as caught:
        parse_message(raw)
    assert caught.value.message == message
    assert caught.value.code == "invalid_mime"


def test_parse_message_rejects_a_message_whose_only_html_is_attached() -> None:
    raw = (
        b'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b'--b\nContent-Type: text/html; name="r.html"\nContent-Disposition: attachment\n\n'
        b'<a href="https://a.example/">x</a>\n--b--\n'
    )
    with pytest.raises(MimeError, match=r"no text/html or text/plain body part"):
        parse_message(raw)


def test_parse_message_accepts_str_without_message_id() -> None:
    msg = parse_message("From: a@example.com\nSubject: Grüße\n\nSee https://a.example/x – ok\n")
    assert "Message-ID" not in msg
    assert msg["Subject"] == "Grüße"
    assert extract_links(msg) == [LinkRef("https://a.example/x", "", "text")]


@pytest.mark.parametrize("name", FIXTURES)
def test_parse_message_accepts_fixtures(name: str) -> None:
    assert isinstance(load(name), EmailMessage)


# --- extract_links --------------------------------------------------------------------

EXPECTED_LINKS = {
    "outlook_cp1252_qp.eml": [
        LinkRef("https://www.example.de/angebot?id=4711&ref=mail", "Angebot für 2025", "html"),
        LinkRef(
            "https://files.example.de/produkt/blatt.pdf",
            "https://files.example.de/produkt/blatt.pdf",
            "html",
        ),
        LinkRef(
            "https://outlook.office365.com/owa/calendar/Vertrieb@example.de/bookings/",
            "Buchungsseite",
            "html",
        ),
        LinkRef("https://www.example.de/", "www.example.de", "html"),
    ],
    "gmail_utf8_qp.eml": [
        LinkRef(
            "https://docs.google.com/document/d/1AbCdEfGhIjKlMnOpQrStUvWxYz/edit"
            "?usp=sharing&ouid=104857600&rtpof=true&sd=true",
            "Q3 plan – draft",
            "html",
        ),
        LinkRef(
            "https://example.com/reports/q3?team=growth&view=summary#revenue",
            "revenue sheet",
            "html",
        ),
        LinkRef("https://example.com", "example.com", "html"),
        LinkRef(
            "http://intranet.example.org/plans/2024",
            "http://intranet.example.org/plans/2024",
            "html",
        ),
    ],
    "apple_mail_related.eml": [
        LinkRef(
            "https://photos.example.net/album/7Gk2?key=Zx9&lang=fr", "our shared album", "html"
        ),
        LinkRef(
            "https://tickets.example.net/e/42?seat=A1&utm_source=mail",
            "tickets.example.net",
            "html",
        ),
    ],
    "mjml_newsletter_base64.eml": [
        LinkRef(
            "https://northwind.example/?utm_source=digest&utm_medium=email&utm_campaign=2025-11",
            "",
            "html",
        ),
        LinkRef(
            "https://northwind.example/blog/winter-pricing?lang=de&region=eu",
            "what changes for you",
            "html",
        ),
        LinkRef(
            "https://northwind.example/dashboard?from=digest&cta=button",
            "Open your new dashboard",
            "html",
        ),
        LinkRef("https://northwind.example/stories?src=digest", "Read the stories", "html"),
        LinkRef(
            "https://northwind.example/stories?src=digest&client=outlook",
            "Read the stories",
            "html",
        ),
    ],
    "thunderbird_text_only.eml": [
        LinkRef("https://cloud.example.org/s/Qm7xPz2K", "", "text"),
        LinkRef("https://cloud.example.org/s/Fotos2025", "", "text"),
        LinkRef("https://de.wikipedia.org/wiki/Simple_Mail_Transfer_Protocol", "", "text"),
        LinkRef("https://en.wikipedia.org/wiki/Email_(disambiguation)", "", "text"),
        LinkRef("https://www.rfc-editor.org/rfc/rfc5322.html#section-3.6", "", "text"),
        LinkRef("https://workshop.example.org/2025?lang=de&ref=sig", "", "text"),
    ],
    "html_attachment.eml": [
        LinkRef(
            "https://grafana.example.net/d/uptime?orgId=1&from=now-30d",
            "https://grafana.example.net/d/uptime?orgId=1&from=now-30d",
            "html",
        ),
    ],
}


@pytest.mark.parametrize("name", FIXTURES)
def test_extract_links_fixtures(name: str) -> None:
    assert extract_links(load(name)) == EXPECTED_LINKS[name]


def test_extract_links_order_uniqueness_and_text() -> None:
    raw = (
        'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"'
        "\n\n--b\nContent-Type: text/plain; charset=utf-8\n\n"
        "Only in text: https://c.example/text-only, also https://b.example/2.\n"
        "--b\nContent-Type: text/html; charset=utf-8\n\n"
        '<p><a href="https://b.example/2"><img src="cid:x" alt="Logo"></a>'
        '<a href="https://a.example/1">  first\n\t text  </a>'
        '<a href="https://b.example/2">  now   with\ntext </a>'
        '<a href="https://a.example/1">second text</a>'
        f'<a href="https://d.example/long">{"word " * 60}</a></p>\n--b--\n'
    )
    assert extract_links(parse_message(raw)) == [
        LinkRef("https://b.example/2", "now with text", "html"),
        LinkRef("https://a.example/1", "first text", "html"),
        LinkRef("https://d.example/long", ("word " * 40).strip(), "html"),
        LinkRef("https://c.example/text-only", "", "text"),
    ]


def test_extract_links_skips_attached_messages() -> None:
    raw = (
        'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee the forwarded mail.\n"
        "--b\nContent-Type: message/rfc822\n\n"
        "From: c@example.com\nContent-Type: text/html\n\n"
        '<a href="https://inner.example/">inner</a>\n--b--\n'
    )
    msg = parse_message(raw)
    assert extract_links(msg) == []
    assert instrument(msg, Recorder(), PIXEL).as_bytes() == msg.as_bytes()


@pytest.mark.parametrize(
    "anchor",
    [
        '<a href="mailto:x@example.com">m</a>',
        '<a href="tel:+4930123">t</a>',
        '<a href="sms:+4930123">s</a>',
        '<a href="#top">t</a>',
        '<a href="/relative/path">r</a>',
        '<a href="//cdn.example.com/x">p</a>',
        '<a href="javascript:alert(1)">j</a>',
        '<a href="ftp://files.example.com/x">f</a>',
        '<a href="https:///nohost">n</a>',
        '<a name="x">no href</a>',
        '<a href="https://n.example/1" data-notrack>n</a>',
        '<a href="https://n.example/2" data-notrack="">n</a>',
        "<a href='https://n.example/3' DATA-MAILSIGNAL-NOTRACK='yes'>n</a>",
        '<a clicktracking=off href="https://n.example/4">n</a>',
        '<a href="https://n.example/5" clicktracking="OFF">n</a>',
        '<v:roundrect href="https://n.example/vml-outside-comment">n</v:roundrect>',
        '<!-- <a href="https://n.example/plain-comment">n</a> -->',
        '<link rel="stylesheet" href="https://n.example/style.css">',
        '<style>a { background: url("https://n.example/bg.png") }</style>',
    ],
)
def test_not_trackable_links_are_left_alone(anchor: str) -> None:
    markup = f"<html><body>{anchor}</body></html>"
    msg = html_message(markup)
    rec = Recorder()
    assert extract_links(msg) == []
    assert spliced(markup, rec) == markup
    assert rec.calls == []


@pytest.mark.parametrize(
    ("anchor", "url"),
    [
        ('<a href="https://a.example/x">x</a>', "https://a.example/x"),
        ('<A HREF="HTTPS://A.example/Up">x</A>', "HTTPS://A.example/Up"),
        ('<a href=" \n https://a.example/ws \t">x</a>', "https://a.example/ws"),
        ('<a href="https://a.example/wr\r\napped\t">x</a>', "https://a.example/wrapped"),
        ("<area shape=rect coords=0,0,9,9 href=https://a.example/map>", "https://a.example/map"),
        (
            '<a href="https://a.example/?a=1&amp;b=2&#38;c=3&#x26;d=4">x</a>',
            "https://a.example/?a=1&b=2&c=3&d=4",
        ),
        # browsers keep a legacy reference literal before '=' or an alphanumeric
        (
            '<a href="https://a.example/?x=&copy;&copy=1&notit;&reg">x</a>',
            "https://a.example/?x=©&copy=1&notit;®",
        ),
        ('<a href="https://a.example/?a=1" clicktracking="on">x</a>', "https://a.example/?a=1"),
        ('<a title="a > b" href="https://a.example/gt">x</a>', "https://a.example/gt"),
        ("<a href='https://a.example/q?\"x\"'>x</a>", 'https://a.example/q?"x"'),
    ],
)
def test_trackable_link_forms(anchor: str, url: str) -> None:
    msg = html_message(f"<p>{anchor}</p>")
    assert [link.url for link in extract_links(msg)] == [url]


def test_decode_attr_matches_browser_rules() -> None:
    assert decode_attr("?lang=de&region=eu&amp;x=1") == "?lang=de&region=eu&x=1"
    assert decode_attr("&lt;&gt&quot;&#34;&#x27;&unknown;&") == '<>""\'&unknown;&'
    assert decode_attr("a&ampb") == "a&ampb"
    assert decode_attr("a&amp b") == "a& b"


# --- instrument on the fixtures --------------------------------------------------------

RAW_HREFS = {  # how each URL is written in the fixture's HTML, where that differs
    "https://www.example.de/angebot?id=4711&ref=mail": (
        "https://www.example.de/angebot?id=4711&amp;ref=mail"
    ),
    "https://docs.google.com/document/d/1AbCdEfGhIjKlMnOpQrStUvWxYz/edit"
    "?usp=sharing&ouid=104857600&rtpof=true&sd=true": (
        "https://docs.google.com/document/d/1AbCdEfGhIjKlMnOpQrStUvWxYz/edit"
        "?usp=sharing&amp;ouid=104857600&amp;rtpof=true&amp;sd=true"
    ),
    "https://example.com/reports/q3?team=growth&view=summary#revenue": (
        "https://example.com/reports/q3?team=growth&amp;view=summary#revenue"
    ),
    "https://photos.example.net/album/7Gk2?key=Zx9&lang=fr": (
        "https://photos.example.net/album/7Gk2?key=Zx9&amp;lang=fr"
    ),
    "https://tickets.example.net/e/42?seat=A1&utm_source=mail": (
        "https://tickets.example.net/e/42?seat=A1&amp;utm_source=mail"
    ),
    "https://northwind.example/dashboard?from=digest&cta=button": (
        "https://northwind.example/dashboard?from=digest&amp;cta=button"
    ),
    "https://northwind.example/stories?src=digest&client=outlook": (
        "https://northwind.example/stories?src=digest&amp;client=outlook"
    ),
    "https://grafana.example.net/d/uptime?orgId=1&from=now-30d": (
        "https://grafana.example.net/d/uptime?orgId=1&amp;from=now-30d"
    ),
}
BODY_TAGS = {  # the <body> start tag the honeypot follows ("" = none: it goes first)
    "outlook_cp1252_qp.eml": (
        '<body lang=DE link="#0563C1" vlink="#954F72" style=\'word-wrap:break-word\'>'
    ),
    "gmail_utf8_qp.eml": "",
    "apple_mail_related.eml": (
        '<body style="overflow-wrap: break-word; -webkit-nbsp-mode: space; '
        'line-break: after-white-space;">'
    ),
    "mjml_newsletter_base64.eml": '<body style="word-spacing:normal;background-color:#F4F4F4;">',
    "html_attachment.eml": "<body>",
}


@pytest.mark.parametrize("name", sorted(BODY_TAGS))
def test_html_is_byte_identical_except_urls_pixel_and_honeypot(name: str) -> None:
    msg = load(name)
    rec = Recorder()
    out = instrument(msg, rec, PIXEL, HONEYPOT)
    before, after = body(msg, "text/html"), body(out, "text/html")
    expected = before.replace("</body>", PIXEL_TAG + "</body>") if "</body>" in before else before
    if "</body>" not in before:
        expected += PIXEL_TAG
    tag = BODY_TAGS[name]
    if tag:
        assert expected.count(tag) == 1
        expected = expected.replace(tag, tag + HONEYPOT_TAG, 1)
    else:
        expected = HONEYPOT_TAG + expected
    assert sorted(set(rec.calls)) == sorted(link.url for link in extract_links(msg))
    assert len(rec.calls) == len(set(rec.calls))  # once per distinct URL
    assert restore(after, rec, RAW_HREFS) == expected
    assert after.count(PIXEL) == 1
    assert after.count(HONEYPOT) == 1


@pytest.mark.parametrize("name", FIXTURES)
def test_text_part_urls_rewritten_rest_identical(name: str) -> None:
    msg = load(name)
    rec = Recorder()
    out = instrument(msg, rec, PIXEL, HONEYPOT)
    before, after = body(msg, "text/plain"), body(out, "text/plain")
    assert restore(after, rec, {}) == before
    assert PIXEL not in after
    assert HONEYPOT not in after


def test_outlook_cp1252_details() -> None:
    msg = load("outlook_cp1252_qp.eml")
    rec = Recorder()
    out = instrument(msg, rec, PIXEL)
    offer = rec.token("https://www.example.de/angebot?id=4711&ref=mail")
    text, markup = body(out, "text/plain"), body(out, "text/html")
    # Outlook writes "text<url>": the '>' is not part of the URL
    assert f"unser Angebot für 2025<{offer}> – der Preis liegt bei 1.250 € netto." in text
    assert "Tel. +49 30 1234567<tel:+49301234567> | " in text
    assert f'<a href="{offer}">Angebot für 2025</a> – der Preis liegt bei 1.250 € netto' in markup
    assert '<a href="tel:+49301234567">' in markup
    assert '<a href="mailto:joerg.becker@example.de">' in markup
    assert "<![if !supportLists]>" in markup
    assert "Mit freundlichen Grüßen" in markup and "Eine naïve Frage" in markup
    for part in (p for p in out.walk() if p.get_content_maintype() == "text"):
        assert part.get_content_charset() == "windows-1252"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    raw = out.as_bytes()
    assert b"Gr=FC=DFe" in raw and b"=80 netto" in raw  # still windows-1252 bytes, QP


def test_gmail_duplicates_share_one_token_and_anchors_stay() -> None:
    msg = load("gmail_utf8_qp.eml")
    rec = Recorder()
    out = instrument(msg, rec, PIXEL, HONEYPOT)
    markup = body(out, "text/html")
    sheet = rec.token("https://example.com/reports/q3?team=growth&view=summary#revenue")
    assert markup.count(f'<a href="{sheet}">') == 2
    assert '<a href="#m_-1234567890_section2">2</a>' in markup
    assert '<a href="tel:+14155550123">' in markup
    assert markup.startswith(HONEYPOT_TAG + '<div dir="ltr">Hi Tom,')
    assert markup.endswith("</blockquote></div>\n" + PIXEL_TAG)
    text = body(out, "text/plain")
    assert "Section 2 <#m_-1234567890_section2> still needs love." in text
    intranet = rec.token("http://intranet.example.org/plans/2024")
    assert f"> {intranet}\n" in text


def test_mjml_vml_button_and_notrack() -> None:
    msg = load("mjml_newsletter_base64.eml")
    rec = Recorder()
    out = instrument(msg, rec, PIXEL, HONEYPOT)
    markup = body(out, "text/html")
    button = rec.token("https://northwind.example/dashboard?from=digest&cta=button")
    assert f'w="urn:schemas-microsoft-com:office:word" href="{button}" style="height:44px;' in (
        markup
    )
    assert f'<a href="{button}" style="background-color:#1a73e8;' in markup
    outlook = rec.token("https://northwind.example/stories?src=digest&client=outlook")
    assert f'<!--[if mso]><a href="{outlook}" style="color:#1a73e8;">' in markup
    # legacy "&region" is not the ® entity in an attribute: passed on literally
    assert "https://northwind.example/blog/winter-pricing?lang=de&region=eu" in rec.calls
    for untouched in (
        '<a href="https://news.northwind.example/view/2025-11?sub=8f3a" clicktracking="off"',
        '<a href="https://news.northwind.example/unsubscribe?sub=8f3a&amp;list=digest" '
        "data-mailsignal-notrack",
        '<a href="https://northwind.example/privacy" data-notrack="true"',
        '<a href="#stories"',
        '<a href="https://legacy.northwind.example/stories">stories</a> -->',
    ):
        assert untouched in markup
    text = body(out, "text/plain")
    # what the HTML marks not-to-track is not tracked in the text alternative either
    assert "View in browser: https://news.northwind.example/view/2025-11?sub=8f3a\n" in text
    assert "Unsubscribe: https://news.northwind.example/unsubscribe?sub=8f3a&list=digest" in text
    pricing = rec.token("https://northwind.example/blog/winter-pricing?lang=de&region=eu")
    assert f"changes for you ({pricing})." in text
    html_part = next(p for p in out.walk() if p.get_content_type() == "text/html")
    assert html_part["Content-Transfer-Encoding"] == "base64"
    assert out["List-Unsubscribe"] == msg["List-Unsubscribe"]


def test_apple_mail_inline_image_and_structure_kept() -> None:
    msg = load("apple_mail_related.eml")
    out = instrument(msg, Recorder(), PIXEL, HONEYPOT)
    shape = [(p.get_content_type(), p.get_content_disposition()) for p in out.walk()]
    assert shape == [
        ("multipart/alternative", None),
        ("text/plain", None),
        ("multipart/related", None),
        ("text/html", None),
        ("image/jpeg", "inline"),
    ]
    old_img, new_img = (
        next(p for p in m.walk() if p.get_content_maintype() == "image") for m in (msg, out)
    )
    assert new_img.as_bytes() == old_img.as_bytes()
    assert '<img apple-inline="yes" id="8E1F4C7B' in body(out, "text/html")
    assert body(out, "text/html").endswith(f"<br>{PIXEL_TAG}</body></html>\n")


def test_html_attachment_never_changes() -> None:
    msg = load("html_attachment.eml")
    out = instrument(msg, Recorder(), PIXEL, HONEYPOT)
    old_att, new_att = (
        next(p for p in m.walk() if p.get_content_disposition() == "attachment") for m in (msg, out)
    )
    assert new_att.as_bytes() == old_att.as_bytes()
    report = new_att.get_payload(decode=True)
    assert isinstance(report, bytes)
    assert b'href="https://status.example.net/history?month=2025-10&amp;tz=UTC"' in report
    assert PIXEL not in report.decode()
    grafana = 'href="https://grafana.example.net/d/uptime?orgId=1&amp;from=now-30d"'
    assert grafana in body(msg, "text/html")
    assert grafana not in body(out, "text/html")
    for part in (p for p in out.walk() if p.get_content_type() in ("text/plain", "text/html")):
        if part.get_content_disposition() != "attachment":
            assert part["Content-Transfer-Encoding"] == "7bit"


def test_text_only_gets_links_but_no_pixel() -> None:
    msg = load("thunderbird_text_only.eml")
    rec = Recorder()
    out = instrument(msg, rec, PIXEL, HONEYPOT)
    text = body(out, "text/plain")
    slides = rec.token("https://cloud.example.org/s/Qm7xPz2K")
    wiki = rec.token("https://en.wikipedia.org/wiki/Email_(disambiguation)")
    rfc = rec.token("https://www.rfc-editor.org/rfc/rfc5322.html#section-3.6")
    photos = rec.token("https://cloud.example.org/s/Fotos2025")
    assert f"die Folien vom Workshop liegen hier: {slides}. \n" in text
    assert f"(inkl. Fotos, siehe {photos}) \n" in text
    assert f"und {wiki}, außerdem \n<{rfc}>.\n" in text
    assert "mailto:orga@example.org" in text
    assert "Viele Grüße\nSøren" in text
    assert PIXEL not in text and HONEYPOT not in text
    assert str(out["Content-Type"]) == str(msg["Content-Type"])
    assert out.get_param("format") == "flowed"
    assert out["Content-Transfer-Encoding"] == "8bit"
    assert "Søren Østergaard".encode() in out.as_bytes()


@pytest.mark.parametrize("name", FIXTURES)
def test_input_message_is_not_modified(name: str) -> None:
    msg = load(name)
    before = msg.as_bytes()
    snapshot = copy.deepcopy(msg)
    instrument(msg, Recorder(), PIXEL, HONEYPOT)
    assert msg.as_bytes() == before
    assert [(k, str(v)) for k, v in msg.items()] == [(k, str(v)) for k, v in snapshot.items()]


@pytest.mark.parametrize("name", FIXTURES)
def test_round_trip_keeps_content_headers_charset_and_cte(name: str) -> None:
    original = load(name)
    rec = Recorder()
    out = instrument(original, rec, PIXEL, HONEYPOT)
    again = parse_message(out.as_bytes())
    for old, new, back in zip(original.walk(), out.walk(), again.walk(), strict=True):
        assert [(k, str(v)) for k, v in new.items()] == [(k, str(v)) for k, v in old.items()]
        assert [(k, str(v)) for k, v in back.items()] == [(k, str(v)) for k, v in old.items()]
        if not new.is_multipart():
            assert _lf(back.get_payload(decode=True)) == _lf(new.get_payload(decode=True))
            assert back.get_content_charset() == old.get_content_charset()
    # the honeypot is marked not-to-track, so only the rewritten links are found again
    assert extract_links(again) == [
        LinkRef(rec.token(ref.url), ref.text, ref.part) for ref in extract_links(original)
    ]


def _lf(payload: object) -> bytes:
    """A decoded payload with CRLF as LF: the generator writes text lines with its linesep."""
    assert isinstance(payload, bytes)
    return payload.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("name", FIXTURES)
def test_serialised_headers_are_as_received(name: str) -> None:
    raw = (MAIL / name).read_bytes().replace(b"\r\n", b"\n")
    out = instrument(parse_message(raw), Recorder(), PIXEL, HONEYPOT).as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    # the stdlib writes an empty header value as "Name: " (with a space)
    assert out.split(b"\n\n", 1)[0] == head.replace(b":\n", b": \n")


# --- splicing details ---------------------------------------------------------------


def test_rewritten_value_is_escaped_for_each_quoting_style() -> None:
    markup = (
        '<p><a href="https://a.example/?a=1&amp;b=2">dq</a>'
        "<a href='https://b.example/?a=1&amp;b=2'>sq</a>"
        "<a href=https://c.example/?a=1&amp;b=2 class=x>uq</a></p>"
    )
    seen: list[str] = []

    def target(url: str) -> str:
        return url.replace("https://", "https://t.example/r?u=") + '&q="it\'s"<x>'

    def rewrite(url: str) -> str:
        seen.append(url)
        return target(url)

    out = body(instrument(html_message(markup), rewrite, None), "text/html")
    assert seen == [
        "https://a.example/?a=1&b=2",
        "https://b.example/?a=1&b=2",
        "https://c.example/?a=1&b=2",
    ]
    assert out == (
        '<p><a href="https://t.example/r?u=a.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;'
        '&lt;x&gt;">dq</a>'
        "<a href='https://t.example/r?u=b.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;"
        "&lt;x&gt;'>sq</a>"
        '<a href="https://t.example/r?u=c.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;'
        '&lt;x&gt;" class=x>uq</a></p>'
    )
    assert [link.url for link in scan_html(out).links] == [target(u) for u in seen]


def test_non_ascii_rewrite_result_is_percent_encoded() -> None:
    markup = '<a href="https://a.example/">x</a>'
    out = spliced(markup, Const("https://t.example/c/ünï code"))
    assert out == '<a href="https://t.example/c/%C3%BCn%C3%AF%20code">x</a>'


def test_conditional_comment_variants() -> None:
    markup = (
        '<body>\n<!--[if mso]>\n<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
        'href="https://a.example/vml"><w:anchorlock/><center>Go</center></v:roundrect>\n'
        "<![endif]-->\n"
        '<!--[if !mso]><!--><a href="https://a.example/html">Go</a><!--<![endif]-->\n'
        '<!--[if gte mso 9]><v:rect href="https://a.example/rect" fill="true"/><![endif]-->\n'
        '<!--[if (gte mso 9)|(IE)]><table><tr><td><a href="https://a.example/ie">ie</a>'
        "</td></tr></table><![endif]-->\n"
        '<!-- [if mso]><a href="https://a.example/spaced">s</a><![endif] -->\n</body>'
    )
    rec = Recorder()
    out = spliced(markup, rec)
    assert rec.calls == [
        "https://a.example/vml",
        "https://a.example/html",
        "https://a.example/rect",
        "https://a.example/ie",
        "https://a.example/spaced",
    ]
    assert restore(out, rec, {}) == markup
    assert [(r.url, r.text) for r in extract_links(html_message(markup))] == [
        ("https://a.example/vml", "Go"),
        ("https://a.example/html", "Go"),
        ("https://a.example/rect", ""),
        ("https://a.example/ie", "ie"),
        ("https://a.example/spaced", "s"),
    ]


def test_honeypot_without_body_tag_goes_after_head() -> None:
    markup = (
        '<!DOCTYPE html><html><head><title>x</title></head ><p><a href="https://a.example/">a</a>'
    )
    out = splice(markup, scan_html(markup), lambda u: u, PIXEL, HONEYPOT)
    assert out == (
        "<!DOCTYPE html><html><head><title>x</title></head >"
        + HONEYPOT_TAG
        + '<p><a href="https://a.example/">a</a>'
        + PIXEL_TAG
    )
    fragment = "<p>hi</p>"
    assert splice(fragment, scan_html(fragment), str, PIXEL, HONEYPOT) == (
        HONEYPOT_TAG + fragment + PIXEL_TAG
    )
    bare = "<!doctype html>\n<html lang=en>\n<p>hi</p></html>"
    assert splice(bare, scan_html(bare), str, None, HONEYPOT) == (
        "<!doctype html>\n<html lang=en>" + HONEYPOT_TAG + "\n<p>hi</p></html>"
    )
    doctype = "<!doctype html>\n<p>hi</p>"
    assert splice(doctype, scan_html(doctype), str, None, HONEYPOT) == (
        "<!doctype html>" + HONEYPOT_TAG + "\n<p>hi</p>"
    )


def test_pixel_goes_before_the_last_body_end_and_honeypot_is_hidden() -> None:
    markup = "<html><body class=a><p>x</p></body><p>junk</p></BODY ></html>"
    out = splice(markup, scan_html(markup), str, PIXEL, HONEYPOT)
    assert out == (
        "<html><body class=a>"
        + HONEYPOT_TAG
        + "<p>x</p></body><p>junk</p>"
        + PIXEL_TAG
        + "</BODY ></html>"
    )
    trap = scan_html(out)
    assert trap.links == [] and trap.notrack == {HONEYPOT}
    for attribute in ('aria-hidden="true"', 'tabindex="-1"', "display:none!important"):
        assert attribute in HONEYPOT_TAG
    assert HONEYPOT_TAG.endswith('"></a>')  # no text a person could see or hear


def test_split_html_body_gets_one_honeypot_and_one_pixel() -> None:
    # Apple Mail sends a body with an inline attachment as html, image, html
    raw = (
        'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/html; charset=utf-8\n\n"
        '<html><head></head><body><div>one <a href="https://a.example/1">1</a></div></body></html>'
        "\n--b\nContent-Type: image/png; name=x.png\nContent-Disposition: inline; filename=x.png\n"
        "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
        "--b\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head></head><body><div>two</div></body></html>\n--b--\n"
    )
    out = instrument(parse_message(raw), Recorder(), PIXEL, HONEYPOT)
    first, second = body(out, "text/html", 0), body(out, "text/html", 1)
    assert first == (
        "<html><head></head><body>"
        + HONEYPOT_TAG
        + '<div>one <a href="https://t.example/c/0001">1</a></div></body></html>'
    )
    assert second == "<html><head></head><body><div>two</div>" + PIXEL_TAG + "</body></html>"


def test_7bit_part_switches_to_quoted_printable_only_when_needed() -> None:
    markup = '<p><a href="https://a.example/">a</a></p>'
    short = instrument(html_message(markup, cte="7bit"), Recorder(), None)
    assert short["Content-Transfer-Encoding"] == "7bit"
    long_url = "https://t.example/c/" + "x" * 1200
    out = instrument(html_message(markup, cte="7bit"), Const(long_url), None)
    assert out["Content-Transfer-Encoding"] == "quoted-printable"
    assert body(out, "text/html") == f'<p><a href="{long_url}">a</a></p>'
    assert max(len(line) for line in out.as_bytes().splitlines()) <= 78
    latin = instrument(html_message("<p>Grüße</p>", "8bit", "iso-8859-1"), Recorder(), PIXEL)
    assert latin["Content-Transfer-Encoding"] == "8bit"
    assert latin.get_content_charset() == "iso-8859-1"
    assert "Grüße".encode("iso-8859-1") in latin.as_bytes()
    assert body(latin, "text/html") == "<p>Grüße</p>" + PIXEL_TAG


def test_undecodable_bytes_and_crlf_survive() -> None:
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b'<p>caf\xe9 \xff <a href="https://a.example/?q=\xe9">x</a> '
        b'<a href="https://b.example/">b</a></p>\r\n'
    )
    msg = parse_message(raw)
    assert [link.url for link in extract_links(msg)] == ["https://b.example/"]
    out = instrument(msg, Recorder(), None)
    payload = out.get_payload(decode=True)
    assert payload == (
        b'<p>caf\xe9 \xff <a href="https://a.example/?q=\xe9">x</a> '
        b'<a href="https://t.example/c/0001">b</a></p>\r\n'
    )


def test_unclosed_anchor_text_ends_at_the_next_anchor() -> None:
    markup = '<p><a href="https://a.example/1">one <a href="https://a.example/2">two</a> three'
    assert [(r.url, r.text) for r in extract_links(html_message(markup))] == [
        ("https://a.example/1", "one"),
        ("https://a.example/2", "two"),
    ]


def test_text_part_with_a_file_name_is_an_attachment() -> None:
    raw = (
        'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nBody https://a.example/body\n"
        '--b\nContent-Type: text/plain; name="notes.txt"\n'
        'Content-Disposition: inline; filename="notes.txt"\n\nNotes https://a.example/notes\n'
        "--b--\n"
    )
    msg = parse_message(raw)
    assert extract_links(msg) == [LinkRef("https://a.example/body", "", "text")]
    out = instrument(msg, Recorder(), PIXEL)
    assert body(out, "text/plain", 1) == "Notes https://a.example/notes"
    assert body(out, "text/plain", 0) == "Body https://t.example/c/0001"


def test_link_text_is_sanitised_and_area_has_none() -> None:
    markup = (
        '<map name=m><area href="https://a.example/area" alt="Area"></map>'
        '<a href="https://a.example/b"><b>Bold</b>&nbsp;&amp; <i>more</i></a>'
    )
    assert extract_links(html_message(markup)) == [
        LinkRef("https://a.example/area", "", "html"),
        LinkRef("https://a.example/b", "Bold & more", "html"),
    ]


def test_pathological_inputs_finish() -> None:
    started = time.perf_counter()
    # unclosed tags at the end are quadratic in HTMLParser.close() before Python 3.13.5
    unclosed = "<p>" + "<a href='https://a.example/" * 50_000
    assert spliced(unclosed) == unclosed
    text = "https://a.example/" + ")" * 200_000 + " " + "x&" * 100_000
    msg = parse_message(("From: a@example.com\n\n" + text).encode())
    assert extract_links(msg) == [LinkRef("https://a.example/", "", "text")]
    markup = (
        "<p>" + '<a href="https://a.example/?x=1&amp;y">x</a>' * 20_000 + "<!--[if mso]>" * 5_000
    )
    rec = Recorder()
    out = spliced(markup, rec)
    assert rec.calls == ["https://a.example/?x=1&y"]
    assert out.count('href="https://t.example/c/0001"') == 20_000
    assert time.perf_counter() - started < 20  # quadratic behaviour would take minutes


# --- prepare once, render each copy ----------------------------------------------------

SYNTHETIC = {
    # 7bit HTML whose lines outgrow 998 bytes with a long tracking URL: the copy gets QP
    "seven_bit": (
        b"From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/html\n"
        b"Content-Transfer-Encoding: 7bit\n\n" + b'<p><a href="https://a.example/">a</a>'
        b"" + b"x" * 900 + b"</p>\n"
    ),
    # CRLF, an 8bit body with bytes its charset cannot read, preamble and epilogue
    "crlf_8bit": (
        b'From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
        b"\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 https://a.example/t\r\n--b\r\n"
        b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b'<html><body>Gr\xfc\xdfe <a href="https://a.example/h">h</a></body></html>\r\n'
        b"--b--\r\nepilogue\r\n"
    ),
}


def _prepared_message(name: str) -> EmailMessage:
    return load(name) if name in FIXTURES else parse_message(SYNTHETIC[name])


@pytest.mark.parametrize("name", FIXTURES + sorted(SYNTHETIC))
@pytest.mark.parametrize("linesep", [None, "\r\n", "\n"])
def test_rendered_copy_writes_the_bytes_of_the_built_copy(name: str, linesep: str | None) -> None:
    msg = _prepared_message(name)
    prepared = prepare(msg)
    assert prepared._template(linesep) is not None  # copies are written, not built
    rewrites: list[Callable[[], Recorder]] = [
        Recorder,
        lambda: Const("https://t.example/c/" + "x" * 1200),  # 7bit parts turn QP
        lambda: Const("https://t.example/c/ü"),
    ]
    for make in rewrites:
        rendered = prepared.render(make(), PIXEL, HONEYPOT)
        built = rendered.message()
        chosen = built.policy if linesep is None else built.policy.clone(linesep=linesep)
        assert rendered.as_bytes(linesep) == built.as_bytes(policy=chosen)
        assert built.as_bytes() == instrument(msg, make(), PIXEL, HONEYPOT).as_bytes()


def test_a_message_without_boundaries_is_built_for_each_copy() -> None:
    # build_message leaves the boundary to the generator, which picks a fresh one each time
    msg = build_message(
        "a@example.com", ["b@example.com"], "s", '<a href="https://a.example/">a</a>', "x"
    )
    rendered = prepare(msg).render(Recorder(), PIXEL)
    again = parse_message(rendered.as_bytes("\r\n"))
    assert body(again, "text/html") == body(rendered.message(), "text/html").replace("\n", "\r\n")
    assert 'href="https://t.example/c/0001"' in body(again, "text/html")


def test_one_prepared_message_renders_independent_copies() -> None:
    msg = load("outlook_cp1252_qp.eml")
    before = msg.as_bytes()
    prepared = prepare(msg)
    assert prepared.links == extract_links(msg)
    first, second = Recorder(), Const("https://t.example/c/same")
    one = prepared.render(first, PIXEL, HONEYPOT)
    two = prepared.render(second, None)
    assert sorted(first.calls) == sorted({link.url for link in prepared.links})
    assert len(first.calls) == len(set(first.calls))  # once per distinct URL
    assert one.as_bytes() == instrument(msg, Recorder(), PIXEL, HONEYPOT).as_bytes()
    assert two.as_bytes() == instrument(msg, Const("https://t.example/c/same"), None).as_bytes()
    assert one.as_bytes() != two.as_bytes()
    assert msg.as_bytes() == before  # neither preparing nor rendering touches the message


@pytest.mark.parametrize("name", FIXTURES)
def test_parsed_headers_are_the_default_policys(name: str) -> None:
    raw = (MAIL / name).read_bytes()
    ours, stock = parse_message(raw), email.message_from_bytes(raw, policy=policy.default)
    for mine, theirs in zip(ours.walk(), stock.walk(), strict=True):
        for (k1, v1), (k2, v2) in zip(mine.items(), theirs.items(), strict=True):
            assert (k1, str(v1), type(v1).__name__) == (k2, str(v2), type(v2).__name__)
            assert list(map(type, v1.defects)) == list(map(type, v2.defects))
        assert mine.get_content_type() == theirs.get_content_type()
        assert mine.get_params() == theirs.get_params()
        assert mine.get_filename() == theirs.get_filename()
    assert copy.deepcopy(ours).as_bytes() == stock.as_bytes()
    assert pickle.loads(pickle.dumps(ours)).as_bytes() == stock.as_bytes()  # noqa: S301


_HTMLISH = st.lists(
    st.sampled_from(
        [
            "<a href=",
            '"https://a.example/?a=1&amp;b"',
            "'https://b.example/x'",
            "https://c.example/",
            ">",
            "</a>",
            "<a ",
            "href",
            "=",
            " ",
            "\n",
            "<!--[if mso]>",
            "<![endif]-->",
            "<!--",
            "-->",
            "<v:roundrect href=",
            "<body>",
            "</body>",
            "<style>",
            "</style>",
            "data-notrack",
            "&",
            "x",
            "<",
            '"',
            "'",
            "/",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_HTMLISH)
def test_splice_round_trips_on_arbitrary_markup(markup: str) -> None:
    scan = scan_html(markup)
    marker = {link.url: f"https://t.example/{i}" for i, link in enumerate(scan.links)}
    out = splice(markup, scan, lambda u: marker[u])
    if all(link.quoted for link in scan.links):
        restored = out
        for link in sorted(scan.links, key=lambda k: k.start):
            restored = restored.replace(
                html.escape(marker[link.url]), markup[link.start : link.end], 1
            )
        assert restored == markup
    assert [link.url for link in scan_html(out).links] == [marker[x.url] for x in scan.links]
    same = splice(markup, scan, lambda u: u)
    assert [link.url for link in scan_html(same).links] == [link.url for link in scan.links]
