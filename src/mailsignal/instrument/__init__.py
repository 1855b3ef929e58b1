"""Instrument outgoing mail: decide, rewrite links, add the pixel, replace attachments.

Pure logic (no I/O, no framework): a message and the URLs to write in, a copy out.

Why splicing: mail HTML is written for a dozen rendering engines at once (Outlook's Word
engine reads VML inside `<!--[if mso]>` comments, Gmail strips `<style>` it cannot parse,
Apple Mail honours `-webkit-` quirks). Parsing it into a tree and serialising it again
would normalise quoting, case, whitespace and comments and break exactly those hacks. So
the stdlib `HTMLParser` is used only to *locate* things, and the new URLs are spliced
into the original text: every other byte of the document is left as it was. Conditional
comments are parsed again with the same parser so their VML buttons are rewritten too.

    mime.py         parse a message; find, decode and re-encode its body parts
    nesting.py      refuse a message nested too deep, before anything parses it
    html.py         find and splice the links of one HTML document; pixel, honeypot
    prepare.py      decide; scan a message once (`prepare`), render each copy
    attachments.py  replace attachments by download links
    notice.py       the stop-tracking line each tracked copy ends with, in its language,
                    and the consent request line (the consent basis's untracked copies)
    copies.py       one recipient's copy as outgoing returns it (TrackedCopy)

The URLs written in are not made here: urls.py formats them, per recipient, for outgoing.
"""

from __future__ import annotations

from .attachments import (
    AttachmentLink,
    AttachmentPolicy,
    FoundAttachment,
    find_attachments,
    human_size,
    replace_attachments,
)
from .mime import parse_message
from .nesting import MAX_DEPTH
from .prepare import Copy, LinkRef, Prepared, decide, extract_links, instrument, prepare

__all__ = [
    "MAX_DEPTH",
    "AttachmentLink",
    "AttachmentPolicy",
    "Copy",
    "FoundAttachment",
    "LinkRef",
    "Prepared",
    "decide",
    "extract_links",
    "find_attachments",
    "human_size",
    "instrument",
    "parse_message",
    "prepare",
    "replace_attachments",
]
