"""How deep a message nests, read before parsing (instrument/nesting.py): the count agrees
with the parser's own tree, so a message at the bound is taken and one past it is refused
without the parser (which recurses per level) ever seeing it (#10)."""

from __future__ import annotations

import email
from collections.abc import Callable
from email import policy

import pytest

from instrument.mime_strategies import nested  # type: ignore[import-not-found]
from mailsignal.errors import MimeError
from mailsignal.instrument import MAX_DEPTH, parse_message
from mailsignal.instrument.nesting import check_depth

HEAD = "From: rep@northwind.test\nTo: dana@contoso.test\nSubject: x\nMIME-Version: 1.0\n"


def _depth(data: bytes) -> int:
    """The parsed tree's depth, walked without recursion."""
    deepest, stack = 0, [(email.message_from_bytes(data, policy=policy.default), 0)]
    while stack:
        part, level = stack.pop()
        deepest = max(deepest, level)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack += [(child, level + 1) for child in payload]
    return deepest


def _refused(data: bytes, limit: int) -> bool:
    try:
        check_depth(data, limit)
    except MimeError:
        return True
    return False


def _unclosed(depth: int) -> bytes:
    """Inner multiparts never closed: the outer boundary ends them all at once."""
    inner = "".join(
        f'Content-Type: multipart/mixed; boundary="u{i}"\n\npreamble\n--u{i}\n'
        for i in range(depth)
    )
    return (
        HEAD
        + 'Content-Type: multipart/mixed; boundary="top"\n\n--top\n'
        + inner
        + "Content-Type: text/plain\n\nx\n--top\nContent-Type: text/plain\n\ny\n--top--\n"
    ).encode()


def _digest(depth: int) -> bytes:
    """Digest parts without a Content-Type are message/rfc822: two levels per digest."""
    inner = "".join(
        f'Content-Type: multipart/digest; boundary="d{i}"\n\n--d{i}\n\n' for i in range(depth)
    )
    return (HEAD + inner + "Content-Type: text/plain\n\nx\n").encode()


def _siblings(count: int) -> bytes:
    parts = "".join(
        f'--top\nContent-Type: multipart/alternative; boundary="a{i}"\n\n'
        f"--a{i}\nContent-Type: text/plain\n\nx\n--a{i}--\n"
        for i in range(count)
    )
    return (HEAD + f'Content-Type: multipart/mixed; boundary="top"\n\n{parts}--top--\n').encode()


@pytest.mark.parametrize(
    "make",
    [
        lambda n: nested(n),
        lambda n: nested(n, "message/rfc822"),
        lambda n: nested(n).replace(b"\r\n", b"\n"),
        lambda n: nested(n).replace(b"\r\n", b"\r"),
        _unclosed,
        _digest,
    ],
    ids=["multipart", "rfc822", "lf", "cr", "unclosed", "digest"],
)
def test_the_count_is_the_parsers(make: Callable[[int], bytes]) -> None:
    for n in (1, 5, 20):
        data = make(n)
        depth = _depth(data)
        assert not _refused(data, depth) and _refused(data, depth - 1), (n, depth)


def test_siblings_are_not_depth() -> None:
    data = _siblings(500)
    assert _depth(data) == 2 and not _refused(data, 2)


def test_a_boundary_line_is_the_whole_line() -> None:
    # "--b0x" is body text, not b0's boundary; trailing blanks are allowed, as the parser does.
    text = nested(3).replace(b"--n2\r\n", b"--n2x\r\n--n2 \t\r\n")
    assert _depth(text) == 3 and not _refused(text, 3) and _refused(text, 2)


def test_parse_message_refuses_before_parsing() -> None:
    refused = pytest.raises(MimeError, match=f"nest more than {MAX_DEPTH} levels")
    with refused as caught:
        parse_message(nested(100_000))
    assert caught.value.detail == {"max_depth": MAX_DEPTH}
    assert parse_message(nested(MAX_DEPTH))
