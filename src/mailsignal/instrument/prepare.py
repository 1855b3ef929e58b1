"""Decide whether a copy is tracked; scan a message once and render each recipient's copy.

Why `prepare`: a message goes to many recipients, and finding the parts, decoding and
scanning them is most of the work. `prepare(msg)` does it once; `Prepared.render` then
makes each recipient's copy by splicing new URLs into the prepared texts. A copy is
serialised from a template: the message written once with a marker for each body part's
payload, so each copy's bytes are the template joined with its own encoded payloads (the
bytes `as_bytes()` of the equivalent message would write, without building that message).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

from mailsignal.model import TrackingDecision

from .html import HtmlScan, ascii_url, scan_html, splice, trackable_url
from .mime import (
    body_parts,
    copy_policy,
    decode_part,
    encode_payload,
    part_at,
    store_text,
    walk,
    with_linesep,
)
from .notice import LINES, message_language, notice_html, notice_text, pick_language

_TEXT_URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}*"
_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])  # str.translate: dropped


@dataclass(frozen=True, slots=True)
class LinkRef:
    """One trackable link as written in the message."""

    url: str  # the original http(s) URL, HTML entities decoded
    text: str  # first anchor text seen (collapsed, <= 200 chars); "" for text/image links
    part: str  # "html" or "text": where it was first seen


def decide(
    org_allowed: bool,
    sender_opted_in: bool,
    recipient_follow: bool,
    listed: bool = False,
    *,
    basis: str = "legitimate_interests",
    consented: bool = False,
) -> TrackingDecision:
    """Tracked only if the organisation, the sender and the recipient all allow it:
    `recipient_follow` is the party's `followemail`, `listed` whether the address is on
    the do-not-track list (the recipient's own stop-tracking choice, issue 13). `basis`
    is the recipient's tracking basis (basis.py): `off` tracks nobody, `consent` only a
    recipient who `consented` (a recorded consent, not withdrawn)."""
    checks = (
        (org_allowed, "org.monitoring_disabled"),
        (basis != "off", "org.basis_off"),
        (basis != "consent" or consented, "recipient.no_consent"),
        (sender_opted_in, "sender.not_opted_in"),
        (recipient_follow, "recipient.do_not_track"),
        (not listed, "recipient.opted_out"),
    )
    reasons = tuple(reason for allowed, reason in checks if not allowed)
    return TrackingDecision(tracked=not reasons, reasons=reasons)


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

    __slots__ = ("_bodies", "_templates", "language", "links", "msg")

    def __init__(self, msg: EmailMessage) -> None:
        self.msg = msg
        self.language = pick_language(message_language(msg))  # of the stop-tracking line
        bodies: list[_Body] = []
        for part, path, kind, cte in body_parts(walk(msg)):
            decoded = decode_part(part)
            if decoded is None:
                continue  # left exactly as it came, untracked
            text, codec = decoded
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
        rewrite: Callable[[str], str] | None,
        pixel_url: str | None,
        honeypot_url: str | None = None,
        notice_url: str | None = None,
        lines: dict[str, tuple[str, str]] = LINES,
    ) -> Copy:
        """One copy, as `instrument` describes it (`rewrite` once per distinct URL; None
        leaves every link as it is); with `notice_url`, the last HTML and the last text
        part end with the stop-tracking line (notice.py; `lines` its words) linking it,
        never rewritten."""
        memo: dict[str, str] = {}

        def once(url: str) -> str:
            if url not in memo:
                memo[url] = url if rewrite is None else rewrite(url)
            return memo[url]

        html_parts = [i for i, body in enumerate(self._bodies) if body.scan is not None]
        text_parts = [i for i, body in enumerate(self._bodies) if body.scan is None]
        texts: list[str | None] = []
        for i, body in enumerate(self._bodies):
            if body.scan is not None:
                pixel = pixel_url if i == html_parts[-1] else None
                trap = honeypot_url if i == html_parts[0] else None
                notice = None
                if notice_url is not None and i == html_parts[-1]:
                    notice = notice_html(notice_url, self.language, lines)
                scan = body.scan if rewrite is not None else _spots(body.scan)
                new = splice(body.text, scan, once, pixel, trap, notice)
            else:
                new = _splice_text(body.text, body.urls if rewrite is not None else [], once)
                if notice_url is not None and i == text_parts[-1]:
                    nl = "\r\n" if "\r\n" in new else "\n"
                    end = "" if not new or new.endswith(("\n", "\r")) else nl
                    new += end + notice_text(notice_url, self.language, body.codec, nl, lines)
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
        chosen = copy_policy(shadow, linesep)
        if chosen.cte_type != "8bit":
            return None  # 7bit output re-encodes 8-bit payloads, and their headers
        if any(
            p.get_content_maintype() == "multipart" and p.is_multipart() and not p.get_boundary()
            for p in shadow.walk()
        ):
            return None  # the generator would pick a boundary from the payloads
        parts = [part_at(shadow, body.path) for body in self._bodies]
        payloads = [vars(part).get("_payload") for part in parts]
        nl = chosen.linesep.encode("ascii")
        try:
            originals = [
                with_linesep(p.encode("ascii", "surrogateescape"), nl)
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
        out.policy = copy_policy(out, None)
        for body, text in zip(self._prepared._bodies, self._texts, strict=True):
            if text is not None:
                store_text(part_at(out, body.path), text, body.codec, body.cte)
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
                    data, cte = encode_payload(text, body.codec, body.cte)
                    if cte != body.cte:
                        break  # a new Content-Transfer-Encoding header: build the message
                    out.append(with_linesep(data, template.linesep))
                out.append(template.pieces[i + 1])
            else:
                return b"".join(out)
        message = self.message()
        return message.as_bytes(policy=copy_policy(message, linesep))


def _spots(scan: HtmlScan) -> HtmlScan:
    """Where a scan inserts things, without its links (a copy whose links stay)."""
    return HtmlScan([], set(), scan.body_open_end, scan.body_close, scan.head_end)


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
                # A label to store: no lone surrogates (undecodable bytes), no controls.
                text = text.encode("utf-8", "replace").decode("utf-8").translate(_CONTROLS)
                if url not in seen:
                    seen[url] = LinkRef(url, text, kind)
                elif text and not seen[url].text:
                    seen[url] = LinkRef(url, text, seen[url].part)
    return list(seen.values())


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
        url = trackable_url(found[:end])
        if url is not None and url not in notrack:
            yield match.start(), match.start() + end, url


def _splice_text(text: str, urls: list[tuple[int, int, str]], rewrite: Callable[[str], str]) -> str:
    out: list[str] = []
    last = 0
    for start, end, url in urls:
        out += (text[last:start], ascii_url(rewrite(url)))
        last = end
    out.append(text[last:])
    return "".join(out)
