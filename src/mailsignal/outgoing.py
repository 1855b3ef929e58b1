"""Outgoing mail as a service: register an email and instrument one copy per recipient.

The one place where policy (org switch, sender opt-in, recipient do-not-track), the
store (email, deliveries, links, attachments) and the pure instrumenter meet. `Outgoing`
is built once from settings where its caller lives (the REST app, `emails instrument`,
`import emails`, the relay, the demo) and holds what stays the same from one message to
the next: the tracking URLs (signer and base URL, urls.py), the honeypot switch and the
attachment policy with the directory its files go to. So every path tracks mail the same
way, `attachments_mode` included, and a caller hands over a message and its recipients.
A sender's Message-ID makes one email, whichever edge tracks it and however often: a
message that comes again gets that email's copies back (`TrackedEmail.replayed`).

What a caller gives is checked here, where every edge passes (`build_message`, `track`),
so every edge refuses it alike, naming the field: header fields with a line break or
control character (no header injection), text that is not Unicode or holds NUL, a send
time outside EARLIEST_SENT-LATEST_SENT. Labels taken from a message given whole (its
subject, a file name) are made storable instead: the message itself goes as it came.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import Connection

from . import instrument
from .addresses import names_in, normalise_address, to_and_cc
from .basis import Basis, Rule, basis_for, parse_rules
from .engagement import Weights, weights_of
from .errors import InputError, MimeError, NotFoundError
from .instrument import AttachmentLink, find_attachments, replace_attachments
from .instrument.copies import TrackedCopy as TrackedCopy
from .instrument.notice import CONSENT_LINES
from .model import TrackingDecision, new_id
from .settings import Settings
from .store import consent, donottrack, parties, relink, sent, users
from .store.files import AttachmentFiles, AttachmentMeta
from .store.sent import attachment_meta, storable
from .tokens import Signer
from .urls import TrackingUrls

# Send times outside these are typing errors (year 1, year 9999), and near datetime's own
# ends adding a time zone or a classification window overflows.
EARLIEST_SENT, LATEST_SENT = datetime(1970, 1, 1), datetime(2100, 1, 1)  # UTC
SUBJECT_MAX = 800  # the email.subject column
MESSAGE_ID_MAX = 998  # RFC 5322's line limit, and the email.messageid column
# What may not stand in one header line: controls but tab (CR and LF above all) and the
# characters Python's str.splitlines() also breaks on (NEL, LS, PS).
_NOT_A_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class TrackedEmail:
    activity_id: uuid.UUID
    message_id: str
    copies: list[TrackedCopy]
    # The email's `emailtrackingid`: the relay writes it into each tracked copy's
    # X-MailSignal-Id, so replies and bounces that lost In-Reply-To still find the email.
    tracking_id: uuid.UUID
    # The sender had recorded this Message-ID before: these are that email's copies.
    replayed: bool = False


def check_time(value: datetime, field: str = "sent_at") -> datetime:
    """`value` when it is aware and in [EARLIEST_SENT, LATEST_SENT); InputError otherwise."""
    offset = value.utcoffset()
    if offset is None:
        raise InputError(f"{field}: give a time zone offset (for example 2026-11-27T09:00:00Z)")
    # Compared in the value's own zone: astimezone() overflows at year 1 or 9999 itself.
    if not EARLIEST_SENT + offset <= value.replace(tzinfo=None) < LATEST_SENT + offset:
        raise InputError(
            f"{field}: {value.isoformat()} is outside the accepted range "
            f"{EARLIEST_SENT:%Y-%m-%d} to {LATEST_SENT:%Y-%m-%d} (UTC)"
        )
    return value


def _text(field: str, value: object, *, line: bool = False) -> str:
    """`value` if it is Unicode text without NUL (and, for a header `line`, without line
    breaks or other control characters); InputError naming `field` otherwise."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{field}: not Unicode text (a lone surrogate at position {exc.start})"
        ) from exc
    if line and _NOT_A_LINE.search(value):
        raise InputError(f"{field}: must be one line without control characters")
    if "\x00" in value:
        raise InputError(f"{field}: contains a NUL character")
    return value


