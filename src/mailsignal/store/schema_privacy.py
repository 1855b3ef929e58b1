"""The privacy tables (issue 13): audit trail, do-not-track list and form nonces, consent
records, dropped-hit counts, what retention-deleted events still count for, and the
aggregate open pixels. Part of
the one schema (schema_base.metadata); schema.py re-exports them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
)

from .schema_base import metadata, utcnow
from .types import UtcDateTime

# The audit trail (issue 13, store/audit.py): one row per admin or privacy action, never
# changed or deleted (migration 0014 adds triggers that refuse UPDATE and DELETE). The
# actor is "cli", "user:<systemuserid>", "recipient" or "system"; a recipient is named
# only by a keyed hash of their address, never in clear.
auditrecord = Table(
    "auditrecord",
    metadata,
    Column("auditid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("occurredon", UtcDateTime, nullable=False, default=utcnow),
    Column("action", String(64), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("subject", String(200)),
    Column("details", JSON, nullable=False, default=dict),
    Index("ix_auditrecord_occurredon", "occurredon"),
    Index("ix_auditrecord_action_occurredon", "action", "occurredon"),
)

# Recipients who stopped tracking (issue 13, store/donottrack.py, migration 0013): a keyed
# hash of the normalised address (tokens.Signer.address_hash), never the address, so the
# choice covers addresses no party has yet and outlives an erasure. `source`: link, api, cli.
donottrack = Table(
    "donottrack",
    metadata,
    Column("addresshash", String(64), primary_key=True),
    Column("createdon", UtcDateTime, nullable=False, default=utcnow),
    Column("source", String(16), nullable=False),
)
# The stop-tracking page's form nonces once used (single use; pruned after expiry).
stoptrackingnonce = Table(
    "stoptrackingnonce",
    metadata,
    Column("nonce", String(32), primary_key=True),
    Column("usedon", UtcDateTime, nullable=False, index=True),
)
# Recipients' consents to tracking (issue 13, store/consent.py, migration 0016): proof of
# consent under the keyed address hash, never the address. Rows are only appended; a
# withdrawal fills `withdrawnon` of the open ones, so the history stays.
consentrecord = Table(
    "consentrecord",
    metadata,
    Column("consentid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("addresshash", String(64), nullable=False),
    Column("givenon", UtcDateTime, nullable=False),
    Column("source", String(16), nullable=False),  # api, cli, import, link
    Column("textid", String(80)),  # the operator's version id of the text, if any
    Column("texthash", String(64), nullable=False),  # sha256 hex of consenttext
    Column("consenttext", Text, nullable=False),
    Column("language", String(16)),
    Column("recordedon", UtcDateTime, nullable=False, default=utcnow),
    Column("withdrawnon", UtcDateTime),
    Column("withdrawnsource", String(16)),
    Index("ix_consentrecord_addresshash", "addresshash", "givenon"),
)
# Hits answered but not stored (do-not-track, org switch off), per UTC day and reason.
droppedhits = Table(
    "droppedhits",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("reason", String(40), primary_key=True),
    Column("hits", BigInteger, nullable=False, server_default="0"),
)

# What events deleted by retention (issue 13, store/retention.py) still count for: per
# recipient copy, kind and verdict, how many there were, the latest, and their score
# points folded to one time (`decaysum` events' worth at `lastscoredon`, under the
# half-life `halflifedays`). `classify --recompute`, `score --recompute` and every rebuild
# of counters and scores add these rows to the stored events (pipeline/tally.recount,
# store/rescore.py), so deleting events never takes back what they counted. No personal
# data beyond the copy's id (migration 0015).
retainedtally = Table(
    "retainedtally",
    metadata,
    Column(
        "deliveryid",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("emaildelivery.deliveryid"),
        primary_key=True,
    ),
    Column("interactiontype", Integer, primary_key=True),
    Column("verdict", String(16), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False),
    Column("eventcount", Integer, nullable=False),
    Column("lasteventon", UtcDateTime, nullable=False),
    Column("lastscoredon", UtcDateTime, nullable=False),
    Column("decaysum", Float, nullable=False),
    Column("halflifedays", Float, nullable=False),
    Column("updatedon", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_retainedtally_email", "emailactivityid"),
)

# The aggregate open measure (issue 13, store/aggregate.py, migration 0017): one pixel per
# email, carried by every copy left untracked for want of consent (setting
# aggregate_opens). Its token names `pixelid` only, so a hit says which email was opened,
# never by whom; ingest adds one to `opencount` and keeps nothing else of the request.
aggregatepixel = Table(
    "aggregatepixel",
    metadata,
    Column("pixelid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("emailactivityid", Uuid, ForeignKey("email.activityid"), nullable=False, unique=True),
    Column("opencount", BigInteger, nullable=False, server_default="0"),
)
