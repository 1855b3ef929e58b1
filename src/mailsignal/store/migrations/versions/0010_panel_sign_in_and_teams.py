"""panel sign-in and teams: password hashes, sessions, team and teammembership

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:10:00.000000

The engagement panel (issue 12) signs people in with a password (`systemuser.passwordhash`,
argon2id) and keeps their sessions server-side (`panelsession`: the sha256 of the cookie's
token, its CSRF token, when it began and was last used). Teams (`team`, `teammembership`,
Dataverse's names) give a manager their reps' mail.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsignal.store.schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("systemuser", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passwordhash", sa.String(length=255), nullable=True))
    op.create_table(
        "panelsession",
        sa.Column("sessionhash", sa.String(length=64), nullable=False),
        sa.Column("systemuserid", sa.Uuid(), nullable=False),
        sa.Column("csrftoken", sa.String(length=64), nullable=False),
        sa.Column("createdon", mailsignal.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lastseenon", mailsignal.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["systemuserid"], ["systemuser.systemuserid"]),
        sa.PrimaryKeyConstraint("sessionhash"),
    )
    op.create_index("ix_panelsession_systemuserid", "panelsession", ["systemuserid"])
    op.create_table(
        "team",
        sa.Column("teamid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("administratorid", sa.Uuid(), nullable=True),
        sa.Column("createdon", mailsignal.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("modifiedon", mailsignal.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["administratorid"], ["systemuser.systemuserid"]),
        sa.PrimaryKeyConstraint("teamid"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "teammembership",
        sa.Column("teamid", sa.Uuid(), nullable=False),
        sa.Column("systemuserid", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["systemuserid"], ["systemuser.systemuserid"]),
        sa.ForeignKeyConstraint(["teamid"], ["team.teamid"]),
        sa.PrimaryKeyConstraint("teamid", "systemuserid"),
    )
    op.create_index("ix_teammembership_systemuserid", "teammembership", ["systemuserid"])


def downgrade() -> None:
    op.drop_index("ix_teammembership_systemuserid", table_name="teammembership")
    op.drop_table("teammembership")
    op.drop_table("team")
    op.drop_index("ix_panelsession_systemuserid", table_name="panelsession")
    op.drop_table("panelsession")
    with op.batch_alter_table("systemuser", schema=None) as batch_op:
        batch_op.drop_column("passwordhash")
