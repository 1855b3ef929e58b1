"""Alembic environment: runs against the engine MailSignal hands in (never a URL in an ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailsignal.errors import StoreError
from mailsignal.store.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable by misuse
    raise RuntimeError("run migrations through mailsignal.store.db.migrate()")

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table by copy, drop and rename; with foreign keys on,
        # dropping a table others reference (email, account) would fail. Off for the
        # migration only (the driver runs a PRAGMA outside any transaction), then checked.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"the migration broke foreign keys: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
