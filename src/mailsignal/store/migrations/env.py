"""Alembic environment: runs against the engine MailSignal hands in (never a URL in an ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailsignal.store.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable by misuse
    raise RuntimeError("run migrations through mailsignal.store.db.migrate()")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
