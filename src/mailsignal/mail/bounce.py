"""RFC 3464 delivery status notifications for mail the relay could not deliver.

A bounce is a multipart/report (RFC 6522) with three parts: a sentence for the person,
the machine-readable message/delivery-status, and the original message's headers (not
its body: the sender has the body, and a bounce should not carry 30 MB back). It is
sent with the null reverse-path (RFC 5321 §4.5.5) so that it can never bounce in turn.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.utils import formatdate, make_msgid

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Failure:
    recipient: str
    reply: str  # the last server reply or the local reason, one line
    expired: bool = False  # gave up at the deadline rather than on a 5xx


def status_code(failure: Failure) -> str:
    """The RFC 3463 status for the report: the server's own, else a generic one."""
    if failure.expired:
        return "4.4.7"  # delivery time expired
    found = _ENHANCED.search(failure.reply)
    if found and found.group(1) == "5":
        return found.group(0)
    return "5.0.0"


def _headers_of(original: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = original.partition(sep)
        if found:
            return head
    return original[:65536]


def _ascii(text: str) -> str:
    return " ".join(text.encode("ascii", "replace").decode("ascii").split())


def build_bounce(
    *,
    original: bytes,
    sender: str,
    failures: list[Failure],
    reporting_mta: str,
    arrival: float,
    now: float,
) -> bytes:
    """The bytes of a bounce to `sender` (CRLF line endings), ready for the spool."""
    boundary = f"=_mailsignal_{uuid.uuid4().hex}"
    listed = "\r\n".join(f"  <{_ascii(f.recipient)}>: {_ascii(f.reply)}" for f in failures)
    expired = any(f.expired for f in failures)
    explanation = (
        "This is the MailSignal relay at "
        + reporting_mta
        + ".\r\n\r\nYour message could not be delivered to "
        + ("one or more recipients" if len(failures) > 1 else "this recipient")
        + (
            " before the retry deadline passed"
            if expired
            else ": the receiving side refused it permanently"
        )
        + ".\r\n\r\n"
        + listed
        + "\r\n"
    )
    per_message = f"Reporting-MTA: dns; {reporting_mta}\r\nArrival-Date: {formatdate(arrival)}\r\n"
    per_recipient = "".join(
        f"\r\nFinal-Recipient: rfc822; {_ascii(f.recipient)}\r\n"
        "Action: failed\r\n"
        f"Status: {status_code(f)}\r\n"
        f"Diagnostic-Code: smtp; {_ascii(f.reply)}\r\n"
        f"Last-Attempt-Date: {formatdate(now)}\r\n"
        for f in failures
    )
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\r\n"
        f"To: <{_ascii(sender)}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {formatdate(now)}\r\n"
        f"Message-ID: {make_msgid(domain=reporting_mta)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
    )
    parts = [
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + explanation,
        "Content-Type: message/delivery-status\r\n\r\n" + per_message + per_recipient,
        "Content-Type: text/rfc822-headers\r\n\r\n",
    ]
    body = b"".join(f"--{boundary}\r\n{p}\r\n".encode("ascii") for p in parts[:2])
    body += f"--{boundary}\r\n{parts[2]}".encode("ascii") + _headers_of(original) + b"\r\n"
    return head.encode("ascii") + body + f"\r\n--{boundary}--\r\n".encode("ascii")
