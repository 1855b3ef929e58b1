"""Find and splice the trackable links of one HTML document (for prepare.py).

The stdlib `HTMLParser` decides where every tag and comment is (it is the tokenizer);
this module only maps its positions to offsets in the source string and, inside one
start tag the parser has already delimited, walks the attributes by hand to learn
where the `href` value sits. Edits are (start, end, replacement) spans applied in one
pass, so every byte outside the changed values and the inserted pixel/honeypot is the
original source. Outlook conditional comments are parsed again with the same class,
offset to where the comment body starts in the outer document.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.entities import html5
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

_WS = " \t\n\r\f"
_NOTRACK = frozenset({"data-notrack", "data-mailsignal-notrack"})
_TEXT_MAX = 200
_TAB_NEWLINE = {9: None, 10: None, 13: None}  # URL parsers drop these anywhere
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_CONTROL = re.compile("[\x00-\x1f\x7f]")


@dataclass(slots=True)
class HtmlLink:
    """One trackable link: `start:end` is the raw attribute value's span in the document."""

    start: int
    end: int
    quoted: bool
    url: str
    text: str = ""


@dataclass(slots=True)
class _RawAttr:
    name: str
    value: str | None
    start: int  # offsets inside the start tag text
    end: int
    quoted: bool


@dataclass(slots=True)
class HtmlScan:
    """What `scan_html` found: links in document order, marked-untracked URLs, spots."""

    links: list[HtmlLink] = field(default_factory=list)
    notrack: set[str] = field(default_factory=set)  # URLs a link marks as not-to-track
    body_open_end: int | None = None  # just after the first <body ...>
    body_close: int | None = None  # at the '<' of the last </body>
    head_end: int = 0  # after <!DOCTYPE>, <html ...> or </head>: honeypot spot without <body>


