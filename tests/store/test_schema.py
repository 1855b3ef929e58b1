"""The physical schema's own types (store/schema.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from mailsignal.store.schema import UtcDateTime


def test_sqlite_times_are_written_as_sqlalchemy_writes_them() -> None:
    """UtcDateTime binds on SQLite in one step; the text must be exactly what
    SQLAlchemy's DATETIME stores for the UTC time, as stored times sort as text."""
    dialect = sqlite.dialect()
    fast = UtcDateTime().bind_processor(dialect)
    stock = DateTime().dialect_impl(dialect).bind_processor(dialect)
    rng = random.Random(7)
    for _ in range(5000):
        value = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(-1e9, 1e9))
        if rng.random() < 0.3:
            value = value.replace(microsecond=0)
        if rng.random() < 0.3:
            value = value.astimezone(timezone(timedelta(hours=rng.randint(-12, 12))))
        assert fast(value) == stock(value.astimezone(UTC).replace(tzinfo=None))
    assert fast(None) is None
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 1, 1))
