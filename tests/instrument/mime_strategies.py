"""Hypothesis strategies for hostile MIME: trees of multiparts and attached messages with
odd charsets and transfer encodings, broken or reused boundaries, junk header lines, and
bodies with links in every spelling; now and then a chain nested past the bound.

Shared by the instrumenter's fuzz test and the REST one (tests/web/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-7", "x-bogus", ""]
CTES = ["7bit", "8bit", "binary", "quoted-printable", "base64", "x-uuencode", "BASE64 ", "bogus"]
LEAVES = ["text/plain", "text/html", "application/pdf", "image/png", "text/calendar"]
CONTAINERS = ["multipart/mixed", "multipart/alternative", "multipart/digest", "message/rfc822"]
LINKS = [
    "https://example.com/p?a=1&amp;b=2",
    "HTTPS://Example.com/Upper",
    "Http://example.com/mixed",
    "https://example.com/\x00nul",
    "https://exa mple.com/space",
    "https://ex\u00e4mple.com/idn",
    "http://[::1/broken",
    "javascript:alert(1)",
    "https://",
]
JUNK_HEADERS = [
    b"X-Junk: \x00\x01\x02",
    b"X-8bit: caf\xe9 \xff\xfe",
    b"no colon on this line",
    b"X-Long: " + b"x" * 990,
    b"Subject: =?utf-8?q?=00=0D=0ABcc:_spy@evil.test?=",
    b"Subject: =?bogus?b?////?=",
    b"Content-Type: multipart/mixed",  # a second Content-Type, no boundary
    b"Content-Transfer-Encoding: quoted-printable",
    b" continuation without a field",
    b"Message-ID: <\x00@x>",
    b"To: undisclosed-recipients:;",
    b'Cc: "a, b" <a@x.test>, <broken@',
]

_bytes_text = st.text(st.characters(exclude_categories=()), max_size=40).map(
    lambda t: t.encode("utf-8", "surrogatepass")
)


@st.composite
def _body(draw: Any, ctype: str) -> bytes:
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(LINKS).map(lambda u: f'<a href="{u}">l\x00ink</a> {u} '.encode()),
                _bytes_text,
                st.binary(max_size=30),
                st.sampled_from([b"\r\n", b"\n", b"\r", b"--", b"--b0--\r\n", b"=\r\n", b"=ZZ"]),
            ),
            max_size=8,
        )
    )
    body = b"".join(pieces)
    if ctype == "text/html" and draw(st.booleans()):
        body = b"<html><body>" + body + b"</body></html>"
    return body


@st.composite
def _part(draw: Any, depth: int, counter: list[int]) -> bytes:
    """One part: its header block and body, a container holding more parts below `depth`."""
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    headers: list[bytes] = []
    kind = draw(st.sampled_from(CONTAINERS if depth > 0 else LEAVES) | st.sampled_from(LEAVES))
    boundary = f"b{counter[0]}"
    counter[0] += 1
    if draw(st.integers(0, 9)) == 0:
        boundary = "b0"  # reused by a nested multipart
    params = b""
    if kind.startswith("multipart/") and draw(st.integers(0, 9)) > 0:
        params = f'; boundary="{boundary}"'.encode()
    if kind.startswith("text/") and draw(st.booleans()):
        params += f"; charset={draw(st.sampled_from(CHARSETS))}".encode()
    if draw(st.integers(0, 9)) > 0:
        headers.append(b"Content-Type: " + kind.encode() + params)
    if draw(st.integers(0, 3)) == 0:
        headers.append(b"Content-Transfer-Encoding: " + draw(st.sampled_from(CTES)).encode())
    if draw(st.integers(0, 4)) == 0:
        headers.append(b'Content-Disposition: attachment; filename="r\xe9\x00port.pdf"')
    headers += draw(st.lists(st.sampled_from(JUNK_HEADERS), max_size=2))
    head = nl.join(headers) + nl + nl
    if kind == "message/rfc822":
        return head + draw(message(depth - 1, counter, top=False))
    if not kind.startswith("multipart/"):
        return head + draw(_body(kind))
    children = draw(st.lists(_part(depth - 1, counter), min_size=0, max_size=3))
    sep = b"--" + boundary.encode()
    out = head + draw(st.sampled_from([b"", b"preamble" + nl]))
    for child in children:
        out += sep + nl + child + nl
    closing = draw(st.sampled_from([sep + b"--" + nl, b"", b"--wrong--" + nl]))
    return out + closing + draw(st.sampled_from([b"", b"epilogue" + nl]))


@st.composite
def message(draw: Any, depth: int = 4, counter: list[int] | None = None, top: bool = True) -> bytes:
    """A whole message: top headers (From/To/Subject, sometimes junk) and a part tree."""
    counter = counter if counter is not None else [0]
    nl = b"\r\n"
    head = [
        b"From: Rep <rep@northwind.test>",
        b"To: Dana <dana@contoso.test>",
        draw(st.sampled_from([b"Subject: Pricing", b"Subject: caf\xe9 \x00", b"Subject:"])),
    ]
    if top and draw(st.booleans()):
        head.append(b"MIME-Version: 1.0")
    if draw(st.booleans()):
        head.append(b"Message-ID: <m" + str(counter[0]).encode() + b"@northwind.test>")
    return nl.join(head) + nl + draw(_part(depth, counter))


def nested(depth: int, kind: str = "multipart/mixed") -> bytes:
    """A message whose text sits `depth` containers deep (multiparts or attached messages)."""
    head = [b"From: rep@northwind.test\r\nTo: dana@contoso.test\r\nSubject: deep\r\n"]
    tail: list[bytes] = []
    for i in range(depth):
        if kind == "message/rfc822":
            head.append(b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n")
        else:
            head.append(f'Content-Type: {kind}; boundary="n{i}"\r\n\r\n--n{i}\r\n'.encode())
            tail.append(f"--n{i}--\r\n".encode())
    head.append(b"Content-Type: text/html\r\n\r\n<a href='https://example.com/x'>x</a>\r\n")
    return b"".join(head + tail[::-1])


messages = st.one_of(
    message(),
    st.builds(nested, st.integers(95, 105), st.sampled_from(["multipart/mixed", "message/rfc822"])),
    st.binary(max_size=200),
)