def trackable_url(url: str) -> str | None:
    """`url` as it is tracked, when it is an absolute http(s) URL with a host, stored as
    UTF-8 text: its scheme lower-cased (the one spelling the tracker redirects to, and
    the one `HTTPS://x` and `https://x` share); None for any other URL, and for one
    with a control character, which no browser would follow as written."""
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
    except (UnicodeEncodeError, ValueError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc or _CONTROL.search(url):
        return None
    return scheme + url[len(parts.scheme) :]


def ascii_url(url: str) -> str:
    """Percent-encode what may not appear raw in a URL we write (non-ASCII, spaces)."""
    return quote(url, safe=_URL_SAFE)


def decode_attr(raw: str) -> str:
    """Decode character references the way browsers do inside attribute values.

    Unlike `html.unescape`, a legacy reference without ';' followed by a letter, digit or
    '=' stays literal, so `?lang=de&region=eu` keeps `&region` (it is not `®ion`).
    """
    head, *segments = raw.split("&")
    out = [head]
    for seg in segments:
        if seg.startswith("#"):
            out.append(html.unescape("&" + seg))
            continue
        for k in range(min(len(seg), 32), 0, -1):
            name = seg[:k]
            if name in html5:
                nxt = seg[k : k + 1]
                legacy = not name.endswith(";") and nxt.isascii() and (nxt.isalnum() or nxt == "=")
                out.append("&" + seg if legacy else html5[name] + seg[k:])
                break
        else:
            out.append("&" + seg)
    return "".join(out)


def scan_attrs(tag: str) -> list[_RawAttr]:
    """Attributes of one start tag's source text, following the WHATWG tokenizer states."""
    n, i, attrs = len(tag), 1, []
    while i < n and tag[i] not in _WS and tag[i] not in "/>":
        i += 1
    while i < n:
        if tag[i] in _WS or tag[i] == "/":
            i += 1
            continue
        if tag[i] == ">":
            break
        start, i = i, i + 1  # a name may start with '='
        while i < n and tag[i] not in _WS and tag[i] not in "/>=":
            i += 1
        name, j = tag[start:i].lower(), i
        while j < n and tag[j] in _WS:
            j += 1
        if j >= n or tag[j] != "=":
            attrs.append(_RawAttr(name, None, i, i, False))
            continue
        j += 1
        while j < n and tag[j] in _WS:
            j += 1
        if j < n and tag[j] in "\"'":
            end = tag.find(tag[j], j + 1)
            end = n if end < 0 else end
            attrs.append(_RawAttr(name, tag[j + 1 : end], j + 1, end, True))
            i = end + 1
        else:
            end = j
            while end < n and tag[end] not in _WS and tag[end] != ">":
                end += 1
            attrs.append(_RawAttr(name, tag[j:end], j, end, False))
            i = end
    return attrs


class _LinkParser(HTMLParser):
    def __init__(self, source: str, base: int, conditional: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._source, self._base, self._conditional = source, base, conditional
        self._line_starts = [0]
        pos = source.find("\n")
        while pos >= 0:
            self._line_starts.append(pos + 1)
            pos = source.find("\n", pos + 1)
        self.scan = HtmlScan()
        self._open: tuple[str, HtmlLink] | None = None  # the link collecting its text
        self._text = ""

    def run(self) -> HtmlScan:
        # No close(): like a browser we drop a construct left open at the end, and the
        # EOF handling of Python < 3.13.5 is quadratic on unclosed tags (CVE-2025-6069).
        self.feed(self._source)
        self._finish_text()
        return self.scan

    def _here(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _finish_text(self) -> None:
        if self._open is not None:
            self._open[1].text = " ".join(self._text.split())[:_TEXT_MAX].rstrip()
            self._open, self._text = None, ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start, raw = self._here(), self.get_starttag_text() or ""
        if not self._conditional:
            if tag == "body" and self.scan.body_open_end is None:
                self.scan.body_open_end = self._base + start + len(raw)
            elif tag == "html" and self.scan.body_open_end is None:
                self.scan.head_end = self._base + start + len(raw)
        if tag in ("a", "area") or (self._conditional and tag.startswith("v:")):
            if tag == "a" or (self._open is not None and self._open[0] == tag):
                self._finish_text()
            self._add_link(tag, start, raw, [name for name, _ in attrs])

    def _add_link(self, tag: str, start: int, raw: str, names: list[str]) -> None:
        found = scan_attrs(raw)
        if [a.name for a in found] != names:
            return  # the parser read this tag differently: leave it exactly as it is
        href = next((a for a in found if a.name == "href"), None)
        if href is None or href.value is None:
            return
        url = trackable_url(decode_attr(href.value).strip(_WS).translate(_TAB_NEWLINE))
        if url is None:  # (tabs and newlines dropped, as a browser does)
            return
        if any(a.name in _NOTRACK for a in found) or any(
            a.name == "clicktracking" and (a.value or "").strip().lower() == "off" for a in found
        ):
            self.scan.notrack.add(url)
            return
        at = self._base + start
        link = HtmlLink(at + href.start, at + href.end, href.quoted, url)
        self.scan.links.append(link)
        if tag != "area":
            self._open = (tag, link)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body" and not self._conditional:
            self.scan.body_close = self._base + self._here()
        elif tag == "head" and not self._conditional and self.scan.body_open_end is None:
            close = self._source.find(">", self._here())
            self.scan.head_end = self._base + (len(self._source) if close < 0 else close + 1)
        if self._open is not None and self._open[0] == tag:
            self._finish_text()

    def handle_data(self, data: str) -> None:
        if self._open is not None and len(self._text) < 4 * _TEXT_MAX:
            self._text += data[: 4 * _TEXT_MAX]  # bounded: linear however long the text

    def handle_decl(self, decl: str) -> None:
        if not self._conditional and self.scan.body_open_end is None:
            self.scan.head_end = max(self.scan.head_end, self._base + self._here() + len(decl) + 3)

    def handle_comment(self, data: str) -> None:
        if data.lstrip(_WS)[:3].lower() == "[if":
            inner = _LinkParser(data, self._base + self._here() + 4, True).run()
            self.scan.links.extend(inner.links)
            self.scan.notrack |= inner.notrack


def scan_html(source: str) -> HtmlScan:
    """Every trackable link of `source` in document order (duplicates kept), and more."""
    return _LinkParser(source, 0, False).run()


def splice(
    source: str,
    scan: HtmlScan,
    rewrite: Callable[[str], str],
    pixel_url: str | None = None,
    honeypot_url: str | None = None,
    notice: str | None = None,
) -> str:
    """`source` (as scanned) with each link's URL replaced by `rewrite(url)`, extras
    inserted; `notice` (the stop-tracking paragraph, notice.py) goes before the pixel."""
    edits: list[tuple[int, int, str]] = []
    for link in scan.links:
        value = html.escape(ascii_url(rewrite(link.url)), quote=True)
        edits.append((link.start, link.end, value if link.quoted else f'"{value}"'))
    if honeypot_url is not None:
        at = scan.body_open_end if scan.body_open_end is not None else scan.head_end
        edits.append((at, at, honeypot_tag(honeypot_url)))
    close = scan.body_close if scan.body_close is not None else len(source)
    if notice is not None:
        edits.append((close, close, notice))
    if pixel_url is not None:
        edits.append((close, close, pixel_tag(pixel_url)))
    edits.sort(key=lambda edit: edit[0])  # stable: a honeypot stays before a pixel at one spot
    out: list[str] = []
    last = 0
    for start, end, text in edits:
        out += (source[last:start], text)
        last = end
    out.append(source[last:])
    return "".join(out)


def pixel_tag(url: str) -> str:
    """The 1x1 open-tracking image (not display:none: clients skip loading hidden images)."""
    src = html.escape(ascii_url(url), quote=True)
    return (
        f'<img src="{src}" width="1" height="1" alt="" border="0" style="width:1px;'
        'height:1px;border:0;margin:0;padding:0;display:block;overflow:hidden">'
    )


def honeypot_tag(url: str) -> str:
    """An empty link no person sees or hears; only a machine that follows every href hits it."""
    href = html.escape(ascii_url(url), quote=True)
    return (
        f'<a href="{href}" data-mailsignal-notrack aria-hidden="true" tabindex="-1" style="'
        "display:none!important;mso-hide:all;font-size:0;line-height:0;max-height:0;"
        'max-width:0;overflow:hidden;opacity:0"></a>'
    )
