from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from mailsignal.store.db import migrate
from mailsignal.store.schema import metadata


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
