from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mailsignal.errors import TokenError
from mailsignal.model import TokenKind
from mailsignal.tokens import TAG_BYTES, Signer

KEY1 = bytes(range(32))
KEY2 = bytes(range(1, 33))


@pytest.fixture
def signer() -> Signer:
    return Signer({1: KEY1}, 1)


def test_open_token_round_trip_and_is_compact(signer: Signer) -> None:
    token = signer.sign(TokenKind.OPEN, 123456)
    assert len(token) <= 24
    claims = signer.verify(token, TokenKind.OPEN)
    assert (claims.kind, claims.delivery_id, claims.link_id, claims.url) == (
        TokenKind.OPEN,
        123456,
        None,
        None,
    )


def test_click_token_carries_its_url(signer: Signer) -> None:
    url = "https://example.com/pricing?utm=a&b=ü#top"
    claims = signer.verify(signer.sign(TokenKind.CLICK, 7, 42, url))
    assert (claims.delivery_id, claims.link_id, claims.url) == (7, 42, url)


def test_tag_is_at_least_96_bits() -> None:
    assert TAG_BYTES * 8 >= 96


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_every_single_bit_change_is_rejected(signer: Signer) -> None:
    token = signer.sign(TokenKind.CLICK, 99, 3, "https://example.com/a")
    raw_len = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(raw_len):
        with pytest.raises(TokenError):
            signer.verify(_flip(token, i))


def test_url_cannot_be_swapped_between_tokens(signer: Signer) -> None:
    a = signer.sign(TokenKind.CLICK, 1, 1, "https://good.example/")
    b = signer.sign(TokenKind.CLICK, 1, 1, "https://evil.example/")
    # graft b's body onto a's tag
    ra = base64.urlsafe_b64decode(a + "=" * (-len(a) % 4))
    rb = base64.urlsafe_b64decode(b + "=" * (-len(b) % 4))
    forged = base64.urlsafe_b64encode(rb[:-TAG_BYTES] + ra[-TAG_BYTES:]).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        signer.verify(forged)


@pytest.mark.parametrize("bad", ["", "x", "!!!!", "a" * 10, "A" * 9000, "AAAAAAAAAAAAAAAAAAAAAAAA"])
def test_garbage_is_rejected(signer: Signer, bad: str) -> None:
    with pytest.raises(TokenError):
        signer.verify(bad)


def test_truncated_token_is_rejected(signer: Signer) -> None:
    token = signer.sign(TokenKind.CLICK, 5, 6, "https://example.com/x")
    for cut in range(1, len(token)):
        with pytest.raises(TokenError):
            signer.verify(token[:cut])


def test_kind_must_match_expectation(signer: Signer) -> None:
    with pytest.raises(TokenError, match="expected a OPEN"):
        signer.verify(signer.sign(TokenKind.CLICK, 1, 1, "https://a.example/"), TokenKind.OPEN)


def test_rotation_old_tokens_keep_verifying_new_ones_use_new_key() -> None:
    old = Signer({1: KEY1}, 1)
    token = old.sign(TokenKind.OPEN, 10)
    ring = Signer({1: KEY1, 2: KEY2}, 2)
    assert ring.verify(token).key_id == 1
    assert ring.verify(ring.sign(TokenKind.OPEN, 10)).key_id == 2
    with pytest.raises(TokenError, match="unknown key id"):
        old.verify(ring.sign(TokenKind.OPEN, 10))


def test_short_keys_refused() -> None:
    with pytest.raises(TokenError):
        Signer({1: b"short"}, 1)


@given(st.integers(0, 2**62), st.integers(0, 2**40), st.text(min_size=1, max_size=300))
def test_round_trip_any_ids_and_urls(delivery: int, link: int, path: str) -> None:
    signer = Signer({3: KEY2}, 3)
    url = "https://example.com/" + path
    claims = signer.verify(signer.sign(TokenKind.CLICK, delivery, link, url))
    assert (claims.delivery_id, claims.link_id, claims.url) == (delivery, link, url)


# --- one token, one spelling -----------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _lenient(spelling: str) -> bytes | None:
    """What a forgiving decoder (the one tokens.py used to call) makes of a spelling."""
    try:
        data = spelling.encode("ascii")
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except ValueError:
        return None


@st.composite
def _tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(list(TokenKind)))
    link = draw(st.integers(0, 2**40))
    url = "https://example.com/" + draw(st.text(max_size=40))
    return Signer({1: KEY1}, 1).sign(kind, draw(st.integers(0, 2**62)), link, url)


