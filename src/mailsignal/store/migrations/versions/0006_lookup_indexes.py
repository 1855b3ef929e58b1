"""lookup indexes: party addresses by lower(), emails by tracking id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 14:05:00.000000

The relay looks up every recipient's contact, lead or account by
lower(emailaddress1) (outgoing.track): an expression index per party table turns
three table scans per message into three index lookups (100,000 contacts on SQLite:
43 ms per message before, 1.2 ms after).

Reply sync matches an `X-MailSignal-Id` header (the email's `emailtrackingid`) when a
reply or bounce lost In-Reply-To/References: that lookup is indexed too.

SQLAlchemy cannot reflect expression indexes on SQLite (it warns and skips them), so
a later batch migration that recreates account, contact or lead on SQLite must create
these indexes again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("account", "contact", "lead")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                f"ix_{table}_emailaddress1_lower",
                [sa.text("lower(emailaddress1)")],
                unique=False,
            )
    op.create_index("ix_email_emailtrackingid", "email", ["emailtrackingid"])


def downgrade() -> None:
    op.drop_index("ix_email_emailtrackingid", table_name="email")
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_emailaddress1_lower")
