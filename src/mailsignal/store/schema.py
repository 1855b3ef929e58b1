"""The physical schema: SQLAlchemy Core tables named after Dataverse's logical model.

Tables and columns that Dynamics users query (email, contact, lead, account, systemuser,
usersettings, organization, interactionforemail) keep Dataverse's logical names so the
FetchXML compiler maps them one to one; MailSignal's own columns are plain additions
(`humanopencount`, `verdict`, ...). Tables that Dataverse has no equivalent for
(`emaildelivery`, `trackedlink`, `apikey`, `ingestcursor`) use MailSignal names.

Every datetime is stored as UTC and read back timezone-aware (see `UtcDateTime`).
Alembic migrations under `migrations/` are generated from this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    true,
)

from .schema_base import NAMING as NAMING
from .schema_base import metadata as metadata
from .schema_base import new_row_id as _new_id
from .schema_base import stamps as _stamps
from .schema_base import utcnow as utcnow

# The panel's tables and the privacy tables live beside this module, on the same
# metadata; named here too, so every table is `schema.<name>`.
from .schema_panel import engagementhour as engagementhour
from .schema_panel import environmentday as environmentday
from .schema_panel import panelsession as panelsession
from .schema_panel import team as team
from .schema_panel import teammembership as teammembership
from .schema_privacy import aggregatepixel as aggregatepixel
from .schema_privacy import auditrecord as auditrecord
from .schema_privacy import consentrecord as consentrecord
from .schema_privacy import donottrack as donottrack
from .schema_privacy import droppedhits as droppedhits
from .schema_privacy import retainedtally as retainedtally
from .schema_privacy import stoptrackingnonce as stoptrackingnonce
from .types import UtcDateTime as UtcDateTime  # migrations name it schema.UtcDateTime

organization = Table(
    "organization",
    metadata,
    Column("organizationid", Uuid, primary_key=True, default=_new_id),
    Column("name", String(160), nullable=False),
    Column("isemailmonitoringallowed", Boolean, nullable=False, server_default=true()),
    *_stamps(),
)

systemuser = Table(
    "systemuser",
    metadata,
    Column("systemuserid", Uuid, primary_key=True, default=_new_id),
    Column("fullname", String(200), nullable=False),
    Column("internalemailaddress", String(320), nullable=False, unique=True),
    # MailSignal: "rep" sees own emails only; "admin" sees all.
    Column("accessrole", String(16), nullable=False, server_default="rep"),
    Column("isdisabled", Boolean, nullable=False, server_default=false()),
    *_stamps(),
)

# The panel's sign-in (issue 12): an argon2id hash (passwords.py), null = no password.
systemuser.append_column(Column("passwordhash", String(255)))

usersettings = Table(
    "usersettings",
    metadata,
    Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), primary_key=True),
    # MailSignal's personal opt-in (Dataverse has none; `allowemailcredentials` is its alias).
    Column("emailengagementoptin", Boolean, nullable=False, server_default=false()),
    Column("timezonecode", Integer, nullable=False, server_default="92"),
    Column("timezonename", String(64), nullable=False, server_default="UTC"),
    Column("modifiedon", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)


def _party(name: str, key: str, title: str) -> Table:
    return Table(
        name,
        metadata,
        Column(key, Uuid, primary_key=True, default=_new_id),
        Column(title, String(200)),  # null when unnamed, as in Dataverse
        Column("emailaddress1", String(320), index=True),
        Column("followemail", Boolean, nullable=False, server_default=true()),
        Column("engagementscore", Float, nullable=False, server_default="0"),
        Column("engagementscoreupdatedon", UtcDateTime),
        # Roll-ups of the trustworthy signal (MailSignal): counts of human events only.
        Column("emailsfollowedcount", Integer, nullable=False, server_default="0"),
        Column("humanopencount", Integer, nullable=False, server_default="0"),
        Column("humanclickcount", Integer, nullable=False, server_default="0"),
        Column("replycount", Integer, nullable=False, server_default="0"),
        Column("humandownloadcount", Integer, nullable=False, server_default="0"),
        Column("lasthumanengagementon", UtcDateTime),
        *_stamps(),
    )


account = _party("account", "accountid", "name")
contact = _party("contact", "contactid", "fullname")
contact.append_column(Column("parentcustomerid", Uuid, ForeignKey("account.accountid")))
# An account's score reads its contacts' events: find them by parent without a scan.
Index("ix_contact_parentcustomerid", contact.c.parentcustomerid)
lead = _party("lead", "leadid", "fullname")
lead.append_column(Column("companyname", String(200)))
# Parties are found by address whatever its case (outgoing.track, for every message the
# relay takes; parties.find_many): lower(emailaddress1) indexed, not scanned (migration 0006).
for _t in (account, contact, lead):
    Index(f"ix_{_t.name}_emailaddress1_lower", func.lower(_t.c.emailaddress1))

email = Table(
    "email",
    metadata,
    Column("activityid", Uuid, primary_key=True, default=_new_id),
    Column("subject", String(800)),  # null when the message has none, as in Dataverse
    Column("directioncode", Boolean, nullable=False, server_default=true()),
    Column("senton", UtcDateTime, index=True),
    Column("statecode", Integer, nullable=False, server_default="1"),
    Column("statuscode", Integer, nullable=False, server_default="3"),
    Column("sender", String(320), nullable=False),
    Column("torecipients", Text, nullable=False, server_default=""),
    Column("regardingobjectid", Uuid),
    Column("regardingobjecttypecode", String(16)),
    Column("ownerid", Uuid, ForeignKey("systemuser.systemuserid"), nullable=False, index=True),
    Column("messageid", String(998), index=True),
    # X-MailSignal-Id on every tracked copy; reply sync looks emails up by it (0006).
    Column("emailtrackingid", Uuid, nullable=False, default=_new_id, index=True),
    Column("conversationtrackingid", Uuid, nullable=False, default=_new_id),
    Column("isemailfollowed", Boolean, nullable=False, server_default=false()),
    Column("followemailuserpreference", Boolean, nullable=False, server_default=false()),
    # Raw counters, as in Dynamics: every hit, whoever caused it.
    Column("opencount", Integer, nullable=False, server_default="0"),
    Column("lastopenedtime", UtcDateTime),
    Column("linksclickedcount", Integer, nullable=False, server_default="0"),
    Column("attachmentopencount", Integer, nullable=False, server_default="0"),
    Column("replycount", Integer, nullable=False, server_default="0"),
    # MailSignal's labelled twins.
    Column("humanopencount", Integer, nullable=False, server_default="0"),
    Column("humanlinksclickedcount", Integer, nullable=False, server_default="0"),
    Column("humanattachmentopencount", Integer, nullable=False, server_default="0"),
    Column("machineopencount", Integer, nullable=False, server_default="0"),
    Column("machinelinksclickedcount", Integer, nullable=False, server_default="0"),
    Column("forwardopencount", Integer, nullable=False, server_default="0"),
    Column("lasthumanopenedtime", UtcDateTime),
    Column("noiseflag", Boolean, nullable=False, server_default=false()),
    Column("engagementverdict", String(16), nullable=False, server_default="none"),
    *_stamps(),
    # "Engaged This Week" and its human twin (bench/views.py, migration 0004): a range on
    # the last-open time, the count bounds checked in the index, per rep and for everyone.
    Index("ix_email_lastopened", "lastopenedtime", "opencount", "directioncode"),
    # "My emails" in the panel: one owner's (or a team's) mail by send time (0011).
    Index("ix_email_owner_senton", "ownerid", "senton"),
    Index("ix_email_lasthumanopened", "lasthumanopenedtime", "humanopencount", "directioncode"),
    Index("ix_email_owner_lastopened", "ownerid", "lastopenedtime", "opencount", "directioncode"),
    Index(
        "ix_email_owner_lasthumanopened",
        "ownerid",
        "lasthumanopenedtime",
        "humanopencount",
        "directioncode",
    ),
)

emaildelivery = Table(
    "emaildelivery",
    metadata,
    Column("deliveryid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
    Column("emailaddress", String(320), nullable=False),
    Column("recipientobjectid", Uuid),
    Column("recipientobjecttypecode", String(16)),
    Column("tracked", Boolean, nullable=False),
    Column("untrackedreasons", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, server_default="sent"),
    Column("createdon", UtcDateTime, nullable=False, default=utcnow),
    # The copy's events by people (human, forward) and by machines, and the recipient's
    # mail environment (environments.py): the panel's machine-share chart sums these
    # over a viewer's mail (pipeline/tally.py keeps them, migration 0012).
    Column("personevents", Integer, nullable=False, server_default="0"),
    Column("machineevents", Integer, nullable=False, server_default="0"),
    Column("mailenvironment", String(32)),
    UniqueConstraint("emailactivityid", "emailaddress"),
    # A party's deliveries (store/scores.py reads them for every score update).
    Index("ix_emaildelivery_recipient", "recipientobjectid", "recipientobjecttypecode"),
    # Mail already sent to an address, re-linked when a party takes it (store/relink.py,
    # migration 0007); addresses are stored lower-cased, so this serves any case.
    Index("ix_emaildelivery_emailaddress", "emailaddress"),
)

# One email per sender and Message-ID (outgoing.track, issue 11): a message that comes
# again is the email it made the first time. The key is sha256(sender NUL Message-ID)
# (store/sent.message_key): a Message-ID may be 998 characters, too long for an index
# entry. A table of its own, not a unique index on `email`, which a database holding
# duplicates from before could not take (migration 0008 keeps the first of each).
sentmessage = Table(
    "sentmessage",
    metadata,
    Column("messagekey", String(64), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
)

# `Idempotency-Key` of POST /api/v1/emails, per user (web/api.py): the request's hash, and
# the Message-ID and send time its email was given, so the same request again is the
# same email; a key older than web/api.IDEMPOTENCY_TTL (24 h) may be used afresh.
idempotencykey = Table(
    "idempotencykey",
    metadata,
    Column("ownerid", Uuid, ForeignKey("systemuser.systemuserid"), primary_key=True),
    Column("idempotencykey", String(255), primary_key=True),
    Column("requesthash", String(64), nullable=False),
    Column("messageid", String(998), nullable=False),
    Column("senton", UtcDateTime, nullable=False),
    Column("createdon", UtcDateTime, nullable=False),
)

trackedlink = Table(
    "trackedlink",
    metadata,
    Column("linkid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("text", String(200), nullable=False, server_default=""),
    Column("ishoneypot", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("emailactivityid", "position"),
)

trackedattachment = Table(
    "trackedattachment",
    metadata,
    Column("attachmentid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
    Column("filename", String(255), nullable=False, server_default=""),
    Column("contenttype", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    # Relative to the attachment directory setting; files are content-addressed by sha256.
    Column("storagepath", String(500), nullable=False),
    Column("createdon", UtcDateTime, nullable=False, default=utcnow),
)

mailbox = Table(
    "mailbox",
    metadata,
    # One IMAP mailbox per rep, read by `mailsignal sync-replies`.
    Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False, server_default="993"),
    Column("security", String(16), nullable=False, server_default="tls"),  # tls|starttls|none
    Column("username", String(320), nullable=False),
    # Encrypted with a key derived from the instance keyring; never logged.
    Column("secret", Text, nullable=False),
    Column("folders", JSON, nullable=False, default=lambda: ["INBOX"]),
    # Per folder: {"uidvalidity": int, "lastuid": int}, so each message is read once.
    Column("syncstate", JSON, nullable=False, default=dict),
    Column("lastsyncon", UtcDateTime),
    Column("lasterror", Text),
    *_stamps(),
)

interactionforemail = Table(
    "interactionforemail",
    metadata,
    Column("interactionforemailid", Uuid, primary_key=True, default=_new_id),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
    # The email's owner, copied at insert (store/events.insert): the panel's feed reads a
    # rep's newest events through (ownerid, emailinteractiontime) without visiting their
    # every email (migration 0011). Access is still the email's (fetchxml/access.py).
    Column("ownerid", Uuid),
    Column(
        "deliveryid",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("emaildelivery.deliveryid"),
        nullable=False,
    ),
    Column(
        "linkid", BigInteger().with_variant(Integer, "sqlite"), ForeignKey("trackedlink.linkid")
    ),
    Column(
        "attachmentid",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("trackedattachment.attachmentid"),
    ),
    # Replies: who replied and the reply's own Message-ID (Dataverse: interactionrepliedby).
    Column("interactionrepliedby", String(320)),
    Column("replymessageid", String(998)),
    Column("interactiontype", Integer, nullable=False),
    Column("emailinteractiontime", UtcDateTime, nullable=False),
    Column("interactionlocation", String(200)),
    Column("interactionuseragent", Text, nullable=False, server_default=""),
    Column("interactedcomponenttext", Text),
    Column("emailaddress", String(320), nullable=False),
    Column("ipaddress", String(45), nullable=False, server_default=""),
    Column("httpmethod", String(8), nullable=False, server_default="GET"),
    Column("ishoneypot", Boolean, nullable=False, server_default=false()),
    Column("headers", JSON, nullable=False, default=dict),
    Column("facts", JSON, nullable=False, default=dict),
    Column("verdict", String(16), nullable=False, server_default="unknown"),
    Column("confidence", Float, nullable=False, server_default="0"),
    Column("reasons", JSON, nullable=False, default=list),
    Column("classifierversion", String(32), nullable=False, server_default=""),
    Column("hitid", String(80), nullable=False, unique=True),
    Column("externalid", String(200), unique=True),
    Column("statecode", Integer, nullable=False, server_default="0"),
    Column("createdon", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_interactionforemail_delivery_time", "deliveryid", "emailinteractiontime"),
    Index("ix_interactionforemail_email", "emailactivityid"),
    # The panel's activity feed: the newest events first, without sorting them all.
    Index("ix_interactionforemail_time", "emailinteractiontime"),
    Index("ix_interactionforemail_owner_time", "ownerid", "emailinteractiontime"),
)

apikey = Table(
    "apikey",
    metadata,
    Column("apikeyid", Uuid, primary_key=True, default=_new_id),
    Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), nullable=False),
    Column("name", String(100), nullable=False, server_default=""),
    # The key is "ms_<prefix>_<secret>"; only the SHA-256 of the whole key is kept.
    Column("prefix", String(16), nullable=False, unique=True),
    Column("keyhash", String(64), nullable=False),
    Column("createdon", UtcDateTime, nullable=False, default=utcnow),
    Column("lastusedon", UtcDateTime),
    Column("revokedon", UtcDateTime),
)

ingestcursor = Table(
    "ingestcursor",
    metadata,
    Column("journalid", String(64), primary_key=True),
    Column("lastseq", BigInteger, nullable=False),
    Column("updatedon", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)
