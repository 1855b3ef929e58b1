from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from helpers import (
    CHROME,
    EOP_IP,
    SAFE_LINKS,
    add_rep,
    assert_rollups_match_events,
    track_html,
)
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.settings import Settings
from mailsignal.store import emails, parties, schema
from mailsignal.store.db import alembic_config, migrate
from mailsignal.store.schema import email, emaildelivery, metadata
from mailsignal.tokens import Signer


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


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_0009_makes_empty_names_null_and_back(engine: Engine, settings: Settings) -> None:
    """Down to 0008 an unnamed party and a subject-less email hold "" (as they used to);
    up again they are null, the rows and their links intact, and on SQLite the rebuilt
    tables keep their foreign keys and the lower(emailaddress1) indexes."""
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        add_rep(conn)
        account = parties.add(conn, "account", "", None)
        contact = parties.add(conn, "contact", None, "dana@contoso.test", parent=account)
        sent = track_html(conn, signer, ["dana@contoso.test"])
        conn.execute(update(email).values(subject=None))
    config = alembic_config(engine)
    command.downgrade(config, "0008")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT subject FROM email")).scalar_one() == ""
        assert conn.execute(text("SELECT fullname FROM contact")).scalar_one() == ""
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(select(email.c.subject, email.c.regardingobjectid)).one() == (
            None,
            contact,
        )
        assert conn.execute(select(schema.contact.c.fullname)).scalar_one() is None
        assert conn.execute(select(schema.account.c.name)).scalar_one() is None
        assert conn.execute(select(func.count()).select_from(email)).scalar_one() == 1
        assert sent.activity_id == conn.execute(select(email.c.activityid)).scalar_one()
        if engine.dialect.name == "sqlite":
            names = {
                row[0]
                for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")
            }
            assert {f"ix_{t}_emailaddress1_lower" for t in ("account", "contact", "lead")} <= names
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:  # foreign keys still hold
        conn.execute(update(schema.contact).values(parentcustomerid=uuid.uuid4()))


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_0012_fills_the_panels_rollups_from_stored_events(
    engine: Engine, settings: Settings
) -> None:
    """Events stored before 0012 (a gateway's fetch and click, a person's open, a Gmail
    copy) are in the roll-ups after it exactly as if they had been kept by delta."""
    signer = Signer(*load_keyring(settings.secret_file))
    sent_at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        add_rep(conn)
        sent = track_html(conn, signer, ["dana@contoso.test", "sam@gmail.com"], sent_at=sent_at)
        link = next(iter(emails.link_ids(conn, sent.activity_id).values()))
    dana, sam = sent.copies
    hits = [
        RawHit(
            "m1",
            sent_at + timedelta(seconds=4),
            TokenKind.OPEN,
            dana.delivery_id,
            None,
            EOP_IP,
            SAFE_LINKS,
            "GET",
        ),
        RawHit(
            "m2",
            sent_at + timedelta(seconds=5),
            TokenKind.CLICK,
            dana.delivery_id,
            link,
            EOP_IP,
            SAFE_LINKS,
            "GET",
        ),
        RawHit(
            "m3",
            sent_at + timedelta(hours=3),
            TokenKind.OPEN,
            dana.delivery_id,
            None,
            "198.51.100.23",
            CHROME,
            "GET",
        ),
        RawHit(
            "m4",
            sent_at + timedelta(hours=5),
            TokenKind.OPEN,
            sam.delivery_id,
            None,
            "203.0.113.40",
            CHROME,
            "GET",
        ),
    ]
    with engine.begin() as conn:
        store_hits(
            conn, hits, default_enrichment(settings), settings, now=sent_at + timedelta(days=1)
        )
    assert_rollups_match_events(engine)
    with engine.connect() as conn:
        kept = set(
            conn.execute(select(emaildelivery.c.emailaddress, emaildelivery.c.mailenvironment))
        )
    assert kept == {("dana@contoso.test", "microsoft"), ("sam@gmail.com", "gmail")}
    command.downgrade(alembic_config(engine), "0011")
    migrate(engine)
    assert_rollups_match_events(engine)
    with engine.connect() as conn:
        assert (
            set(conn.execute(select(emaildelivery.c.emailaddress, emaildelivery.c.mailenvironment)))
            == kept
        )
