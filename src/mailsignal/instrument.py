"""Decide whether a copy is tracked, and rewrite a message's links and add a pixel.

Why splicing: mail HTML is written for a dozen rendering engines at once (Outlook's Word
engine reads VML inside `<!--[if mso]>` comments, Gmail strips `<style>` it cannot parse,
Apple Mail honours `-webkit-` quirks). Parsing it into a tree and serialising it again
would normalise quoting, case, whitespace and comments and break exactly those hacks. So
the stdlib `HTMLParser` is used only to *locate* things, and the new URLs are spliced
into the original text: every other byte of the document is left as it was. Conditional
comments are parsed again with the same parser so their VML buttons are rewritten too.

MIME is treated the same way: the message is deep-copied, only the payload of a changed
body part is replaced, in its own charset and with its original Content-Transfer-Encoding
(7bit turns into quoted-printable only when the new text no longer fits it). Headers,
structure and every attachment stay untouched.
"""

from __future__ import annotations

import base64
import codecs
import copy
import email
import quopri
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import errors as email_errors
from email import policy
from email.message import EmailMessage, Message

from mailsignal.errors import MimeError
from mailsignal.instrument_html import HtmlScan, ascii_url, is_trackable_url, scan_html, splice
from mailsignal.model import TrackingDecision

__all__ = ["LinkRef", "decide", "extract_links", "instrument", "parse_message"]

_TEXT_URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}*"
_KNOWN_CTE = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_MAX_LINE = 998  # RFC 5322 limit for 7bit/8bit bodies, CRLF excluded
_BROKEN = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)
_EMAIL_HEADERS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type"}
)


@dataclass(frozen=True, slots=True)
class LinkRef:
    """One trackable link as written in the message."""

    url: str  # the original http(s) URL, HTML entities decoded
    text: str  # first anchor text seen (collapsed, <= 200 chars); "" for text/image links
    part: str  # "html" or "text": where it was first seen


def decide(org_allowed: bool, sender_opted_in: bool, recipient_follow: bool) -> TrackingDecision:
    """Tracked only if the organisation, the sender and the recipient all allow it."""
    checks = (
        (org_allowed, "org.monitoring_disabled"),
        (sender_opted_in, "sender.not_opted_in"),
        (recipient_follow, "recipient.do_not_track"),
    )
    reasons = tuple(reason for allowed, reason in checks if not allowed)
    return TrackingDecision(tracked=not reasons, reasons=reasons)


