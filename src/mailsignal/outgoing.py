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

What a caller gives is checked where every edge passes (`build_message`, `track`; the
checks are composing.py's), so every edge refuses it alike, naming the field. Labels
taken from a message given whole (its subject, a file name) are made storable instead:
the message itself goes as it came.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import Connection

from . import composing, instrument
from .addresses import names_in, normalise_address, to_and_cc
from .basis import Basis, Rule, basis_for, parse_rules
from .engagement import Weights, weights_of
from .errors import InputError, MimeError, NotFoundError
from .instrument import AttachmentLink, find_attachments, replace_attachments
from .instrument.copies import TrackedCopy as TrackedCopy
from .instrument.notice import CONSENT_LINES
from .model import TrackingDecision, new_id
from .settings import Settings
from .store import aggregate, consent, donottrack, parties, relink, sent, users
from .store.files import AttachmentFiles, AttachmentMeta
from .store.sent import attachment_meta, storable
from .tokens import Signer
from .urls import TrackingUrls

# What a caller gives is checked in composing.py; named here too, where edges look.
EARLIEST_SENT, LATEST_SENT = composing.EARLIEST_SENT, composing.LATEST_SENT
SUBJECT_MAX, MESSAGE_ID_MAX = composing.SUBJECT_MAX, composing.MESSAGE_ID_MAX
build_message, check_time = composing.build_message, composing.check_time
check_message_id = composing.check_message_id


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


def recipients_of(msg: EmailMessage) -> list[str]:
    return [addr for _name, addr in to_and_cc(msg) if addr]


class Outgoing:
    """Tracks outgoing email: built once (see the module docstring), used for every message.

    With `attachments` (its policy not "off"), the attachments the policy selects are
    kept as files and replaced in each tracked copy by per-recipient download links;
    untracked copies keep them. With `notice`, each tracked copy ends with the
    stop-tracking line (notice.py) linking the recipient's own page. `basis` picks each
    recipient's basis (basis.py): under consent that line is always on, and a copy
    untracked for want of consent gets the consent line (`ask`) and aggregate pixel (`aggregate`).
    """

    __slots__ = (
        "aggregate",
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
        aggregate: int = 0,  # copies lacking only consent an aggregate pixel needs; 0: none
    ) -> None:
        self.urls, self.signer, self.notice = TrackingUrls(signer, base_url), signer, notice
        self.basis, self.ask, self.aggregate = basis, ask, aggregate
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
            aggregate=settings.aggregate_opens_min_copies if settings.aggregate_opens else 0,
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
        pixel = self._pixel(conn, activity_id, [d for _a, d, _p in decisions])
        copies = [
            self._copy(prepared, a, delivery_ids[a], d, link_ids, honeypot_link, files, pixel)
            for a, d, _party in decisions
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
        pixel = self._pixel(conn, activity_id, [known.get(a, d) for a, d, _p in decisions])
        copies = [
            self._copy(prepared, a, ids[a], known.get(a, d), link_ids, old.honeypot, files, pixel)
            for a, d, _party in decisions
        ]
        return TrackedEmail(activity_id, message_id, copies, old.tracking_id, replayed=True)

    def _pixel(self, conn: Connection, email: uuid.UUID, ds: list[TrackingDecision]) -> str | None:
        """The email's aggregate pixel (issue 13): for copies lacking only consent, when at
        least `aggregate` do (fewer would name who opened) or the email has one already."""
        n = sum(d.reasons == (donottrack.NO_CONSENT,) for d in ds)
        if not (n and self.aggregate):
            return None
        if n < self.aggregate and aggregate.open_count(conn, email) is None:
            return None
        return self.urls.aggregate_pixel(aggregate.ensure(conn, email))

    def _copy(
        self,
        prepared: instrument.Prepared,
        address: str,
        delivery_id: int,
        decision: TrackingDecision,
        link_ids: dict[str, int],
        honeypot_link: int | None,
        files: dict[int, tuple[int, AttachmentMeta]],
        pixel: str | None = None,
    ) -> TrackedCopy:
        """One recipient's copy: instrumented when tracked, the message as it is if not;
        when only consent is missing, with the consent request line (`ask`) and `pixel`."""
        urls = self.urls
        if not decision.tracked:
            if decision.reasons != (donottrack.NO_CONSENT,) or not (self.ask or pixel):
                return TrackedCopy(address, delivery_id, decision, prepared.msg)
            request = urls.consent(delivery_id) if self.ask else None
            copy_ = prepared.render(None, pixel, None, request, CONSENT_LINES)
            return TrackedCopy(address, delivery_id, decision, copy_)

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
