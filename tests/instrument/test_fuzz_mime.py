"""Hostile MIME through the instrumenter (Hypothesis, derandomized so CI is reproducible):
a message is either refused with `MimeError` or scanned, rendered and written whole, and
every link it tracks is one the tracker will redirect to (#10)."""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, given, settings

from instrument.mime_strategies import messages, nested  # type: ignore[import-not-found]
from mailsignal.errors import MimeError
from mailsignal.instrument import MAX_DEPTH, parse_message, prepare

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_CONTROL = re.compile("[\x00-\x1f\x7f]")


@FUZZ
@given(messages)
def test_hostile_mime_is_refused_or_instrumented_whole(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except MimeError as exc:
        assert exc.message
        return
    prepared = prepare(copy.deepcopy(msg))
    for link in prepared.links:
        assert link.url.startswith(("https://", "http://")), link.url
        assert not _CONTROL.search(link.url) and not _CONTROL.search(link.text)
        link.url.encode("utf-8")
        link.text.encode("utf-8")
    rendered = prepared.render(lambda url: "https://t.test/c/TOKEN", "https://t.test/o/T.gif")
    assert rendered.as_bytes(linesep="\r\n")
    assert rendered.message().as_bytes()
    assert prepared.render(str, None).as_bytes() is not None  # an untracked copy


def test_nesting_is_refused_past_the_bound_whatever_the_container() -> None:
    for kind in ("multipart/mixed", "multipart/alternative", "message/rfc822"):
        if kind == "message/rfc822":  # parsed, and refused: an attached message is not tracked
            with pytest.raises(MimeError, match="no text/html or text/plain"):
                parse_message(nested(MAX_DEPTH, kind))
        else:
            assert prepare(parse_message(nested(MAX_DEPTH, kind))).links
        for depth in (MAX_DEPTH + 1, 2_000, 50_000):
            try:
                parse_message(nested(depth, kind))
            except MimeError as exc:
                assert exc.detail == {"max_depth": MAX_DEPTH}
            else:
                raise AssertionError(f"{kind} nested {depth} deep was parsed")


@pytest.mark.parametrize(
    "body",
    [b"00000", b"00000\xc2\x80", "<a href='https://example.com/x'>x</a>".encode("utf-16-le")[:-1]],
)
def test_a_part_its_charset_cannot_carry_is_left_as_it_came(body: bytes) -> None:
    """Found by the fuzz test: a UTF-16 part with an odd byte count raised
    UnicodeDecodeError (or, decoded, UnicodeEncodeError when written): a 500."""
    raw = (
        b"From: rep@northwind.test\r\nTo: dana@contoso.test\r\nSubject: x\r\n"
        b"Content-Type: text/html; charset=utf-16\r\n\r\n" + body
    )
    prepared = prepare(parse_message(raw))
    assert prepared.links == []
    copy_ = prepared.render(lambda url: "https://t.test/c/T", "https://t.test/o/T.gif")
    assert copy_.as_bytes().endswith(body)
