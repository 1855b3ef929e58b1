"""Decide whether a copy is tracked, and rewrite a message's links and add a pixel.

Why splicing: mail HTML is written for a dozen rendering engines at once (Outlook's Word
engine reads VML inside `<!--[if mso]>` comments, Gmail strips `<style>` it cannot parse,
Apple Mail honours `-webkit-` quirks). Parsing it into a tree and serialising it again
would normalise quoting, case, whitespace and comments and break exactly those hacks. So
the stdlib `HTMLParser` is used only to *locate* things, and the new URLs are spliced
into the original text: every other byte of the document is left as it was. Conditional
comments are parsed again with the same parser so their VML buttons are rewritten too.

MIME is treated the same way: only the payload of a changed body part is replaced, in its
own charset and with its original Content-Transfer-Encoding (7bit turns into
quoted-printable only when the new text no longer fits it). Headers, structure and every
attachment stay untouched.

Why `prepare`: a message goes to many recipients, and finding the parts, decoding and
scanning them is most of the work. `prepare(msg)` does it once; `Prepared.render` then
makes each recipient's copy by splicing new URLs into the prepared texts. A copy is
serialised from a template: the message written once with a marker for each body part's
payload, so each copy's bytes are the template joined with its own encoded payloads (the
bytes `as_bytes()` of the equivalent message would write, without building that message).
"""

from __future__ import annotations

import base64
import codecs
import copy
import email
import functools
import quopri
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email import errors as email_errors
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from typing import Any

from mailsignal.errors import MimeError
from mailsignal.instrument_html import HtmlScan, ascii_url, is_trackable_url, scan_html, splice
from mailsignal.model import TrackingDecision

__all__ = [
    "Copy",
    "LinkRef",
    "Prepared",
    "decide",
    "extract_links",
    "instrument",
    "parse_message",
    "prepare",
]

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
_NEWLINE = re.compile(rb"\r\n|\r|\n")  # the line endings the generator rewrites
_Walked = tuple[Message, tuple[int, ...], str]  # (part, path, content type)


class _MimeHeaders(HeaderRegistry):
    """The stdlib header registry, parsing each distinct MIME header only once.

    `EmailMessage` parses a header each time it is read (`get_content_type()`,
    `get_content_charset()` and the generator read Content-Type again and again), while
    a parsed header is immutable and depends on its name and value alone, so the parse
    of the few short MIME headers a message's structure hangs on is shared.
    """

    _NAMES = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})

    def __init__(self) -> None:
        super().__init__()
        self._parse = functools.lru_cache(maxsize=1024)(super().__call__)

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str and len(value) <= 256 and name.lower() in self._NAMES:
            parsed: BaseHeader = self._parse(name, value)
            return parsed
        return super().__call__(name, value)

    # One registry, shared like the parses it holds (a message's copies copy its policy).
    def __copy__(self) -> _MimeHeaders:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _MimeHeaders:
        return self

    def __reduce__(self) -> str:
        return "_MIME_HEADERS"  # pickled as a reference to the module's instance


_MIME_HEADERS = _MimeHeaders()
_POLICY = policy.default.clone(header_factory=_MIME_HEADERS)


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
    msg = email.message_from_bytes(data, policy=_POLICY)
    names = {name.lower() for name in msg}
    if not names & _EMAIL_HEADERS:
        raise MimeError(
            "not an email message: no header block with From/To/Subject/Date/MIME-Version",
            detail={"headers": sorted(names)},
        )
    walked: list[_Walked] = []
    for part, path, ctype in _walk(msg):
        broken = [type(d).__name__ for d in part.defects if isinstance(d, _BROKEN)]
        if broken:
            raise MimeError(
                f"broken MIME structure in {ctype} part: {', '.join(broken)}",
                detail={"defects": broken},
            )
        walked.append((part, path, ctype))
    if not _body_parts(walked):
        found = sorted({ctype for part, _, ctype in walked if not part.is_multipart()})
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
    return prepare(msg).links


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
    they came. For many copies of one message, `prepare` it once and `render` each.
    """
    return prepare(msg).render(rewrite, pixel_url, honeypot_url).message()


def prepare(msg: EmailMessage) -> Prepared:
    """Find, decode and scan the body parts of `msg` once, for any number of copies."""
    return Prepared(msg)


@dataclass(slots=True)
class _Body:
    """One body part as prepared: where it is, its decoded text and what is in it."""

    path: tuple[int, ...]  # child indices from the top of the message
    text: str
    codec: str
    cte: str
    scan: HtmlScan | None  # an HTML part's links and insertion points; None for text/plain
    urls: list[tuple[int, int, str]]  # a text/plain part's (start, end, url) to rewrite


@dataclass(frozen=True, slots=True)
class _Template:
    """A serialised message split where the body parts' payloads go."""

    pieces: list[bytes]  # len(bodies) + 1 pieces around the payloads
    originals: list[bytes]  # each body part's own payload, as the generator writes it
    linesep: bytes


