"""Replace attachments by tracked download links (pure: no I/O, no framework).

Why: a download is one of the strongest engagement signals a sales email gives, and a
large file kept out of the message also keeps it out of every mailbox quota. The
downloads are events like opens and clicks, so the classifier labels them (mail
scanners fetch attachment links as eagerly as they fetch the pixel).

Which parts count as attachments: leaf parts that are not a body part (the text/html or
text/plain the reader sees) and that either say `Content-Disposition: attachment` or
carry a file name without a Content-ID. Inline images referenced by `cid:` from the HTML
stay, as replacing them would break how the message looks; an attached message
(message/rfc822) stays too, as would a message that is nothing but one attachment
(there is no body to hold the link).

The link list is spliced into each body part's decoded text in the part's own charset,
with its Content-Transfer-Encoding kept where it still fits, as `instrument` does
(mime.py's `encode_payload`).
"""

from __future__ import annotations

import copy
import hashlib
import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message

from .mime import KNOWN_CTE, cte_of, decode_part, encode_payload

__all__ = [
    "AttachmentLink",
    "AttachmentPolicy",
    "FoundAttachment",
    "find_attachments",
    "human_size",
    "replace_attachments",
]

MODES = ("off", "all", "over_size")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """Which attachments become links: none ("off"), every one ("all"), or big ones."""

    mode: str = "off"
    min_bytes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"attachment mode must be one of {', '.join(MODES)}")

    def replaces(self, size: int) -> bool:
        return self.mode == "all" or (self.mode == "over_size" and size >= self.min_bytes)


@dataclass(frozen=True, slots=True)
class FoundAttachment:
    """One attachment to replace. `index` names the part in any deep copy of the message."""

    index: int
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class AttachmentLink:
    """What the reader sees instead of the file: its name, size and download URL."""

    url: str
    filename: str
    size: int


def _leaves(msg: Message) -> Iterator[tuple[Message, Message | None]]:
    """(leaf part, its multipart parent) in document order; message/rfc822 is a leaf."""
    stack: list[tuple[Message, Message | None]] = [(msg, None)]
    while stack:
        part, parent = stack.pop()
        children = part.get_payload() if part.get_content_maintype() == "multipart" else None
        if isinstance(children, list):
            stack.extend((c, part) for c in reversed(children) if isinstance(c, Message))
        else:
            yield part, parent


def _is_body(part: Message) -> bool:
    return (
        part.get_content_type() in ("text/html", "text/plain")
        and part.get_content_disposition() != "attachment"
        and part.get_filename() is None
        and cte_of(part) in KNOWN_CTE
    )


def _is_attachment(part: Message, parent: Message | None) -> bool:
    if parent is None or _is_body(part) or part.get_content_maintype() == "message":
        return False
    if part.get_content_disposition() == "attachment":
        return True
    return part.get_filename() is not None and part.get("content-id") is None


def find_attachments(msg: Message, policy: AttachmentPolicy) -> list[FoundAttachment]:
    """The attachments of `msg` that `policy` replaces, in document order."""
    if policy.mode == "off":
        return []
    found: list[FoundAttachment] = []
    for index, (part, parent) in enumerate(_leaves(msg)):
        if not _is_attachment(part, parent):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if policy.replaces(len(data)):
            name = part.get_filename() or f"attachment-{index}"
            found.append(FoundAttachment(index, name, part.get_content_type(), data))
    return found


def replace_attachments(
    msg: EmailMessage, links: Mapping[int, AttachmentLink], *, in_place: bool = False
) -> EmailMessage:
    """`msg` without the parts named in `links`, listing them in each body part.

    A copy unless `in_place` (for a caller that owns a fresh copy already: a deep copy
    of a message with a 30 MB attachment is not free). A message with no body part gets
    a text/plain part first in its top multipart.
    """
    out = msg if in_place else copy.deepcopy(msg)
    if not links:
        return out
    bodies: list[Message] = []
    for index, (part, parent) in enumerate(_leaves(out)):
        if index in links and parent is not None:
            children = parent.get_payload()
            assert isinstance(children, list)
            children.remove(part)
        elif _is_body(part):
            bodies.append(part)
    ordered = [links[i] for i in sorted(links)]
    for part in bodies:
        is_html = part.get_content_type() == "text/html"
        _append(part, _html_block(ordered) if is_html else _text_block(ordered), is_html)
    if not bodies and out.is_multipart():
        note = EmailMessage()
        note.set_content(_text_block(ordered).lstrip("\n"))
        children = out.get_payload()
        assert isinstance(children, list)
        children.insert(0, note)
    return out


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _html_block(links: list[AttachmentLink]) -> str:
    # Entities, not raw characters, so the block fits any charset the part declares.
    rows = "".join(
        f'<p style="margin:0"><a href="{html.escape(link.url)}">'
        f"{_ascii_html(link.filename)}</a> ({human_size(link.size)})</p>"
        for link in links
    )
    return (
        '<div class="mailsignal-attachments" style="margin-top:16px">'
        f'<p style="margin:0 0 4px"><b>Attachments</b></p>{rows}</div>'
    )


def _ascii_html(text: str) -> str:
    return html.escape(text).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _text_block(links: list[AttachmentLink]) -> str:
    lines = [f"  {link.filename} ({human_size(link.size)}): {link.url}" for link in links]
    return "\n\nAttachments:\n" + "\n".join(lines) + "\n"


def _append(part: Message, block: str, is_html: bool) -> None:
    decoded = decode_part(part)
    if decoded is None:
        return  # a part that cannot be changed without changing what it says
    text, codec = decoded
    # Names the charset cannot spell become "?" rather than bytes it does not declare.
    block = block.encode(codec, "replace").decode(codec)
    ends = list(_BODY_END.finditer(text)) if is_html else []
    if ends:
        at = ends[-1].start()
        text = text[:at] + block + text[at:]
    else:
        text += block
    cte = cte_of(part)
    data, new_cte = encode_payload(text, codec, cte)
    if new_cte != cte:
        # Deleted and added, so the header moves to the end of the part's header block.
        del part["content-transfer-encoding"]
        part["Content-Transfer-Encoding"] = new_cte
    part.set_payload(data.decode("ascii", "surrogateescape"))
