"""view indexes

Indexes for the "Engaged This Week" views (raw and human signals), for everyone and per
rep, and for reading one party's deliveries when its score is updated (issue #5,
bench/views.py and bench/scores.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("email", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_lastopened", ["lastopenedtime", "opencount", "directioncode"], unique=False
        )
        batch_op.create_index(
            "ix_email_lasthumanopened",
            ["lasthumanopenedtime", "humanopencount", "directioncode"],
            unique=False,
        )
        batch_op.create_index(
            "ix_email_owner_lastopened",
            ["ownerid", "lastopenedtime", "opencount", "directioncode"],
            unique=False,
        )
        batch_op.create_index(
            "ix_email_owner_lasthumanopened",
            ["ownerid", "lasthumanopenedtime", "humanopencount", "directioncode"],
            unique=False,
        )

    with op.batch_alter_table("emaildelivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_emaildelivery_recipient",
            ["recipientobjectid", "recipientobjecttypecode"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("emaildelivery", schema=None) as batch_op:
        batch_op.drop_index("ix_emaildelivery_recipient")

    with op.batch_alter_table("email", schema=None) as batch_op:
        batch_op.drop_index("ix_email_owner_lasthumanopened")
        batch_op.drop_index("ix_email_owner_lastopened")
        batch_op.drop_index("ix_email_lasthumanopened")
        batch_op.drop_index("ix_email_lastopened")
