"""recipients' do-not-track list and stop-tracking link

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 11:00:00.000000

A recipient who follows the stop-tracking link in a tracked copy (issue 13) must stay
untracked whether or not a contact or lead holds their address, and after an erasure:
`donottrack` keeps the choice under a keyed hash of the address (HMAC under a key
derived from the instance keyring), never the address itself, with when and how it was
made (link, api, cli).

The page's POST is CSRF-safe without a session through a signed form token that may be
used once: `stoptrackingnonce` holds the nonces already used, until they expire.

Hits on mail already sent to such an address (or sent while the org switch is now off)
are answered by the tracker and dropped at ingest; `droppedhits` counts them per UTC day
and reason, so an operator sees how many (no personal data in it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailsignal.store import schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "donottrack",
        sa.Column("addresshash", sa.String(length=64), nullable=False),
        sa.Column("createdon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("addresshash", name=op.f("pk_donottrack")),
    )
    op.create_table(
        "stoptrackingnonce",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("usedon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_stoptrackingnonce")),
    )
    op.create_index(
        op.f("ix_stoptrackingnonce_usedon"), "stoptrackingnonce", ["usedon"], unique=False
    )
    op.create_table(
        "droppedhits",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("hits", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", "reason", name=op.f("pk_droppedhits")),
    )


def downgrade() -> None:
    op.drop_table("droppedhits")
    op.drop_index(op.f("ix_stoptrackingnonce_usedon"), table_name="stoptrackingnonce")
    op.drop_table("stoptrackingnonce")
    op.drop_table("donottrack")
