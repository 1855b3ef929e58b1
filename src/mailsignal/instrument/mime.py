"""MIME for the instrumenter: parse a message, find its body parts, decode and re-encode.

MIME is treated like HTML (see the package docstring): only the payload of a changed body
part is replaced, in its own charset and with its original Content-Transfer-Encoding
(7bit turns into quoted-printable only when the new text no longer fits it). Headers,
structure and every attachment stay untouched.
"""

from __future__ import annotations

import base64
import codecs
import email
import functools
import quopri
import re
from collections.abc import Iterable, Iterator
from email import errors as email_errors
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from typing import Any

from mailsignal.errors import MimeError

from .nesting import check_depth

KNOWN_CTE = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
MAX_LINE = 998  # RFC 5322 limit for 7bit/8bit bodies, CRLF excluded
_BROKEN = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)
_EMAIL_HEADERS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type"}
)
_NEWLINE = re.compile(rb"\r\n|\r|\n")  # the line endings the generator rewrites
Walked = tuple[Message, tuple[int, ...], str]  # (part, path, content type)


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


def parse_message(raw: bytes | str) -> EmailMessage:
    """Parse an RFC 5322 message; `MimeError` if it has no headers or no body to track,
    or nests deeper than `MAX_DEPTH` (checked before parsing: the parser recurses)."""
    try:
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    except UnicodeEncodeError as exc:
        raise MimeError(
            f"not Unicode text: a lone surrogate at character {exc.start} of the message"
        ) from exc
    if not data.strip():
        raise MimeError("empty message: expected an RFC 5322 email with headers and a body")
    check_depth(data)
    msg = email.message_from_bytes(data, policy=_POLICY)
    names = {name.lower() for name in msg}
    if not names & _EMAIL_HEADERS:
        raise MimeError(
            "not an email message: no header block with From/To/Subject/Date/MIME-Version",
            detail={"headers": sorted(names)},
        )
    walked: list[Walked] = []
    for part, path, ctype in walk(msg):
        broken = [type(d).__name__ for d in part.defects if isinstance(d, _BROKEN)]
        if broken:
            raise MimeError(
                f"broken MIME structure in {ctype} part: {', '.join(broken)}",
                detail={"defects": broken},
            )
        walked.append((part, path, ctype))
    if not body_parts(walked):
        found = sorted({ctype for part, _, ctype in walked if not part.is_multipart()})
        raise MimeError(
            "no text/html or text/plain body part to track (found: "
            + (", ".join(found) or "nothing")
            + ")",
            detail={"content_types": found},
        )
    return msg


def copy_policy(msg: Message, linesep: str | None) -> Any:
    """The policy a copy is written with: received headers are not refolded."""
    chosen = msg.policy
    if isinstance(chosen, policy.EmailPolicy):
        chosen = chosen.clone(refold_source="none")
    return chosen if linesep is None else chosen.clone(linesep=linesep)


def walk(msg: Message) -> Iterator[Walked]:
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


def with_linesep(data: bytes, linesep: bytes) -> bytes:
    """`data` with every line ending made `linesep`, as the generator writes payloads."""
    crs, lfs, crlfs = data.count(b"\r"), data.count(b"\n"), data.count(b"\r\n")
    if crs == 0:  # LF only, or no line ending at all
        return data if linesep == b"\n" else data.replace(b"\n", linesep)
    if crs == lfs == crlfs:  # CRLF only
        return data if linesep == b"\r\n" else data.replace(b"\r\n", linesep)
    return linesep.join(_NEWLINE.split(data))


def part_at(msg: Message, path: tuple[int, ...]) -> Message:
    """The part `path` (child indices from the top, as `walk` gives them) names."""
    part = msg
    for index in path:
        children = part.get_payload()
        assert isinstance(children, list)
        child = children[index]
        assert isinstance(child, Message)
        part = child
    return part


def body_parts(walked: Iterable[Walked]) -> list[tuple[Message, tuple[int, ...], str, str]]:
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
        cte = cte_of(part)
        if cte in KNOWN_CTE:
            found.append((part, path, "html" if ctype == "text/html" else "text", cte))
    return found


def cte_of(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "7bit")).strip().lower()


def codec_of(charset: str | None) -> str:
    """A Python codec for the part; undeclared, us-ascii and unknown charsets read as UTF-8.

    Decoding and encoding use `surrogateescape`, so bytes the codec cannot read survive.
    """
    try:
        name = codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"
    return "utf-8" if name == "ascii" else name


def decode_part(part: Message) -> tuple[str, str] | None:
    """(text, codec) of a body part's payload; None when the text cannot be encoded back,
    so the part cannot be changed (it is then left as it came).

    `surrogateescape` carries undecodable bytes through ASCII-compatible codecs only: a
    UTF-16 part with an odd byte count, say, does not decode, or decodes to a text that
    does not encode again.
    """
    codec = codec_of(part.get_content_charset())
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    try:
        text = data.decode(codec, "surrogateescape")
        text.encode(codec, "surrogateescape")
    except UnicodeError:
        return None
    return text, codec


def encode_payload(text: str, codec: str, cte: str) -> tuple[bytes, str]:
    """The payload for `text` in its charset, keeping the CTE where it still fits.

    7bit and 8bit turn into quoted-printable when the text no longer fits them.
    """
    data = text.encode(codec, "surrogateescape")
    if cte in ("7bit", "8bit") and (
        (cte == "7bit" and not data.isascii())
        or max(map(len, data.splitlines()), default=0) > MAX_LINE
    ):
        cte = "quoted-printable"
    if cte == "base64":
        return base64.encodebytes(data), cte
    if cte == "quoted-printable":
        return quopri.encodestring(data), cte
    return data, cte


def store_text(part: Message, text: str, codec: str, cte: str) -> None:
    """Replace the payload, keeping charset and (where it still fits) the CTE."""
    data, new_cte = encode_payload(text, codec, cte)
    if new_cte != cte:
        if "content-transfer-encoding" in part:
            part.replace_header("Content-Transfer-Encoding", new_cte)
        else:
            part["Content-Transfer-Encoding"] = new_cte
    part.set_payload(data.decode("ascii", "surrogateescape"))