class Prepared:
    """A message scanned once (see the module docstring): its links, and copies to render.

    The message is not copied: it must not change while copies are made from it.
    """

    __slots__ = ("_bodies", "_templates", "links", "msg")

    def __init__(self, msg: EmailMessage) -> None:
        self.msg = msg
        bodies: list[_Body] = []
        for part, path, kind, cte in _body_parts(_walk(msg)):
            text, codec = _decode(part)
            scan = scan_html(text) if kind == "html" else None
            bodies.append(_Body(path, text, codec, cte, scan, []))
        notrack = set[str]().union(*(b.scan.notrack for b in bodies if b.scan is not None))
        for body in bodies:
            if body.scan is None:
                body.urls = list(_text_urls(body.text, notrack))
        self._bodies = bodies
        self._templates: dict[str | None, _Template | None] = {}
        self.links = _links(bodies)

    def render(
        self,
        rewrite: Callable[[str], str],
        pixel_url: str | None,
        honeypot_url: str | None = None,
    ) -> Copy:
        """One copy, as `instrument` describes it (`rewrite` once per distinct URL)."""
        memo: dict[str, str] = {}

        def once(url: str) -> str:
            if url not in memo:
                memo[url] = rewrite(url)
            return memo[url]

        html_parts = [i for i, body in enumerate(self._bodies) if body.scan is not None]
        texts: list[str | None] = []
        for i, body in enumerate(self._bodies):
            if body.scan is not None:
                pixel = pixel_url if i == html_parts[-1] else None
                trap = honeypot_url if i == html_parts[0] else None
                new = splice(body.text, body.scan, once, pixel, trap)
            else:
                new = _splice_text(body.text, body.urls, once)
            texts.append(None if new == body.text else new)
        return Copy(self, texts)

    def _template(self, linesep: str | None) -> _Template | None:
        if linesep not in self._templates:
            self._templates[linesep] = self._make_template(linesep)
        return self._templates[linesep]

    def _make_template(self, linesep: str | None) -> _Template | None:
        """The message serialised with a marker for each body part's payload, or None
        where the markers cannot stand in for the payloads (the copy is then built)."""
        shadow = copy.deepcopy(self.msg)
        chosen = _copy_policy(shadow, linesep)
        if chosen.cte_type != "8bit":
            return None  # 7bit output re-encodes 8-bit payloads, and their headers
        if any(
            p.get_content_maintype() == "multipart" and p.is_multipart() and not p.get_boundary()
            for p in shadow.walk()
        ):
            return None  # the generator would pick a boundary from the payloads
        parts = [_at(shadow, body.path) for body in self._bodies]
        payloads = [vars(part).get("_payload") for part in parts]
        nl = chosen.linesep.encode("ascii")
        try:
            originals = [
                _with_linesep(p.encode("ascii", "surrogateescape"), nl)
                for p in payloads
                if isinstance(p, str)
            ]
        except UnicodeEncodeError:
            return None
        if len(originals) != len(parts):
            return None
        token = f"MAILSIGNAL{uuid.uuid4().hex}"
        for i, marked in enumerate(parts):
            marked.set_payload(f"{token}{i:06d}")
        pieces = shadow.as_bytes(policy=chosen).split(token.encode("ascii"))
        if len(pieces) != len(parts) + 1:
            return None
        for i in range(1, len(pieces)):
            if pieces[i][:6] != b"%06d" % (i - 1):
                return None
            pieces[i] = pieces[i][6:]
        return _Template(pieces, originals, nl)


class Copy:
    """One recipient's copy of a `Prepared` message: the new text of each changed part."""

    __slots__ = ("_prepared", "_texts")

    def __init__(self, prepared: Prepared, texts: list[str | None]) -> None:
        self._prepared, self._texts = prepared, texts

    def message(self) -> EmailMessage:
        """The copy as a message of its own (the prepared message deep-copied)."""
        out = copy.deepcopy(self._prepared.msg)
        out.policy = _copy_policy(out, None)
        for body, text in zip(self._prepared._bodies, self._texts, strict=True):
            if text is not None:
                _store(_at(out, body.path), text, body.codec, body.cte)
        return out

    def as_bytes(self, linesep: str | None = None) -> bytes:
        """The bytes `message().as_bytes()` writes, `linesep` ending each line if given."""
        template = self._prepared._template(linesep)
        if template is not None:
            out = [template.pieces[0]]
            for i, (body, text) in enumerate(zip(self._prepared._bodies, self._texts, strict=True)):
                if text is None:
                    out.append(template.originals[i])
                else:
                    data, cte = _encode(text, body.codec, body.cte)
                    if cte != body.cte:
                        break  # a new Content-Transfer-Encoding header: build the message
                    out.append(_with_linesep(data, template.linesep))
                out.append(template.pieces[i + 1])
            else:
                return b"".join(out)
        message = self.message()
        return message.as_bytes(policy=_copy_policy(message, linesep))


