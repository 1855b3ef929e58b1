"""retention: what deleted events still count for

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 11:00:00.000000

Retention (issue 13) deletes a recipient copy's events once they are older than
`event_retention_days` / `reply_retention_days`. Email counters and party scores are
sums over events, and `classify --recompute`, `score --recompute` and every rebuild of a
counter or score sum the stored events again: without a record of what the deleted
events counted for, the next recompute would quietly drop them. `retainedtally` holds
that record per copy, kind and verdict (count, latest time, score points folded to one
time); the recompute paths add it in. Nothing to fill: no event has been deleted yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailsignal.store import schema

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retainedtally",
        sa.Column(
            "deliveryid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("interactiontype", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("emailactivityid", sa.Uuid(), nullable=False),
        sa.Column("eventcount", sa.Integer(), nullable=False),
        sa.Column("lasteventon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lastscoredon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decaysum", sa.Float(), nullable=False),
        sa.Column("halflifedays", sa.Float(), nullable=False),
        sa.Column("updatedon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deliveryid"],
            ["emaildelivery.deliveryid"],
            name=op.f("fk_retainedtally_deliveryid_emaildelivery"),
        ),
        sa.ForeignKeyConstraint(
            ["emailactivityid"],
            ["email.activityid"],
            name=op.f("fk_retainedtally_emailactivityid_email"),
        ),
        sa.PrimaryKeyConstraint(
            "deliveryid", "interactiontype", "verdict", name=op.f("pk_retainedtally")
        ),
    )
    op.create_index("ix_retainedtally_email", "retainedtally", ["emailactivityid"])


def downgrade() -> None:
    op.drop_index("ix_retainedtally_email", table_name="retainedtally")
    op.drop_table("retainedtally")