def check_message_id(value: str, field: str = "message_id") -> str:
    """`value` stripped, when it can head a message and be stored as its Message-ID."""
    value = _text(field, value, line=True).strip()
    if len(value) > MESSAGE_ID_MAX:
        raise InputError(f"{field}: at most {MESSAGE_ID_MAX} characters")
    return value


def build_message(
    sender: str,
    recipients: list[str],
    subject: str | None,
    html: str | None,
    text: str | None,
    message_id: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """A standard multipart/alternative message from API fields (each checked first)."""
    if html is not None:
        _text("html", html)
    if text is not None:
        _text("text", text)
    if not html and not text:
        raise InputError("give at least one of html, text or mime")
    for field, address in [("sender", sender)] + [("recipients", r) for r in recipients]:
        _text(field, address, line=True)
        try:
            normalise_address(address)
        except InputError as exc:
            raise InputError(f"{field}: {exc.message}") from exc
    if subject is not None and len(_text("subject", subject, line=True)) > SUBJECT_MAX:
        raise InputError(f"subject: at most {SUBJECT_MAX} characters")
    if message_id is not None:
        message_id = check_message_id(message_id)
    if sent_at is not None:
        check_time(sent_at)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    if subject:
        msg["Subject"] = subject
    msg["Date"] = formatdate((sent_at or datetime.now(UTC)).timestamp(), usegmt=True)
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    if text:
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
    elif html:
        msg.set_content(html, subtype="html")
    return msg


def recipients_of(msg: EmailMessage) -> list[str]:
    return [addr for _name, addr in to_and_cc(msg) if addr]


class Outgoing:
    """Tracks outgoing email: built once (see the module docstring), used for every message.

    With `attachments` (its policy not "off"), the attachments the policy selects are
    kept as files and replaced in each tracked copy by per-recipient download links;
    untracked copies keep them. With `notice`, each tracked copy ends with the
    stop-tracking line (instrument/notice.py) linking the recipient's own page. `basis`
    (the default and the domain rules, basis.py) picks each recipient's tracking basis:
    under consent the line is always on, and with `ask` a copy left untracked for want of
    consent ends with the consent request line (the recipient's consent page instead).
    """

    __slots__ = (
        "ask",
        "attachments",
        "auto_create",
        "basis",
        "honeypot",
        "notice",
        "signer",
        "urls",
    )

    def __init__(
        self,
        signer: Signer,
        base_url: str,
        *,
        honeypot: bool = False,
        attachments: AttachmentFiles | None = None,
        auto_create: Weights | None = None,
        notice: bool = True,
        basis: tuple[Basis, tuple[Rule, ...]] = ("legitimate_interests", ()),
        ask: bool = True,
    ) -> None:
        self.urls, self.signer, self.notice = TrackingUrls(signer, base_url), signer, notice
        self.basis, self.ask = basis, ask
        self.honeypot = honeypot
        self.auto_create = auto_create  # score weights when unknown recipients become contacts
        self.attachments = (
            attachments if attachments is not None and attachments.policy.mode != "off" else None
        )

    @classmethod
    def from_settings(cls, settings: Settings, signer: Signer) -> Outgoing:
        """`base_url`, `honeypot`, `attachments_mode`, `attachments_min_bytes`, `attachment_dir`."""
        return cls(
            signer,
            settings.base_url,
            honeypot=settings.honeypot,
            attachments=AttachmentFiles.from_settings(settings),
            auto_create=weights_of(settings) if settings.auto_create_contacts else None,
            notice=settings.tracking_notice_line,
            basis=(settings.tracking_basis, parse_rules(settings.tracking_basis_rules)),
            ask=settings.consent_request_line,
        )

    def track(
        self,
        conn: Connection,
        msg: EmailMessage | instrument.Prepared,
        *,
        sender: str,
        recipients: list[str],
        sent_at: datetime | None = None,
    ) -> TrackedEmail:
        """Store the email and return each recipient's (instrumented or untouched) copy.

        `msg` is copied first, so the caller's message stays as given; a caller that
        hands over a message of its own can pass `instrument.prepare(msg)` instead (the
        relay scans the message before it takes the database lock), used as it is.
        """
        if not recipients:
            raise InputError("no recipients")
        if sent_at is not None:
            check_time(sent_at)
        user = users.by_address(conn, sender)
        if user is None:
            raise NotFoundError(f"unknown sender {sender}: add them with `mailsignal users add`")
        if user["isdisabled"]:
            raise InputError(f"sender {sender} is disabled")
        org = users.get_org(conn)
        prepared: instrument.Prepared | None = None
        if isinstance(msg, instrument.Prepared):
            prepared, mail = msg, msg.msg
        else:
            mail = copy.deepcopy(msg)  # the caller's message stays as given
        if mail.get("Message-ID") is None:
            mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        try:
            message_id = check_message_id(str(mail["Message-ID"]), "Message-ID")
        except InputError as exc:  # the message's own header: a message we cannot take
            raise MimeError(exc.message) from exc
        normalised = list(dict.fromkeys(normalise_address(r) for r in recipients))

        found = parties.find_many(conn, normalised)
        if self.auto_create is not None:  # setting auto_create_contacts
            found |= relink.add_missing(conn, normalised, found, names_in(mail), self.auto_create)
        listed = donottrack.listed_among(conn, normalised, self.signer.address_hash)
        bases = {a: basis_for(a, *self.basis) for a in normalised}  # issue 13
        asking = [a for a in normalised if bases[a] == "consent"]
        consented = consent.consented_among(conn, asking, self.signer.address_hash)
        decisions: list[tuple[str, TrackingDecision, tuple[str, uuid.UUID, bool] | None]] = []
        for address in normalised:
            party = found.get(address)
            decision = instrument.decide(
                bool(org["isemailmonitoringallowed"]),
                bool(user["emailengagementoptin"]),
                party[2] if party else True,
                address in listed,  # the recipient's own stop-tracking choice (issue 13)
                basis=bases[address],
                consented=address in consented,
            )
            decisions.append((address, decision, party))
        regarding = next((p for _a, _d, p in decisions if p is not None), None)
        any_tracked = any(d.tracked for _a, d, _p in decisions)

        # Made here rather than by the column default, so no caller reads it back.
        tracking_id = new_id()
        activity_id, inserted = sent.insert_email_once(
            conn,
            {
                "activityid": new_id(),
                "emailtrackingid": tracking_id,
                "subject": storable(str(mail.get("Subject", "")))[:SUBJECT_MAX] or None,
                "senton": sent_at or datetime.now(UTC),
                "sender": normalise_address(sender),
                "torecipients": ";".join(normalised)[:10000],
                "ownerid": user["systemuserid"],
                "messageid": message_id,
                "regardingobjectid": regarding[1] if regarding else None,
                "regardingobjecttypecode": regarding[0] if regarding else None,
                "isemailfollowed": any_tracked,
                "followemailuserpreference": bool(user["emailengagementoptin"]),
            },
        )
        if prepared is None:
            prepared = instrument.prepare(mail)
        if not inserted:
            return self._again(conn, activity_id, message_id, prepared, decisions)
        links = prepared.links
        positions = sent.insert_links(conn, activity_id, [(link.url, link.text) for link in links])
        link_ids = {links[position].url: link_id for position, link_id in positions.items()}
        honeypot_link: int | None = None
        if self.honeypot and any_tracked:
            honeypot_link = sent.insert_honeypot(conn, activity_id, len(links))
        files: dict[int, tuple[int, AttachmentMeta]] = {}
        if self.attachments is not None and any_tracked:
            files = sent.store_attachments(conn, self.attachments, mail, activity_id)
        delivery_ids = sent.insert_decided(conn, activity_id, decisions)
        copies = [
            self._copy(
                prepared, address, delivery_ids[address], decision, link_ids, honeypot_link, files
            )
            for address, decision, _party in decisions
        ]
        return TrackedEmail(activity_id, message_id, copies, tracking_id)

    def _again(
        self,
        conn: Connection,
        activity_id: uuid.UUID,
        message_id: str,
        prepared: instrument.Prepared,
        decisions: list[tuple[str, TrackingDecision, tuple[str, uuid.UUID, bool] | None]],
    ) -> TrackedEmail:
        """The copies of the email this sender recorded with this Message-ID before: its
        deliveries, decisions and link ids, so the same tracking URLs (a recipient new to
        it, as when a client sends each Bcc apart, gets a delivery of its own). A message
        whose links or attachments differ is not the same message: refused."""
        old = sent.recorded(conn, activity_id)
        if [url for _id, url in old.links] != [link.url for link in prepared.links]:
            raise InputError(
                f"Message-ID {message_id} was recorded before for a message with other "
                "links: give this message a Message-ID of its own"
            )
        files: dict[int, tuple[int, AttachmentMeta]] = {}
        if old.attachments and self.attachments is not None:
            found = list(find_attachments(prepared.msg, self.attachments.policy))
            if [f.sha256 for f in found] != [digest for _id, digest in old.attachments]:
                raise InputError(
                    f"Message-ID {message_id} was recorded before for a message with other "
                    "attachments: give this message a Message-ID of its own"
                )
            files = {
                f.index: (attachment_id, attachment_meta(f))
                for f, (attachment_id, _digest) in zip(found, old.attachments, strict=True)
            }
        known = {a: TrackingDecision(t, r) for a, (_id, t, r) in old.deliveries.items()}
        ids = {address: delivery_id for address, (delivery_id, _t, _r) in old.deliveries.items()}
        ids |= sent.insert_decided(conn, activity_id, [x for x in decisions if x[0] not in ids])
        link_ids = {url: link_id for link_id, url in old.links}
        copies = [
            self._copy(prepared, a, ids[a], known.get(a, d), link_ids, old.honeypot, files)
            for a, d, _party in decisions
        ]
        return TrackedEmail(activity_id, message_id, copies, old.tracking_id, replayed=True)

    def _copy(
        self,
        prepared: instrument.Prepared,
        address: str,
        delivery_id: int,
        decision: TrackingDecision,
        link_ids: dict[str, int],
        honeypot_link: int | None,
        files: dict[int, tuple[int, AttachmentMeta]],
    ) -> TrackedCopy:
        """One recipient's copy: instrumented when tracked, the message as it is if not
        (with the consent request line, when only consent is missing and `ask`)."""
        urls = self.urls
        if not decision.tracked:
            if not self.ask or decision.reasons != ("recipient.no_consent",):
                return TrackedCopy(address, delivery_id, decision, prepared.msg)
            request = prepared.render(None, None, None, urls.consent(delivery_id), CONSENT_LINES)
            return TrackedCopy(address, delivery_id, decision, request)

        def rewrite(url: str) -> str:
            return urls.click(delivery_id, link_ids[url], url)

        trap = None if honeypot_link is None else urls.honeypot(delivery_id, honeypot_link)
        always = basis_for(address, *self.basis) == "consent"  # the withdrawal link: always
        stop = urls.stop(delivery_id) if self.notice or always else None
        rendered = prepared.render(rewrite, urls.pixel(delivery_id), trap, stop)
        if not files:
            return TrackedCopy(address, delivery_id, decision, rendered)
        # After instrumenting, so the download links are not rewritten into click links.
        links = {
            i: AttachmentLink(urls.download(delivery_id, a_id), meta.filename, meta.size)
            for i, (a_id, meta) in files.items()
        }
        message = replace_attachments(rendered.message(), links, in_place=True)
        return TrackedCopy(address, delivery_id, decision, message)