@st.composite
def _respellings(draw: st.DrawFn, token: str) -> str:
    """Another text for the same bytes: padding, unused low bits set in the last
    character, the standard alphabet's "+" and "/", characters a lenient decoder skips."""
    how = draw(st.sampled_from(["pad", "low_bits", "std_alphabet", "junk"]))
    if how == "pad":
        return token + "=" * draw(st.integers(1, 3))
    if how == "low_bits":
        last = _ALPHABET.index(token[-1])
        unused = {2: 0b1111, 3: 0b11}.get(len(token) % 4, 0)
        other = draw(st.sampled_from([v for v in range(64) if v & ~unused == last & ~unused]))
        return token[:-1] + _ALPHABET[other]
    if how == "std_alphabet":
        return token.replace("-", "+").replace("_", "/")
    at = draw(st.integers(0, len(token)))
    junk = draw(st.text(st.sampled_from("=.!*~ \t\r\n$%é\x00"), min_size=1, max_size=3))
    return token[:at] + junk + token[at:]


@given(st.data())
def test_a_token_has_one_spelling(data: st.DataObject) -> None:
    signer = Signer({1: KEY1}, 1)
    token = data.draw(_tokens())
    assert signer.verify(token)  # the canonical spelling verifies
    spelling = data.draw(_respellings(token))
    # Only another spelling of the same bytes counts (a token may have no "-" to swap).
    assume(spelling != token and _lenient(spelling) == _lenient(token))
    with pytest.raises(TokenError, match="base64url"):
        signer.verify(spelling)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t + "=",
        lambda t: t + "==",
        lambda t: t[:5] + "." + t[5:],
        lambda t: t[:5] + "\n" + t[5:],
        lambda t: t + "\x00",
        lambda t: "é" + t,
    ],
)
def test_spellings_a_lenient_decoder_accepts_are_refused(signer: Signer, change: Any) -> None:
    token = signer.sign(TokenKind.OPEN, 123456)
    with pytest.raises(TokenError, match="base64url"):
        signer.verify(change(token))


def test_last_character_with_unused_bits_set_is_refused(signer: Signer) -> None:
    token = signer.sign(TokenKind.CLICK, 7, 42, "https://example.com/x")
    assert len(token) % 4 in (2, 3)  # the last character has unused bits to set
    unused = {2: 0b1111, 3: 0b11}[len(token) % 4]
    bumped = token[:-1] + _ALPHABET[_ALPHABET.index(token[-1]) | unused]
    assert bumped != token and _lenient(bumped) == _lenient(token)
    with pytest.raises(TokenError, match="canonical"):
        signer.verify(bumped)


def test_aggregate_open_token_names_one_pixel_and_no_recipient(signer: Signer) -> None:
    """Issue 13: the aggregate pixel's token carries the email's pixel id and nothing
    else; it is neither an OPEN token nor turned into one by changing its kind byte."""
    token = signer.sign(TokenKind.AGGREGATE_OPEN, 42)
    assert len(token) <= 24
    claims = signer.verify(token)
    assert (claims.kind, claims.delivery_id, claims.link_id, claims.url) == (
        TokenKind.AGGREGATE_OPEN,
        42,
        None,
        None,
    )
    assert signer.verify(token, TokenKind.AGGREGATE_OPEN).delivery_id == 42
    with pytest.raises(TokenError, match="expected a OPEN token"):
        signer.verify(token, TokenKind.OPEN)
    with pytest.raises(TokenError, match="expected a AGGREGATE_OPEN token"):
        signer.verify(signer.sign(TokenKind.OPEN, 42), TokenKind.AGGREGATE_OPEN)


def test_a_forged_aggregate_token_is_refused(signer: Signer) -> None:
    """An OPEN token relabelled as aggregate, one signed with a key we do not hold, and
    one with trailing bytes all fail: nobody can mint counts for an email."""
    raw = bytearray(base64.urlsafe_b64decode(signer.sign(TokenKind.OPEN, 42) + "=="))
    raw[0] = int(TokenKind.AGGREGATE_OPEN)
    relabelled = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="bad signature"):
        signer.verify(relabelled)
    stranger = Signer({1: KEY2}, 1).sign(TokenKind.AGGREGATE_OPEN, 42)
    with pytest.raises(TokenError, match="bad signature"):
        signer.verify(stranger)
    token = signer.sign(TokenKind.AGGREGATE_OPEN, 42)
    for i in range(len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))):
        with pytest.raises(TokenError):
            signer.verify(_flip(token, i))
