"""The panel's tables (issue 12): sign-in sessions, teams, and the roll-ups its charts
read. Part of the one schema (schema_base.metadata); schema.py re-exports them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Uuid,
)

from .schema_base import metadata, new_row_id, stamps
from .types import UtcDateTime

# A signed-in panel session: the cookie holds a random token, the store only its sha256,
# so a copy of the database signs no one in. Ended by logout, idle or absolute expiry,
# a password change or the user being disabled.
panelsession = Table(
    "panelsession",
    metadata,
    Column("sessionhash", String(64), primary_key=True),
    Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), nullable=False),
    Column("csrftoken", String(64), nullable=False),
    Column("createdon", UtcDateTime, nullable=False),
    Column("lastseenon", UtcDateTime, nullable=False),
    Index("ix_panelsession_systemuserid", "systemuserid"),
)

# Teams as Dataverse has them (`team`, `teammembership`), with MailSignal's manager: a
# manager reads the emails of their teams' members (fetchxml/access.py).
team = Table(
    "team",
    metadata,
    Column("teamid", Uuid, primary_key=True, default=new_row_id),
    Column("name", String(160), nullable=False, unique=True),
    Column("administratorid", Uuid, ForeignKey("systemuser.systemuserid")),
    *stamps(),
)
teammembership = Table(
    "teammembership",
    metadata,
    Column("teamid", Uuid, ForeignKey("team.teamid"), primary_key=True),
    Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), primary_key=True),
    Index("ix_teammembership_systemuserid", "systemuserid"),
)

# The panel's charts read a month of a viewer's mail here instead of counting millions
# of events (issue 12). Kept by pipeline/tally.py in the events' transaction, by delta;
# filled by migration 0012. Rows under `rollups.EVERYONE` (the nil UUID) hold the sum
# over every owner, which an admin reads. No personal data; like the counters, they
# keep their values when events go.
#
# Events per owner, hour (UTC) and verdict: a day in any time zone is a sum of hours.
engagementhour = Table(
    "engagementhour",
    metadata,
    Column("ownerid", Uuid, primary_key=True),
    Column("hourstart", UtcDateTime, primary_key=True),
    Column("verdict", String(16), primary_key=True),
    Column("events", Integer, nullable=False, server_default="0"),
)

# Events by people and by machines on the copies sent each day (UTC), per owner and
# recipient mail environment ("" when none seen yet; environments.py).
environmentday = Table(
    "environmentday",
    metadata,
    Column("ownerid", Uuid, primary_key=True),
    Column("sentday", Date, primary_key=True),
    Column("environment", String(32), primary_key=True),
    Column("personevents", Integer, nullable=False, server_default="0"),
    Column("machineevents", Integer, nullable=False, server_default="0"),
)
