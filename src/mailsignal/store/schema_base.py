"""What every table module of the schema shares: the metadata and its naming
convention, and the column defaults (UTC now, new ids, created/modified stamps).

schema.py holds the tables Dataverse users query and the core of the pipeline;
schema_panel.py the panel's sign-in, teams and chart roll-ups; schema_privacy.py the
privacy tables (issue 13). schema.py re-exports them all, so `from .schema import x`
works for every table and migrations see one `metadata`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData

from ..model import new_id
from .types import UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_row_id() -> uuid.UUID:
    return new_id()


def stamps() -> list[Column[Any]]:
    return [
        Column("createdon", UtcDateTime, nullable=False, default=utcnow),
        Column("modifiedon", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    ]
