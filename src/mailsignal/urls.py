"""The tracking URLs, written and read here only.

    /o/<token>.gif             open pixel (an OPEN token), or the aggregate open pixel
                               (an AGGREGATE_OPEN token: the email, no recipient)
    /c/<token>                 click: a CLICK token, or the HONEYPOT link's (a machine
                               that follows it must not learn it is a trap, so it looks
                               like every other link)
    /a/<token>[/<file name>]   attachment download (an ATTACHMENT token); the file name is
                               cosmetic, for the reader and the browser's save dialog
    /p/<token>                 the recipient's stop-tracking page (a STOP token): not a
                               hit, so `parse_path` leaves it to the web app (web/stop.py)
    /k/<token>                 the recipient's consent page (a CONSENT token), also no hit
                               (web/consent.py)

Outgoing formats them into each copy, the tracker (web/track.py) parses the request
path of every hit, and the hit importer (history.py) parses the URLs of access logs and
JSONL files: one module, so the three cannot drift apart. Parsing only splits a path:
whether a token is ours, and of the kind its path promises, is the `Signer`'s to say
(`signer.verify(token, expected)`).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from .model import TokenKind
from .tokens import Signer

__all__ = ["TrackingUrls", "parse_path", "parse_url"]

OPEN, CLICK, DOWNLOAD, STOP, CONSENT = "/o/", "/c/", "/a/", "/p/", "/k/"
_GIF = ".gif"
# Read once, not through the enum class on every hit (`parse_path` is on the hot path).
_OPEN_KIND, _DOWNLOAD_KIND = TokenKind.OPEN, TokenKind.ATTACHMENT


class TrackingUrls:
    """Signs tokens and writes them into URLs under `base_url` (no trailing slash)."""

    __slots__ = ("_base", "_signer")

    def __init__(self, signer: Signer, base_url: str) -> None:
        self._signer = signer
        self._base = base_url.rstrip("/")

    def pixel(self, delivery_id: int) -> str:
        return f"{self._base}{OPEN}{self._signer.sign(TokenKind.OPEN, delivery_id)}{_GIF}"

    def aggregate_pixel(self, pixel_id: int) -> str:
        """The aggregate open pixel of an email (`aggregatepixel.pixelid`): the same URL
        in every copy that carries it, naming no recipient (issue 13)."""
        token = self._signer.sign(TokenKind.AGGREGATE_OPEN, pixel_id)
        return f"{self._base}{OPEN}{token}{_GIF}"

    def click(self, delivery_id: int, link_id: int, url: str) -> str:
        token = self._signer.sign(TokenKind.CLICK, delivery_id, link_id, url)
        return f"{self._base}{CLICK}{token}"

    def honeypot(self, delivery_id: int, link_id: int) -> str:
        token = self._signer.sign(TokenKind.HONEYPOT, delivery_id, link_id)
        return f"{self._base}{CLICK}{token}"

    def stop(self, delivery_id: int) -> str:
        """The recipient's stop-tracking page for this copy."""
        return f"{self._base}{STOP}{self._signer.sign(TokenKind.STOP, delivery_id)}"

    def consent(self, delivery_id: int) -> str:
        """The recipient's consent page for this (untracked) copy."""
        return f"{self._base}{CONSENT}{self._signer.sign(TokenKind.CONSENT, delivery_id)}"

    def download(self, delivery_id: int, attachment_id: int, filename: str | None = None) -> str:
        token = self._signer.sign(TokenKind.ATTACHMENT, delivery_id, attachment_id)
        tail = f"/{quote(filename, safe='')}" if filename else ""
        return f"{self._base}{DOWNLOAD}{token}{tail}"


def parse_path(path: str) -> tuple[str, TokenKind | None] | None:
    """(token, the kind its path promises) of a tracking path; None for any other path.

    A click path promises no one kind (None): it carries a CLICK or a HONEYPOT token. An
    open path promises OPEN; the tracker also takes an AGGREGATE_OPEN token there.
    Called for every hit on the hot path, so it is a few compares and a slice.
    """
    if path.startswith(OPEN):
        token = path[3:]
        return (token[:-4] if token.endswith(_GIF) else token), _OPEN_KIND
    if path.startswith(CLICK):
        return path[3:], None
    if path.startswith(DOWNLOAD):
        return path[3:].split("/", 1)[0], _DOWNLOAD_KIND
    return None


def parse_url(url: str) -> tuple[str, TokenKind | None] | None:
    """`parse_path` of a whole URL or a request target: only its path counts, so any
    host (an edge proxy's, a CDN's) and any query string will do."""
    try:
        path = urlsplit(url).path
    except ValueError:  # an unbalanced "[" in the host, say
        return None
    return parse_path(path)
