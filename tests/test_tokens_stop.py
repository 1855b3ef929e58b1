"""The stop-tracking tokens (issue 13): the page's STOP token, its form token (signed,
bound to the delivery, expiring, unforgeable) and the keyed hash of an address."""

from __future__ import annotations

import pytest

from mailsignal.errors import TokenError
from mailsignal.model import TokenKind
from mailsignal.tokens import Signer
from mailsignal.urls import TrackingUrls, parse_url

KEY1, KEY2 = b"\x01" * 32, b"\x02" * 32
NOW = 1_800_000_000
DAY = 24 * 3600


def test_a_form_token_names_its_delivery_nonce_and_time() -> None:
    signer = Signer({1: KEY1}, 1)
    token = signer.sign_form(42, NOW, b"n" * 16)
    assert signer.verify_form(token, NOW + 60, DAY) == (42, b"n" * 16, NOW)
    # Fresh nonces: two pages for one copy carry two different tokens.
    assert signer.sign_form(42, NOW) != signer.sign_form(42, NOW)


def test_a_form_token_expires_and_is_not_from_the_future() -> None:
    signer = Signer({1: KEY1}, 1)
    token = signer.sign_form(42, NOW)
    assert signer.verify_form(token, NOW + DAY, DAY)[0] == 42
    with pytest.raises(TokenError, match="expired"):
        signer.verify_form(token, NOW + DAY + 1, DAY)
    with pytest.raises(TokenError, match="expired"):
        signer.verify_form(token, NOW - 3600, DAY)


def test_a_forged_form_token_is_refused() -> None:
    signer = Signer({1: KEY1}, 1)
    token = signer.sign_form(42, NOW)
    raw = bytearray(token.encode())
    for i in range(len(raw)):  # any one character changed breaks it
        changed = bytearray(raw)
        changed[i] = ord("A") if raw[i] != ord("A") else ord("B")
        with pytest.raises(TokenError):
            signer.verify_form(changed.decode(), NOW, DAY)
    with pytest.raises(TokenError, match=r"signature|key"):  # another instance's key
        Signer({1: KEY2}, 1).verify_form(token, NOW, DAY)
    for bad in ("", "x" * 500, "!!!", token[:-3]):
        with pytest.raises(TokenError):
            signer.verify_form(bad, NOW, DAY)


def test_form_and_tracking_tokens_do_not_stand_in_for_each_other() -> None:
    signer = Signer({1: KEY1}, 1)
    stop = signer.sign(TokenKind.STOP, 42)
    form = signer.sign_form(42, NOW)
    with pytest.raises(TokenError):
        signer.verify_form(stop, NOW, DAY)
    with pytest.raises(TokenError):
        signer.verify(form)
    with pytest.raises(TokenError):  # a stop token is no open or click token
        signer.verify(stop, TokenKind.OPEN)


def test_old_keys_verify_form_tokens_after_rotation() -> None:
    token = Signer({1: KEY1}, 1).sign_form(7, NOW)
    assert Signer({1: KEY1, 2: KEY2}, 2).verify_form(token, NOW, DAY)[0] == 7


def test_the_stop_url_is_its_own_path_and_not_a_hit() -> None:
    signer = Signer({1: KEY1}, 1)
    url = TrackingUrls(signer, "https://t.test/").stop(42)
    assert url.startswith("https://t.test/p/")
    assert signer.verify(url.rsplit("/", 1)[1], TokenKind.STOP).delivery_id == 42
    assert parse_url(url) is None  # the tracker leaves it to the web app


def test_the_address_hash_is_keyed_and_survives_rotation() -> None:
    one = Signer({1: KEY1}, 1)
    digest = one.address_hash("dana@contoso.test")
    assert len(digest) == 64 and "dana" not in digest
    assert digest != Signer({1: KEY2}, 1).address_hash("dana@contoso.test")
    assert digest != one.address_hash("lee@contoso.test")
    # `keys rotate` appends a key: the hash is the oldest key's, so the list still matches.
    assert Signer({1: KEY1, 2: KEY2}, 2).address_hash("dana@contoso.test") == digest
