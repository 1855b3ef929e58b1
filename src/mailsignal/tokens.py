"""Compact, URL-safe, signed tokens for tracking URLs (the URLs themselves are urls.py's).

Layout before base64url (no padding)::

    kind:1 | key id:1 | delivery id:varint | [link id:varint] | [url:utf-8 ...] | tag:12

The tag is HMAC-SHA256 over everything before it, truncated to 96 bits, under the key
named by the key id (so keys rotate: sign with the newest, verify with any listed).
Click tokens carry their destination URL inside the signed bytes, so the tracker
redirects without a database read and keeps working while the database is down, and
nobody can change the URL or the delivery without breaking the tag.

An AGGREGATE_OPEN token (the aggregate open pixel, issue 13) has the OPEN layout with
the email's aggregate pixel id where the delivery id goes: it names the email, the same
for every copy that carries it, and nothing about any recipient.

Two more uses of the same keys, each under a label of its own so no value made for one
verifies as another (issue 13): a stop-tracking page's form token (`sign_form`: the
delivery, a random nonce and the time it was issued, for the POST that records the
choice without a session), and the keyed hash a do-not-track address is stored under
(`address_hash`: never the address itself).

One token, one spelling: `verify` accepts only the exact text `sign` writes (the
base64url alphabet, no padding, zero unused bits in the last character). A lenient
decoder would let the same signed bytes arrive under many spellings, and anything keyed
on the token text (a cache, a log search, a deduplication) would see different tokens.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping

from .errors import TokenError
from .model import TokenClaims, TokenKind

TAG_BYTES = 12
_MIN_BYTES = 1 + 1 + 1 + TAG_BYTES
# A token longer than this is not ours (URLs in mail rarely pass 2 kB; browsers cap ~8 kB).
MAX_TOKEN_CHARS = 8192
_FORM_LABEL = b"mailsignal stop-tracking form v1\x00"
_ADDRESS_LABEL = b"mailsignal do-not-track address v1"
NONCE_BYTES = 16
_KINDS = {int(k): k for k in TokenKind}
_WITH_LINK = frozenset({TokenKind.CLICK, TokenKind.ATTACHMENT, TokenKind.HONEYPOT})


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise TokenError("truncated or oversized number in token")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    """The bytes of a token in its one canonical spelling, else TokenError.

    Python's decoder skips characters outside the alphabet, accepts "+" and "/" beside
    "-" and "_", and ignores the unused low bits of the last character; so the token is
    decoded, encoded again, and must come back the same text. The token is public (it
    is in the URL), so comparing its text leaks nothing; the tag is compared in constant
    time in `verify`.
    """
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise TokenError("token is not base64url") from exc
    if _encode(raw) != token:
        raise TokenError("token is not in canonical base64url")
    return raw


class Signer:
    """Signs and verifies tokens with a keyring of `{key id: secret}`.

    `current` is the key id used to sign; every key in the ring verifies.
    """

    def __init__(self, keys: Mapping[int, bytes], current: int) -> None:
        if current not in keys:
            raise TokenError(f"signing key id {current} is not in the keyring")
        for kid, secret in keys.items():
            if not 0 <= kid <= 255:
                raise TokenError(f"key id {kid} out of range 0-255")
            if len(secret) < 32:
                raise TokenError(f"key {kid} is shorter than 32 bytes")
        self._keys = dict(keys)
        self._current = current
        # The do-not-track hash key (`address_hash`): from the OLDEST key, see there.
        self._address_key = hmac.digest(self._keys[min(self._keys)], _ADDRESS_LABEL, "sha256")

    def _tag(self, kid: int, body: bytes) -> bytes:
        return hmac.digest(self._keys[kid], body, "sha256")[:TAG_BYTES]

    def sign(
        self,
        kind: TokenKind,
        delivery_id: int,
        link_id: int | None = None,
        url: str | None = None,
    ) -> str:
        parts = [bytes((int(kind), self._current)), _varint(delivery_id)]
        if kind in _WITH_LINK:
            if link_id is None:
                raise ValueError(f"{kind.name} token needs a link id")
            parts.append(_varint(link_id))
        if kind is TokenKind.CLICK:
            if not url:
                raise ValueError("click token needs a url")
            parts.append(url.encode("utf-8"))
        body = b"".join(parts)
        return _encode(body + self._tag(self._current, body))

    def verify(self, token: str, expect: TokenKind | None = None) -> TokenClaims:
        """Decode and check a token; raise TokenError on anything wrong."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("token missing or too long")
        raw = _decode(token)
        if len(raw) < _MIN_BYTES:
            raise TokenError("token too short")
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        kid = body[1]
        secret = self._keys.get(kid)
        if secret is None:
            raise TokenError("unknown key id")
        if not hmac.compare_digest(self._tag(kid, body), tag):
            raise TokenError("bad signature")
        kind = _KINDS.get(body[0])
        if kind is None:
            raise TokenError("unknown token kind")
        if expect is not None and kind is not expect:
            raise TokenError(f"expected a {expect.name} token, got {kind.name}")
        end = len(body)
        delivery_id, pos = _read_varint(body, 2, end)
        link_id: int | None = None
        url: str | None = None
        if kind in _WITH_LINK:
            link_id, pos = _read_varint(body, pos, end)
        if kind is TokenKind.CLICK:
            try:
                url = body[pos:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TokenError("url in token is not utf-8") from exc
            if not url:
                raise TokenError("click token without url")
        elif pos != end:
            raise TokenError("trailing bytes in token")
        return TokenClaims(kind=kind, delivery_id=delivery_id, link_id=link_id, url=url, key_id=kid)

    def sign_form(self, delivery_id: int, issued: int, nonce: bytes | None = None) -> str:
        """A form token: `key id | delivery | issued (unix seconds) | nonce | tag`."""
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"a form nonce is {NONCE_BYTES} bytes")
        body = bytes((self._current,)) + _varint(delivery_id) + _varint(issued) + nonce
        return _encode(body + self._form_tag(self._current, body))

    def verify_form(self, token: str, now: int, max_age: int) -> tuple[int, bytes, int]:
        """(delivery id, nonce, issued) of a form token no older than `max_age` seconds
        at `now`; TokenError for anything forged, damaged, expired or from the future."""
        if not token or len(token) > 200:
            raise TokenError("form token missing or too long")
        raw = _decode(token)
        if len(raw) < 1 + 2 + NONCE_BYTES + TAG_BYTES:
            raise TokenError("form token too short")
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if body[0] not in self._keys:
            raise TokenError("unknown key id")
        if not hmac.compare_digest(self._form_tag(body[0], body), tag):
            raise TokenError("bad signature")
        delivery_id, pos = _read_varint(body, 1, len(body))
        issued, pos = _read_varint(body, pos, len(body))
        if len(body) - pos != NONCE_BYTES:
            raise TokenError("bad form token layout")
        if not now - max_age <= issued <= now + 60:  # a minute of clock skew between hosts
            raise TokenError("form token expired")
        return delivery_id, body[pos:], issued

    def _form_tag(self, kid: int, body: bytes) -> bytes:
        return hmac.digest(self._keys[kid], _FORM_LABEL + body, "sha256")[:TAG_BYTES]

    def address_hash(self, address: str) -> str:
        """The keyed hash (hex HMAC-SHA256) a do-not-track address is stored under.

        The key is derived from the keyring's OLDEST key, so `keys rotate` (which appends)
        keeps every stored hash matching; retiring that key forgets the list."""
        return hmac.digest(self._address_key, address.encode("utf-8"), "sha256").hex()
