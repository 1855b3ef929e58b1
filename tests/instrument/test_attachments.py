"""instrument/attachments.py: which parts are attachments, and replacing them by links
on real MIME (the files and downloads are tests/mail/test_attachments.py's)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from instrument.common import MAIL  # type: ignore[import-not-found]
from mailsignal.instrument import (
    AttachmentLink,
    AttachmentPolicy,
    find_attachments,
    human_size,
    parse_message,
    replace_attachments,
)

ALL = AttachmentPolicy("all")


def _fixture(name: str) -> EmailMessage:
    return parse_message((MAIL / name).read_bytes())


def _report_bytes() -> bytes:
    raw = _fixture("html_attachment.eml")
    [part] = [p for p in raw.walk() if p.get_filename()]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def test_policy_selects_attachments() -> None:
    msg = _fixture("html_attachment.eml")
    assert find_attachments(msg, AttachmentPolicy("off")) == []
    [found] = find_attachments(msg, ALL)
    assert (found.filename, found.content_type, found.size) == (
        "uptime-2025-10.html",
        "text/html",
        317,
    )
    assert found.data == _report_bytes() and len(found.sha256) == 64
    assert find_attachments(msg, AttachmentPolicy("over_size", 318)) == []
    assert len(find_attachments(msg, AttachmentPolicy("over_size", 317))) == 1
    with pytest.raises(ValueError, match="attachment mode"):
        AttachmentPolicy("some")


def test_inline_images_and_attached_messages_stay() -> None:
    assert find_attachments(_fixture("apple_mail_related.eml"), ALL) == []  # cid: image
    forwarded = EmailMessage()
    forwarded["From"], forwarded["Subject"] = "a@x.test", "fwd"
    forwarded.set_content("see below")
    inner = _fixture("thunderbird_text_only.eml")
    forwarded.add_attachment(inner)  # message/rfc822
    assert find_attachments(forwarded, ALL) == []


def test_replacement_lists_links_in_each_body_part() -> None:
    msg = _fixture("html_attachment.eml")
    [found] = find_attachments(msg, ALL)
    link = AttachmentLink("http://track.test/a/TOKEN", "Bericht-Müller <1>.html", found.size)
    out = replace_attachments(msg, {found.index: link})
    assert find_attachments(msg, ALL) == [found]  # the input is not changed
    assert [p for p in out.walk() if p.get_filename()] == []
    html = out.get_body(("html",))
    text = out.get_body(("plain",))
    assert html is not None and text is not None
    body = html.get_content()
    assert '<a href="http://track.test/a/TOKEN">Bericht-M&#252;ller &lt;1&gt;.html</a>' in body
    assert body.index("mailsignal-attachments") < body.index("</body>")
    assert "Bericht-Müller <1>.html (317 B): http://track.test/a/TOKEN" in text.get_content()
    # The text part was 7bit; a non-ASCII name moves it to quoted-printable, not 8bit.
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "7bit"


def test_message_with_no_body_part_gets_one() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "rep@northwind.test", "the deck"
    msg.make_mixed()
    pdf = EmailMessage()
    pdf.set_content(b"%PDF-1.7 deck", maintype="application", subtype="pdf", filename="deck.pdf")
    msg.attach(pdf)
    [found] = find_attachments(msg, ALL)
    out = replace_attachments(msg, {found.index: AttachmentLink("http://t/a/X", "deck.pdf", 13)})
    [part] = out.iter_parts()
    assert part.get_content_type() == "text/plain"
    assert "deck.pdf (13 B): http://t/a/X" in part.get_content()


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 1024 * 1024 + 1)] == [
        "0 B",
        "1023 B",
        "1.0 KB",
        "5.0 MB",
    ]
