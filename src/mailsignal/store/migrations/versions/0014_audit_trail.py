"""append-only audit trail of admin and privacy actions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 11:00:00.000000

Issue 13 asks for proof of who changed what: the org switch, users' opt-in, users and
API keys, teams, and the privacy actions (exports, erasures, recipients' opt-outs,
retention runs). `auditrecord` keeps one row per action (store/audit.py writes them in
the same transaction as the change). It is append-only: the application has no update
or delete, and triggers on both backends refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL), so a bug or a careless script cannot rewrite the record; only someone who
drops the triggers can. `occurredon` and (action, occurredon) serve `mailsignal audit
list` and GET /api/v1/audit, which read newest first within a time window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsignal.store.schema

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MESSAGE = "auditrecord is append-only"

SQLITE_TRIGGERS = [
    "CREATE TRIGGER auditrecord_no_update BEFORE UPDATE ON auditrecord "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    "CREATE TRIGGER auditrecord_no_delete BEFORE DELETE ON auditrecord "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
]

PG_TRIGGERS = [
    "CREATE FUNCTION auditrecord_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'restrict_violation'; END $$",
    "CREATE TRIGGER auditrecord_no_change BEFORE UPDATE OR DELETE ON auditrecord "
    "FOR EACH ROW EXECUTE FUNCTION auditrecord_refuse()",
    "CREATE TRIGGER auditrecord_no_truncate BEFORE TRUNCATE ON auditrecord "
    "FOR EACH STATEMENT EXECUTE FUNCTION auditrecord_refuse()",
]


def upgrade() -> None:
    op.create_table(
        "auditrecord",
        sa.Column("auditid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurredon", mailsignal.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("auditid"),
    )
    op.create_index("ix_auditrecord_occurredon", "auditrecord", ["occurredon"])
    op.create_index("ix_auditrecord_action_occurredon", "auditrecord", ["action", "occurredon"])
    statements = SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else PG_TRIGGERS
    for statement in statements:
        op.execute(sa.text(statement))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(sa.text("DROP TRIGGER IF EXISTS auditrecord_no_update"))
        op.execute(sa.text("DROP TRIGGER IF EXISTS auditrecord_no_delete"))
    op.drop_index("ix_auditrecord_action_occurredon", table_name="auditrecord")
    op.drop_index("ix_auditrecord_occurredon", table_name="auditrecord")
    op.drop_table("auditrecord")
    if op.get_bind().dialect.name != "sqlite":
        op.execute(sa.text("DROP FUNCTION IF EXISTS auditrecord_refuse()"))