def parse_message(raw: bytes | str) -> EmailMessage:
    """Parse an RFC 5322 message; `MimeError` if it has no headers or no body to track."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    if not data.strip():
        raise MimeError("empty message: expected an RFC 5322 email with headers and a body")
    msg = email.message_from_bytes(data, policy=policy.default)
    names = {name.lower() for name in msg}
    if not names & _EMAIL_HEADERS:
        raise MimeError(
            "not an email message: no header block with From/To/Subject/Date/MIME-Version",
            detail={"headers": sorted(names)},
        )
    for part in _tree(msg):
        broken = [type(d).__name__ for d in part.defects if isinstance(d, _BROKEN)]
        if broken:
            raise MimeError(
                f"broken MIME structure in {part.get_content_type()} part: {', '.join(broken)}",
                detail={"defects": broken},
            )
    if not _body_parts(msg):
        found = sorted({p.get_content_type() for p in _tree(msg) if not p.is_multipart()})
        raise MimeError(
            "no text/html or text/plain body part to track (found: "
            + (", ".join(found) or "nothing")
            + ")",
            detail={"content_types": found},
        )
    return msg


def extract_links(msg: EmailMessage) -> list[LinkRef]:
    """Every trackable link of the body parts, unique by URL, HTML parts first, in order.

    A URL that an HTML part marks not-to-track is not tracked in a text part either.
    """
    seen: dict[str, LinkRef] = {}
    parts = _decoded_parts(msg)
    notrack = set[str]().union(*(scan.notrack for _, _, _, scan in parts if scan is not None))
    for kind in ("html", "text"):
        for _, body, _, scan in parts:
            if (scan is not None) != (kind == "html"):
                continue
            pairs: Iterator[tuple[str, str]] = (
                ((link.url, link.text) for link in scan.links)
                if scan is not None
                else ((url, "") for _, _, url in _text_urls(body, notrack))
            )
            for url, text in pairs:
                text = text.encode("utf-8", "replace").decode("utf-8")
                if url not in seen:
                    seen[url] = LinkRef(url, text, kind)
                elif text and not seen[url].text:
                    seen[url] = LinkRef(url, text, seen[url].part)
    return list(seen.values())


def instrument(
    msg: EmailMessage,
    rewrite: Callable[[str], str],
    pixel_url: str | None,
    honeypot_url: str | None = None,
) -> EmailMessage:
    """A copy of `msg` with every trackable URL replaced by `rewrite(url)`, plus extras.

    `rewrite` is called once per distinct URL. The pixel goes before `</body>` of the last
    HTML body part and the honeypot after `<body>` of the first, so a message whose body
    is split over several HTML parts (Apple Mail with inline attachments) gets one each.
    The copy's policy does not refold received headers, so `as_bytes()` writes them as
    they came.
    """
    out = copy.deepcopy(msg)
    if isinstance(out.policy, policy.EmailPolicy):
        out.policy = out.policy.clone(refold_source="none")
    memo: dict[str, str] = {}

    def once(url: str) -> str:
        if url not in memo:
            memo[url] = rewrite(url)
        return memo[url]

    parts = _decoded_parts(out)
    notrack = set[str]().union(*(scan.notrack for _, _, _, scan in parts if scan is not None))
    html_parts = [part for part, _, _, scan in parts if scan is not None]
    for part, body, codec, scan in parts:
        if scan is not None:
            pixel = pixel_url if part is html_parts[-1] else None
            trap = honeypot_url if part is html_parts[0] else None
            new = splice(body, scan, once, pixel, trap)
        else:
            new = _rewrite_text(body, once, notrack)
        if new != body:
            _store(part, new, codec)
    return out


def _decoded_parts(msg: Message) -> list[tuple[Message, str, str, HtmlScan | None]]:
    """(part, decoded body, codec, HTML scan or None for text/plain) per body part."""
    out: list[tuple[Message, str, str, HtmlScan | None]] = []
    for part, kind in _body_parts(msg):
        body, codec = _decode(part)
        out.append((part, body, codec, scan_html(body) if kind == "html" else None))
    return out


def _tree(msg: Message) -> Iterator[Message]:
    """The message and its parts in document order, entering multipart containers only.

    An attached message/rfc822 is an attachment: its insides are neither tracked nor
    checked. The explicit stack copes with any nesting depth.
    """
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(c for c in reversed(children) if isinstance(c, Message))


def _body_parts(msg: Message) -> list[tuple[Message, str]]:
    """Leaf text/html and text/plain parts shown as the body, in document order.

    A part with Content-Disposition attachment or a file name is an attachment.
    """
    found: list[tuple[Message, str]] = []
    for part in _tree(msg):
        ctype = part.get_content_type()
        if ctype not in ("text/html", "text/plain") or part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename() is not None:
            continue
        if _cte(part) in _KNOWN_CTE:
            found.append((part, "html" if ctype == "text/html" else "text"))
    return found


def _cte(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "7bit")).strip().lower()


def _codec(charset: str | None) -> str:
    """A Python codec for the part; undeclared, us-ascii and unknown charsets read as UTF-8.

    Decoding and encoding use `surrogateescape`, so bytes the codec cannot read survive.
    """
    try:
        name = codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"
    return "utf-8" if name == "ascii" else name


def _decode(part: Message) -> tuple[str, str]:
    codec = _codec(part.get_content_charset())
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return data.decode(codec, "surrogateescape"), codec


def _store(part: Message, text: str, codec: str) -> None:
    """Replace the payload, keeping charset and (where it still fits) the CTE."""
    data = text.encode(codec, "surrogateescape")
    cte = _cte(part)
    if cte in ("7bit", "8bit") and (
        (cte == "7bit" and not data.isascii())
        or max(map(len, data.splitlines()), default=0) > _MAX_LINE
    ):
        cte = "quoted-printable"
        if "content-transfer-encoding" in part:
            part.replace_header("Content-Transfer-Encoding", cte)
        else:
            part["Content-Transfer-Encoding"] = cte
    if cte == "base64":
        part.set_payload(base64.encodebytes(data).decode("ascii"))
    elif cte == "quoted-printable":
        part.set_payload(quopri.encodestring(data).decode("ascii"))
    else:
        part.set_payload(data.decode("ascii", "surrogateescape"))


def _text_urls(text: str, notrack: set[str]) -> Iterator[tuple[int, int, str]]:
    """(start, end, url) of each http(s) URL in prose, without sentence punctuation."""
    for match in _TEXT_URL.finditer(text):
        found, end = match.group(), len(match.group())
        opens = {")": found.count("("), "]": found.count("["), "}": found.count("{")}
        closes = {")": found.count(")"), "]": found.count("]"), "}": found.count("}")}
        while end and found[end - 1] in _TRAILING:
            last = found[end - 1]
            if last in closes and closes[last] <= opens[last]:
                break  # balanced, as in https://en.wikipedia.org/wiki/Mail_(protocol)
            if last in closes:
                closes[last] -= 1
            end -= 1
        url = found[:end]
        if is_trackable_url(url) and url not in notrack:
            yield match.start(), match.start() + end, url


def _rewrite_text(text: str, rewrite: Callable[[str], str], notrack: set[str]) -> str:
    out: list[str] = []
    last = 0
    for start, end, url in _text_urls(text, notrack):
        out += (text[last:start], ascii_url(rewrite(url)))
        last = end
    out.append(text[last:])
    return "".join(out)
