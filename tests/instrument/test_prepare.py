"""instrument/prepare.py: decisions, link extraction, and each recipient's copy of the
real clients' messages, rendered from a message prepared once."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

import pytest

from instrument.common import (  # type: ignore[import-not-found]
    FIXTURES,
    HONEYPOT,
    HONEYPOT_TAG,
    PIXEL,
    PIXEL_TAG,
    Const,
    Recorder,
    body,
    load,
    restore,
)
from mailsignal.instrument import (
    LinkRef,
    decide,
    extract_links,
    instrument,
    parse_message,
    prepare,
)
from mailsignal.model import TrackingDecision
from mailsignal.outgoing import build_message

# --- decide -------------------------------------------------------------------------


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


# --- extract_links ------------------------------------------------------------------


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


# --- instrument on the fixtures -----------------------------------------------------


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


# --- prepare once, render each copy -------------------------------------------------


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
