"""idempotent email creation: one email per sender and Message-ID, idempotency keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:40:00.000000

`sentmessage` holds one row per (sender, Message-ID) (keyed by their sha256, see
store/sent.message_key): the primary key is what makes two concurrent POSTs, or two
`emails instrument` runs, of one message make one email. Emails recorded before keep
their rows; the first of each (sender, Message-ID) becomes the one a repeat finds.

`idempotencykey` holds POST /api/v1/emails's `Idempotency-Key`s per user.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

import mailsignal.store.schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    sentmessage = op.create_table(
        "sentmessage",
        sa.Column("messagekey", sa.String(length=64), nullable=False),
        sa.Column("emailactivityid", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["emailactivityid"], ["email.activityid"]),
        sa.PrimaryKeyConstraint("messagekey"),
    )
    op.create_table(
        "idempotencykey",
        sa.Column("ownerid", sa.Uuid(), nullable=False),
        sa.Column("idempotencykey", sa.String(length=255), nullable=False),
        sa.Column("requesthash", sa.String(length=64), nullable=False),
        sa.Column("messageid", sa.String(length=998), nullable=False),
        sa.Column("senton", mailsignal.store.schema.UtcDateTime(), nullable=False),
        sa.Column("createdon", mailsignal.store.schema.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ownerid"], ["systemuser.systemuserid"]),
        sa.PrimaryKeyConstraint("ownerid", "idempotencykey"),
    )
    # The same key as store/sent.message_key, written here so the migration does not
    # change when the module does.
    email = sa.table(
        "email",
        sa.column("activityid", sa.Uuid()),
        sa.column("sender", sa.String()),
        sa.column("messageid", sa.String()),
        sa.column("createdon", sa.DateTime()),
    )
    rows = op.get_bind().execute(
        sa.select(email.c.sender, email.c.messageid, email.c.activityid)
        .where(email.c.messageid.is_not(None))
        .order_by(email.c.createdon, email.c.activityid)
    )
    seen: set[str] = set()
    batch: list[dict[str, object]] = []
    for sender, message_id, activity_id in rows:
        key = hashlib.sha256(f"{sender}\0{message_id}".encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            batch.append({"messagekey": key, "emailactivityid": activity_id})
        if len(batch) >= BATCH:
            op.bulk_insert(sentmessage, batch)
            batch = []
    if batch:
        op.bulk_insert(sentmessage, batch)


def downgrade() -> None:
    op.drop_table("idempotencykey")
    op.drop_table("sentmessage")
