"""The hot path: `/o/<token>.gif`, `/c/<token>`, as raw ASGI.

These are the only public, unauthenticated endpoints. Each request verifies its token,
journals the hit (group commit, see store/journal.py) and only then answers. No
framework sits in front: routing by prefix and a pre-built response cost a few
microseconds, where a Starlette route costs half the throughput (DESIGN §5).

Rules this module keeps:
- a bad token records nothing; the pixel still answers the GIF, a click answers a
  plain "link expired or invalid" page and never redirects;
- a click redirects only to the URL signed into its own token, and only http(s);
- nothing here answers 500: an unexpected error is logged and the normal answer sent;
- the client address comes from X-Forwarded-For only when the peer is a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from ..errors import TokenError
from ..model import TokenKind
from ..store.journal import JournalWriter
from ..tokens import Signer

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
assert len(GIF) == 43

# Request headers kept with each hit: what the classifier can use, nothing more.
KEPT_HEADERS = frozenset(
    {
        b"accept",
        b"accept-language",
        b"referer",
        b"sec-fetch-site",
        b"sec-fetch-mode",
        b"sec-fetch-dest",
        b"sec-purpose",
        b"purpose",
        b"via",
        b"from",
        b"x-forwarded-for",
    }
)
_NO_STORE = (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0")
_GIF_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", b"43"),
    _NO_STORE,
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]
_INVALID_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>Link expired or invalid</title>"
    b"<p>This link has expired or is invalid.</p>\n"
)
_HONEYPOT_PAGE = b"<!doctype html><meta charset=utf-8><title>OK</title><p>OK</p>\n"


def _html(status: int, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return (
        status,
        [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            _NO_STORE,
            (b"x-robots-tag", b"noindex"),
        ],
        body,
    )


_INVALID = _html(404, _INVALID_PAGE)
_HONEYPOT = _html(200, _HONEYPOT_PAGE)
_NOT_ALLOWED = (405, [(b"allow", b"GET, HEAD"), (b"content-length", b"0")], b"")


class ClientAddress:
    """Finds the client IP, believing X-Forwarded-For only from trusted proxies."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self._nets = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]

    def _trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._nets)

    def __call__(self, scope: Scope, forwarded_for: str | None) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self._nets or not forwarded_for or not self._trusted(peer):
            return peer
        # Walk right to left: the first address not ours is the one that reached us.
        for candidate in reversed([p.strip() for p in forwarded_for.split(",")]):
            if candidate and not self._trusted(candidate):
                try:
                    return str(ipaddress.ip_address(candidate))
                except ValueError:
                    return peer
        return peer


class Tracker:
    """Raw ASGI app for the tracking routes; everything else goes to `fallback`."""

    def __init__(
        self,
        signer: Signer,
        journal: JournalWriter,
        client_address: ClientAddress,
        fallback: ASGIApp,
    ) -> None:
        self.signer = signer
        self.journal = journal
        self.client_address = client_address
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/o/"):
                await self._open(scope, send, path[3:])
                return
            if path.startswith("/c/"):
                await self._click(scope, send, path[3:])
                return
        await self.fallback(scope, receive, send)

    async def _open(self, scope: Scope, send: Send, rest: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, *_NOT_ALLOWED)
            return
        try:
            token = rest[:-4] if rest.endswith(".gif") else rest
            claims = self.signer.verify(token, TokenKind.OPEN)
            await self._record(scope, claims.kind, claims.delivery_id, None)
        except TokenError:
            pass
        except Exception:  # never a 500 on the pixel
            log.exception("pixel hit failed")
        await _respond(send, 200, _GIF_HEADERS, b"" if method == "HEAD" else GIF)

    async def _click(self, scope: Scope, send: Send, token: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, *_NOT_ALLOWED)
            return
        try:
            claims = self.signer.verify(token)
        except TokenError:
            await _respond(send, *_INVALID)
            return
        try:
            if claims.kind is TokenKind.HONEYPOT:
                await self._record(scope, claims.kind, claims.delivery_id, claims.link_id)
                await _respond(send, *_HONEYPOT)
                return
            url = claims.url
            if (
                claims.kind is not TokenKind.CLICK
                or not url
                or not url.startswith(("https://", "http://"))
            ):
                await _respond(send, *_INVALID)
                return
            await self._record(scope, claims.kind, claims.delivery_id, claims.link_id)
        except Exception:
            log.exception("click hit failed")
            if claims.kind is not TokenKind.CLICK or not claims.url:
                await _respond(send, *_INVALID)
                return
            url = claims.url
        headers = [
            (b"location", _location(url)),
            (b"content-length", b"0"),
            _NO_STORE,
            (b"referrer-policy", b"no-referrer"),
        ]
        await _respond(send, 302, headers, b"")

    async def _record(
        self, scope: Scope, kind: TokenKind, delivery_id: int, link_id: int | None
    ) -> None:
        received = time.time()
        kept: dict[str, str] = {}
        ua = ""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                ua = value.decode("latin-1")
            elif name in KEPT_HEADERS:
                kept[name.decode("latin-1")] = value.decode("latin-1")
        ip = self.client_address(scope, kept.get("x-forwarded-for"))
        row = (
            received,
            int(kind),
            delivery_id,
            link_id,
            ip,
            ua[:2048],
            scope["method"],
            json.dumps(kept, separators=(",", ":")) if kept else "{}",
        )
        if not await self.journal.append(row):
            log.error("hit not journaled (delivery %s); answered anyway", delivery_id)


def _location(url: str) -> bytes:
    """Percent-encode what HTTP headers cannot carry (non-ASCII, controls, spaces)."""
    if url.isascii() and url.isprintable() and " " not in url:
        return url.encode("ascii")
    return quote(url, safe="%/:=&?~#+!$,;'@()*[]").encode("ascii")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
