"""delivery address index: mail already sent, found by its recipient's address

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:35:00.000000

When a contact, lead or account is created, changes its address or is removed, the
deliveries already sent to the addresses involved are resolved again (store/relink.py,
issue 11). They are found by `emaildelivery.emailaddress`, which holds the one
lower-cased spelling `addresses.normalise_address` gives, so a plain index on it serves a
case-insensitive look-up; without it every party write would scan every delivery.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_emaildelivery_emailaddress", "emaildelivery", ["emailaddress"])


def downgrade() -> None:
    op.drop_index("ix_emaildelivery_emailaddress", table_name="emaildelivery")
