"""The hot path: `/o/<token>.gif`, `/c/<token>`, `/a/<token>`, as raw ASGI.

The paths are urls.py's: it writes them into the mail and splits them here.

These are the only public, unauthenticated endpoints. Each request verifies its token,
journals the hit (group commit, see store/journal.py) and only then answers. No
framework sits in front: routing by prefix and a pre-built response cost a few
microseconds, where a Starlette route costs half the throughput (DESIGN §5).

Rules this module keeps:
- a bad token records nothing (nor does a token of another kind on a path); the pixel
  still answers the GIF, a click answers a
  plain "link expired or invalid" page and never redirects;
- a click redirects only to the URL signed into its own token, and only http(s) (the
  scheme in any case: mail already out carries `HTTPS://` links);
- a download streams only the file the token's attachment id names, found through its
  sidecar on disk (store/files.py), never through the database;
- nothing here answers 500: an unexpected error is logged and the normal answer sent;
- a hit the journal cannot take is still answered: the writer spools it, or holds it in
  memory, and counts and logs it (store/fallback.py); nothing is lost silently;
- the client address comes from X-Forwarded-For only when the peer is a trusted proxy;
- the aggregate open pixel (issue 13) is answered like the other; its journal row holds
  the pixel, the time and the method only: no address, user agent or header.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import TokenError
from ..model import TokenKind
from ..store.files import AttachmentFiles, AttachmentMeta
from ..store.journal import JournalWriter
from ..tokens import Signer
from ..urls import parse_path
from .headers import HTML_PAGE

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
_GONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>File no longer available</title>"
    b"<p>This file is no longer available.</p>\n"
)
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,128}")
_OCTETS = "application/octet-stream"
# Big enough that a 30 MB file is ~120 sends, small enough to keep memory flat.
_CHUNK = 256 * 1024


def _html(status: int, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return (
        status,
        [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            _NO_STORE,
            (b"x-robots-tag", b"noindex"),
            *HTML_PAGE,
        ],
        body,
    )


_INVALID = _html(404, _INVALID_PAGE)
_HONEYPOT = _html(200, _HONEYPOT_PAGE)
_GONE = _html(410, _GONE_PAGE)
_NOT_ALLOWED = (405, [(b"allow", b"GET, HEAD"), (b"content-length", b"0")], b"")
# Read once, not through the enum class on every hit.
_OPEN, _AGGREGATE = TokenKind.OPEN, TokenKind.AGGREGATE_OPEN


class ClientAddress:
    """Finds the client IP, believing X-Forwarded-For only from trusted proxies."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self._nets = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]

    def trusts(self, scope: Scope) -> bool:
        """Whether the peer of `scope` is a trusted proxy (whose X-Forwarded-* count)."""
        client = scope.get("client")
        return bool(self._nets and client and self._trusted(client[0]))

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
        attachment_dir: Path | None = None,
    ) -> None:
        self.signer = signer
        self.journal = journal
        self.client_address = client_address
        self.fallback = fallback
        self.files = AttachmentFiles(attachment_dir) if attachment_dir is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = parse_path(scope["path"])
            if found is not None:
                token, kind = found
                if kind is _OPEN:
                    await self._open(scope, send, token)
                elif kind is None:  # a click path: a click or the honeypot
                    await self._click(scope, send, token)
                else:
                    await self._download(scope, send, token)
                return
        await self.fallback(scope, receive, send)

    async def _open(self, scope: Scope, send: Send, token: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, *_NOT_ALLOWED)
            return
        try:
            claims = self.signer.verify(token)
            if claims.kind is _OPEN:
                await self._record(scope, claims.kind, claims.delivery_id, None)
            elif claims.kind is _AGGREGATE:
                await self._aggregate(scope, claims.delivery_id)
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
                or not url[:8].lower().startswith(("https://", "http://"))
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

    async def _download(self, scope: Scope, send: Send, token: str) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, *_NOT_ALLOWED)
            return
        try:
            claims = self.signer.verify(token, TokenKind.ATTACHMENT)
        except TokenError:
            await _respond(send, *_INVALID)
            return
        try:
            found = await asyncio.to_thread(self._open_file, claims.link_id)
        except Exception:
            log.exception("attachment lookup failed")
            found = None
        if found is None:
            await _respond(send, *_GONE)
            return
        meta, size, fh = found
        try:
            try:
                # Recorded before a byte is sent: a download the journal lost never happened.
                await self._record(scope, claims.kind, claims.delivery_id, claims.link_id)
            except Exception:
                log.exception("download hit failed")
            await send(
                {"type": "http.response.start", "status": 200, "headers": _file_headers(meta, size)}
            )
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            while True:
                chunk = await asyncio.to_thread(fh.read, _CHUNK)
                more = len(chunk) == _CHUNK
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        finally:
            fh.close()

    def _open_file(self, attachment_id: int | None) -> tuple[AttachmentMeta, int, Any] | None:
        """The sidecar, the blob's size and an open handle on it; None when either is gone."""
        if self.files is None or attachment_id is None:
            return None
        meta = self.files.read_meta(attachment_id)
        if meta is None:
            return None
        try:
            fh = self.files.blob_path(meta.sha256).open("rb")
        except OSError:
            return None
        # The length sent is the file's own, so a damaged sidecar cannot break the response.
        return meta, os.fstat(fh.fileno()).st_size, fh

    async def _aggregate(self, scope: Scope, pixel_id: int) -> None:
        """Journal an aggregate open (issue 13): the pixel and the time, nothing of the
        request (no address, user agent or header), so not even the journal holds any."""
        row = (time.time(), int(_AGGREGATE), pixel_id, None, "", "", scope["method"], "{}")
        await self.journal.append(row)

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
        await self.journal.append(row)  # False: not durable; the writer counted and logged it


def _file_headers(meta: AttachmentMeta, size: int) -> list[tuple[bytes, bytes]]:
    fallback = meta.filename.encode("ascii", "replace").decode("ascii")
    fallback = "".join("_" if c in '"\\' or not c.isprintable() else c for c in fallback)
    encoded = quote(meta.filename, safe="")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ctype = meta.content_type if _MIME_TYPE.fullmatch(meta.content_type) else _OCTETS
    return [
        (b"content-type", ctype.encode("ascii")),
        (b"content-length", str(size).encode()),
        (b"content-disposition", disposition.encode("ascii")),
        # The file comes from a stranger's mail: never render or sniff it on our origin.
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"sandbox"),
        (b"cache-control", b"private, no-store"),
        (b"x-robots-tag", b"noindex"),
    ]


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
