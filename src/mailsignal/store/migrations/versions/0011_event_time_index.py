"""event time index: the panel's activity feed reads the newest events first

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:30:00.000000

The feed (store/panelfeed.py, issue 12) lists the newest events by a person across the
mail a viewer may read, 50 at a time, and is polled every few seconds. Without an index
on `emailinteractiontime` every poll sorts every event (10M at the bench's scale); with
it the newest are read first and the scan stops after a page.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_interactionforemail_time", "interactionforemail", ["emailinteractiontime"])


def downgrade() -> None:
    op.drop_index("ix_interactionforemail_time", table_name="interactionforemail")
