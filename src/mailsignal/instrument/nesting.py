"""How deep a message's parts nest, read from its bytes before anything parses them.

The stdlib's parser, `copy.deepcopy` and the generator all recurse once or more per level
of multipart (and per attached message/rfc822), so a message nested 2,000 deep raises
RecursionError wherever it is first touched. No mail client nests more than a handful of
levels; `MAX_DEPTH` (100) leaves room for forwards of forwards and stays far from the
interpreter's limit (a 150-deep message is still copied and written whole).

`check_depth` follows the parser's own reading without recursing: a header block, then
for multipart a preamble and parts between `--boundary` lines (an enclosing boundary
also ends every part inside it), for message/* a nested message whose header block
starts at once. Only header blocks that may open a container are parsed (with the
stdlib's header parser, so the boundary is the one the parser will use); body lines are
skipped to the next line that starts with `--`.
"""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailsignal.errors import MimeError

MAX_DEPTH = 100
# The parser's header line (email.feedparser.headerRE): a field, a continuation, mbox From.
_HEADER = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_EOL = re.compile(rb"\r\n|\r|\n")
_CONTAINER = re.compile(rb"multipart|message", re.IGNORECASE)
_PARSER = BytesHeaderParser(policy=compat32)


def check_depth(data: bytes, limit: int = MAX_DEPTH) -> None:
    """MimeError when multiparts and attached messages in `data` nest deeper than `limit`."""
    # Per open container: its "--boundary" and whether it is multipart/digest (whose parts
    # default to message/rfc822); None for a message/* part.
    open_: list[tuple[bytes, bool] | None] = []
    pos, size = 0, len(data)
    digest_part = False  # the header block being read is a part of a multipart/digest
    while pos < size:
        # A header block: lines up to a blank or non-header line, or a boundary line.
        start = pos
        while pos < size:
            line, end = _line(data, pos)
            if not line or _boundary(open_, line) is not None or not _HEADER.match(line):
                break
            pos = end
        block = data[start:pos]
        if line == b"" and pos < size:
            pos = end  # the blank line ending the headers
        kind = _container(block, digest_part)
        if kind is not None:
            open_.append(kind if kind else None)
            if len(open_) > limit:
                raise MimeError(
                    f"message parts nest more than {limit} levels deep (multipart or "
                    "attached messages inside each other); refused before parsing",
                    detail={"max_depth": limit},
                )
            if not kind:
                digest_part = False
                continue  # message/*: the attached message's own header block follows
        # A body, preamble or epilogue: skip to a boundary line of an open multipart.
        while True:
            at = _dashes(data, pos)
            if at < 0:
                return
            line, pos = _line(data, at)
            level = _boundary(open_, line)
            if level is None:
                continue
            del open_[level + 1 :]
            boundary = open_[level]
            assert boundary is not None
            if line.rstrip(b" \t") == boundary[0]:  # a part starts: its header block
                digest_part = boundary[1]
                break
            del open_[level]  # the closing "--boundary--": the epilogue follows


def _dashes(data: bytes, pos: int) -> int:
    """Where the first line at or after `pos` that starts with "--" starts, or -1."""
    while True:
        at = data.find(b"--", pos)
        if at <= 0 or data[at - 1] in b"\r\n" or at == pos:
            return at
        pos = at + 1


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    """The line at `pos` without its ending, and where the next line starts."""
    eol = _EOL.search(data, pos)
    return (data[pos:], len(data)) if eol is None else (data[pos : eol.start()], eol.end())


def _boundary(open_: list[tuple[bytes, bool] | None], line: bytes) -> int | None:
    """The level of the innermost open multipart `line` is a boundary line of, or None."""
    if not line.startswith(b"--"):
        return None
    stripped = line.rstrip(b" \t")
    for level in range(len(open_) - 1, -1, -1):
        entry = open_[level]
        if entry is not None and stripped in (entry[0], entry[0] + b"--"):
            return level
    return None


def _container(block: bytes, digest_part: bool) -> tuple[bytes, bool] | tuple[()] | None:
    """What the part headed by `block` opens: (its "--boundary", is digest) for a
    multipart with a boundary, () for a message/* the parser reads as a message, None
    for a leaf."""
    if not digest_part and not _CONTAINER.search(block):
        return None
    headers = _PARSER.parsebytes(block + b"\n")
    if digest_part:
        headers.set_default_type("message/rfc822")
    maintype = headers.get_content_maintype()
    if maintype == "message" and headers.get_content_subtype() != "delivery-status":
        return ()
    boundary = headers.get_boundary() if maintype == "multipart" else None
    if boundary is None:
        return None
    separator = b"--" + boundary.encode("utf-8", "surrogateescape")
    return separator, headers.get_content_subtype() == "digest"
