"""instrument/mime.py: parsing, and copies that keep every header, charset and
Content-Transfer-Encoding of the message they came from."""

from __future__ import annotations

import copy
import email
import pickle
from email import policy
from email.message import EmailMessage

import pytest

from instrument.common import (  # type: ignore[import-not-found]
    FIXTURES,
    HONEYPOT,
    MAIL,
    PIXEL,
    PIXEL_TAG,
    Const,
    Recorder,
    body,
    html_message,
    load,
)
from mailsignal.errors import MimeError
from mailsignal.instrument import (
    LinkRef,
    extract_links,
    instrument,
    parse_message,
)

# --- parse_message ------------------------------------------------------------------


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


# --- what a copy keeps --------------------------------------------------------------


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
