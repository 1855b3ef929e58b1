"""aggregate open pixels: opens counted per email, never per recipient

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 12:30:00.000000

Under the `consent` tracking basis a recipient without a recorded consent gets an
untracked copy (issue 13). The CNIL exempts aggregate, non-identifying open-rate
measurement, so with the setting `aggregate_opens` such a copy carries one pixel that
names the email only: `aggregatepixel.pixelid`, shared by every such copy of the email.
Ingest adds one to `opencount` per hit and stores nothing else of the request (no event,
address, user agent or time), so the table holds no personal data and the count cannot be
split by recipient, nor filtered for machines. Nothing to fill: no such pixel was sent
before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aggregatepixel",
        sa.Column("pixelid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("emailactivityid", sa.Uuid(), nullable=False),
        sa.Column("opencount", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["emailactivityid"],
            ["email.activityid"],
            name=op.f("fk_aggregatepixel_emailactivityid_email"),
        ),
        sa.PrimaryKeyConstraint("pixelid", name=op.f("pk_aggregatepixel")),
        sa.UniqueConstraint("emailactivityid", name=op.f("uq_aggregatepixel_emailactivityid")),
    )


def downgrade() -> None:
    op.drop_table("aggregatepixel")
