"""recipients' consent to tracking

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 12:00:00.000000

Under the `consent` tracking basis (issue 13; CNIL recommendation of 12 March 2026) only
a recipient with a recorded consent gets an individually tracked copy, and the operator
must be able to prove that consent: when it was given, how (api, cli, import, or the
recipient's own click on the consent page) and the text they agreed to. `consentrecord`
keeps that under the keyed hash of the address (as `donottrack` does), never the
address, so it survives an erasure. Rows are appended, never rewritten: a withdrawal
fills `withdrawnon` of the open rows, and a later consent is a new row, so the whole
history stays as proof. Nothing to fill: no consent was recorded before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailsignal.store import schema

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consentrecord",
        sa.Column(
            "consentid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("addresshash", sa.String(length=64), nullable=False),
        sa.Column("givenon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("textid", sa.String(length=80), nullable=True),
        sa.Column("texthash", sa.String(length=64), nullable=False),
        sa.Column("consenttext", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("recordedon", schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("withdrawnon", schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("withdrawnsource", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("consentid", name=op.f("pk_consentrecord")),
    )
    op.create_index(
        "ix_consentrecord_addresshash",
        "consentrecord",
        ["addresshash", "givenon"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_consentrecord_addresshash", table_name="consentrecord")
    op.drop_table("consentrecord")
