"""panel indexes: the newest events first, a rep's mail by send time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:30:00.000000

The feed (store/panelfeed.py, issue 12) lists the newest events by a person across the
mail a viewer may read, 50 at a time, and is polled every few seconds. Without an index
on `emailinteractiontime` every poll sorts every event (10M at the bench's scale); with
it the newest are read first and the scan stops after a page.

"My emails" lists a rep's (or a team's) mail by send time, 50 a page: (ownerid, senton)
reads a page of one owner's mail in order instead of sorting all of it (bench/ui.py).

A rep's feed reads their newest events: `interactionforemail.ownerid` (the email's
owner, copied at insert by store/events.insert, filled here for the events already
stored) with (ownerid, emailinteractiontime) finds them without visiting every one of
the rep's emails (1.3 s -> milliseconds on SQLite at 10M events, bench/ui.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_interactionforemail_time", "interactionforemail", ["emailinteractiontime"])
    op.create_index("ix_email_owner_senton", "email", ["ownerid", "senton"])
    with op.batch_alter_table("interactionforemail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ownerid", sa.Uuid(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE interactionforemail SET ownerid = (SELECT email.ownerid FROM email "
            "WHERE email.activityid = interactionforemail.emailactivityid)"
        )
    )
    op.create_index(
        "ix_interactionforemail_owner_time",
        "interactionforemail",
        ["ownerid", "emailinteractiontime"],
    )


def downgrade() -> None:
    op.drop_index("ix_interactionforemail_owner_time", table_name="interactionforemail")
    with op.batch_alter_table("interactionforemail", schema=None) as batch_op:
        batch_op.drop_column("ownerid")
    op.drop_index("ix_email_owner_senton", table_name="email")
    op.drop_index("ix_interactionforemail_time", table_name="interactionforemail")
