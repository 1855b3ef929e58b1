"""nullable names: an email without a subject, a party without a name, is null

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:40:00.000000

Dataverse leaves `email.subject` and a party's primary name (`contact.fullname`,
`lead.fullname`, `account.name`) null when none was given; MailSignal stored "" (NOT
NULL with a default), so FetchXML's `operator="null"` found nothing and the Web API
returned `"subject": ""` where Dataverse omits the column (issue 11, C.11). The columns
become nullable without a default, and the "" already stored becomes null (also
`lead.companyname`, which was nullable but could hold "").

On SQLite the tables are rebuilt (batch mode) with foreign keys off (migrations/env.py);
the lower(emailaddress1) indexes of migration 0006, which SQLite's reflection cannot see,
are created again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = {"email": "subject", "account": "name", "contact": "fullname", "lead": "fullname"}
LENGTHS = {"subject": 800, "name": 200, "fullname": 200}


@contextmanager
def _rebuilt(table: str) -> Iterator[BatchOperations]:
    """`op.batch_alter_table(table)`, quiet about the expression indexes SQLite's
    reflection skips (`_party_address_indexes` creates them again)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        with op.batch_alter_table(table, schema=None) as batch_op:
            yield batch_op


def upgrade() -> None:
    for table, column in COLUMNS.items():
        with _rebuilt(table) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=LENGTHS[column]),
                nullable=True,
                server_default=None,
            )
        op.execute(sa.text(f"UPDATE {table} SET {column} = NULL WHERE {column} = ''"))  # noqa: S608
    op.execute(sa.text("UPDATE lead SET companyname = NULL WHERE companyname = ''"))
    _party_address_indexes()


def downgrade() -> None:
    for table, column in COLUMNS.items():
        op.execute(sa.text(f"UPDATE {table} SET {column} = '' WHERE {column} IS NULL"))  # noqa: S608
        with _rebuilt(table) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=LENGTHS[column]),
                nullable=False,
                server_default="",
            )
    _party_address_indexes()


def _party_address_indexes() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in ("account", "contact", "lead"):
            op.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_{table}_emailaddress1_lower "
                    f"ON {table} (lower(emailaddress1))"
                )
            )