def _copy_policy(msg: Message, linesep: str | None) -> Any:
    """The policy a copy is written with: received headers are not refolded."""
    chosen = msg.policy
    if isinstance(chosen, policy.EmailPolicy):
        chosen = chosen.clone(refold_source="none")
    return chosen if linesep is None else chosen.clone(linesep=linesep)


def _walk(msg: Message) -> Iterator[_Walked]:
    """(part, path, content type) of the message and its parts in document order,
    entering multipart containers only.

    An attached message/rfc822 is an attachment: its insides are neither tracked nor
    checked. The explicit stack copes with any nesting depth.
    """
    stack: list[tuple[Message, tuple[int, ...]]] = [(msg, ())]
    while stack:
        part, path = stack.pop()
        ctype = part.get_content_type()
        yield part, path, ctype
        if ctype.partition("/")[0] == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(
                    (child, (*path, i))
                    for i, child in reversed(list(enumerate(children)))
                    if isinstance(child, Message)
                )


def _with_linesep(data: bytes, linesep: bytes) -> bytes:
    """`data` with every line ending made `linesep`, as the generator writes payloads."""
    crs, lfs, crlfs = data.count(b"\r"), data.count(b"\n"), data.count(b"\r\n")
    if crs == 0:  # LF only, or no line ending at all
        return data if linesep == b"\n" else data.replace(b"\n", linesep)
    if crs == lfs == crlfs:  # CRLF only
        return data if linesep == b"\r\n" else data.replace(b"\r\n", linesep)
    return linesep.join(_NEWLINE.split(data))


def _at(msg: Message, path: tuple[int, ...]) -> Message:
    part = msg
    for index in path:
        children = part.get_payload()
        assert isinstance(children, list)
        child = children[index]
        assert isinstance(child, Message)
        part = child
    return part


def _body_parts(walked: Iterable[_Walked]) -> list[tuple[Message, tuple[int, ...], str, str]]:
    """(part, path, "html" or "text", CTE) of the leaf text/html and text/plain parts
    shown as the body, in document order.

    A part with Content-Disposition attachment or a file name is an attachment.
    """
    found: list[tuple[Message, tuple[int, ...], str, str]] = []
    for part, path, ctype in walked:
        if ctype not in ("text/html", "text/plain") or part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename() is not None:
            continue
        cte = _cte(part)
        if cte in _KNOWN_CTE:
            found.append((part, path, "html" if ctype == "text/html" else "text", cte))
    return found


def _links(bodies: list[_Body]) -> list[LinkRef]:
    seen: dict[str, LinkRef] = {}
    for html_first in (True, False):
        for body in bodies:
            if (body.scan is not None) != html_first:
                continue
            pairs: Iterator[tuple[str, str]] = (
                ((link.url, link.text) for link in body.scan.links)
                if body.scan is not None
                else ((url, "") for _, _, url in body.urls)
            )
            kind = "html" if html_first else "text"
            for url, text in pairs:
                text = text.encode("utf-8", "replace").decode("utf-8")
                if url not in seen:
                    seen[url] = LinkRef(url, text, kind)
                elif text and not seen[url].text:
                    seen[url] = LinkRef(url, text, seen[url].part)
    return list(seen.values())


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


def _encode(text: str, codec: str, cte: str) -> tuple[bytes, str]:
    """The payload for `text` in its charset, keeping the CTE where it still fits.

    7bit and 8bit turn into quoted-printable when the text no longer fits them.
    """
    data = text.encode(codec, "surrogateescape")
    if cte in ("7bit", "8bit") and (
        (cte == "7bit" and not data.isascii())
        or max(map(len, data.splitlines()), default=0) > _MAX_LINE
    ):
        cte = "quoted-printable"
    if cte == "base64":
        return base64.encodebytes(data), cte
    if cte == "quoted-printable":
        return quopri.encodestring(data), cte
    return data, cte


def _store(part: Message, text: str, codec: str, cte: str) -> None:
    """Replace the payload, keeping charset and (where it still fits) the CTE."""
    data, new_cte = _encode(text, codec, cte)
    if new_cte != cte:
        if "content-transfer-encoding" in part:
            part.replace_header("Content-Transfer-Encoding", new_cte)
        else:
            part["Content-Transfer-Encoding"] = new_cte
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


def _splice_text(text: str, urls: list[tuple[int, int, str]], rewrite: Callable[[str], str]) -> str:
    out: list[str] = []
    last = 0
    for start, end, url in urls:
        out += (text[last:start], ascii_url(rewrite(url)))
        last = end
    out.append(text[last:])
    return "".join(out)
