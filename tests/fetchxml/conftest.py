"""The `world` fixture: world.py's rows in a fresh database per module and backend."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fetchxml.world import populate  # type: ignore[import-not-found]
from mailsignal.store.db import make_engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_template: Path,
    _pg_admin: Any,
) -> Iterator[Engine]:
    """A populated database per backend, shared by a module's (read-only) tests."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fx") / "world.db"
        shutil.copy(_sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        populate(engine)
        yield engine
        engine.dispose()
        return
    if not _pg_admin or _pg_admin[0] is None:
        reason = f"PostgreSQL is not available: {_pg_admin[1] if _pg_admin else 'no URL'}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI requires it: {reason}")
        pytest.skip(reason)
    admin, template = _pg_admin
    name = f"ms_fx_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(False))
    populate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
