from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from mailsignal.store.db import migrate
from mailsignal.store.schema import metadata


# SQLite cannot reflect expression indexes (lower(emailaddress1), migration 0006), so the
# comparison skips them there; tests/mail/test_relay.py checks the plan uses them.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_match_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_is_idempotent(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert {"email", "interactionforemail", "mailbox", "trackedattachment"} <= set(
        inspect(engine).get_table_names()
    )
