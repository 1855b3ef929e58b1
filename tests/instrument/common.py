"""What the tests of `mailsignal.instrument` share: fixtures, fake rewrites, readers.

The fixtures in tests/fixtures/mail/ are modelled on what the clients really send:
Outlook 16 (windows-1252, QP, CRLF, Word HTML), Gmail web (UTF-8 QP, no <html>/<body>),
Apple Mail (alternative + related with an inline JPEG), an MJML newsletter with a VML
button (HTML in base64), Thunderbird plain text (format=flowed, 8bit) and a message
with an HTML report attached.
"""

from __future__ import annotations

from email.message import EmailMessage, Message
from pathlib import Path

from mailsignal.instrument import instrument, parse_message

MAIL = Path(__file__).parents[1] / "fixtures" / "mail"
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
