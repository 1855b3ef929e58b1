"""`mailsignal contacts|leads|accounts ...` and `import contacts|leads|accounts FILE.csv`,
run as an operator would, on SQLite and PostgreSQL (#11 item 7): Dynamics-style exports
imported idempotently with each bad line named, mail sent before a contact existed
linked to it, and a removed record's mail kept."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from conftest import FIXTURES, cli
from helpers import OUTLOOK, PERSON_IP, add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.settings import Settings
from mailsignal.store.schema import contact, emaildelivery
from mailsignal.tokens import Signer

RECORDS = FIXTURES / "records"
DANA = "2b0f6a52-8d0e-4f7b-b1a3-0c9e3f6e7a01"
CONTOSO = "6f1c1a2e-5b1e-4d0c-9a55-3c2b7a0e4d11"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }


def _opened_mail(engine: Engine, settings: Settings, address: str) -> int:
    """A tracked email to `address` that a person opened; returns its delivery id."""
    keys, current = load_keyring(settings.secret_file)
    sent = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        add_rep(conn)
        tracked = track_html(conn, Signer(keys, current), [address], sent_at=sent)
    delivery = tracked.copies[0].delivery_id
    hit = RawHit(
        hit_id="open-1",
        received_at=sent + timedelta(hours=4),
        kind=TokenKind.OPEN,
        delivery_id=delivery,
        link_id=None,
        ip=PERSON_IP,
        user_agent=OUTLOOK,
        method="GET",
    )
    with engine.begin() as conn:
        store_hits(conn, [hit], default_enrichment(settings), settings, now=sent + timedelta(1))
    return delivery


def _field(stdout: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith(name))


def test_import_a_dynamics_export(env: dict[str, str], engine: Engine, settings: Settings) -> None:
    delivery = _opened_mail(engine, settings, "dana.whitley@contoso.test")

    first = cli(env, "import", "accounts", str(RECORDS / "accounts.csv"))
    assert "accounts: 2 lines, 2 created, 0 updated, 0 unchanged, 0 bad lines" in first.stdout
    assert "columns not kept: telephone1, websiteurl" in first.stdout

    done = cli(env, "import", "contacts", str(RECORDS / "contacts.csv"))
    assert "contacts: 5 lines, 3 created, 0 updated, 0 unchanged, 2 bad lines" in done.stdout
    assert "line 4: not an email address: 'gil at fabrikam'" in done.stderr
    assert "line 5: parentcustomerid: no account is named 'Nowhere Corp'" in done.stderr
    again = cli(env, "import", "contacts", str(RECORDS / "contacts.csv"))
    assert "3 unchanged, 2 bad lines" in again.stdout
    leads = cli(env, "import", "leads", str(RECORDS / "leads.csv"))
    assert "1 created" in leads.stdout and "line 2: leadid: 'not-a-guid' is not an id" in (
        leads.stderr
    )

    # Dana's mail, sent before she was imported, is hers now, with its human open.
    shown = cli(env, "contacts", "show", "Dana.Whitley@contoso.TEST").stdout
    assert _field(shown, "contactid") == DANA
    assert _field(shown, "fullname") == "Dana Whitley"
    assert _field(shown, "parentcustomerid") == CONTOSO
    assert _field(shown, "humanopencount") == "1"
    assert float(_field(shown, "engagementscore")) > 0
    account = cli(env, "accounts", "show", CONTOSO).stdout
    assert _field(account, "humanopencount") == "1"
    erin = cli(env, "contacts", "show", "erin@fabrikam.test").stdout
    fabrikam = cli(env, "accounts", "show", _field(erin, "parentcustomerid")).stdout
    assert _field(fabrikam, "name") == "Fabrikam Inc"
    ira = cli(env, "contacts", "show", "ira@contoso.test").stdout
    assert _field(ira, "fullname") == 'Ira "Quote" Shaw'
    assert _field(ira, "followemail") == "False"

    listed = cli(env, "contacts", "list", "--search", "contoso").stdout
    assert "Dana Whitley" in listed and "Erin Park" not in listed

    # Removing Dana keeps her mail, unresolved; adding her again links it again.
    removed = cli(env, "contacts", "remove", DANA)
    assert "its 1 deliveries were kept, not deleted" in removed.stdout
    with engine.connect() as conn:
        row = conn.execute(
            select(emaildelivery.c.recipientobjectid).where(emaildelivery.c.deliveryid == delivery)
        ).one()
    assert row[0] is None
    added = cli(env, "contacts", "add", "dana.whitley@contoso.test", "--name", "Dana W")
    assert "1 tracked emails linked" in added.stdout
    # A new address moves the mail away again.
    cli(env, "contacts", "set", "dana.whitley@contoso.test", "--email", "dana@elsewhere.test")
    moved = cli(env, "contacts", "show", "dana@elsewhere.test").stdout
    assert _field(moved, "humanopencount") == "0"


def test_records_commands_refuse_clearly(env: dict[str, str], engine: Engine) -> None:
    cli(env, "accounts", "add", "--name", "Contoso")
    account = cli(env, "accounts", "list", "--json").stdout
    assert '"name": "Contoso"' in account
    cli(env, "contacts", "add", "dana@contoso.test", "--name", "Dana")
    cases = [
        (("contacts", "add", "dana@contoso.test"), "already has the address dana@contoso.test"),
        (("contacts", "add", "not an address"), "not an email address"),
        (("leads", "add", "x@y.test", "--account", "none"), "No such option: --account"),
        (("contacts", "show", "nobody@contoso.test"), "no contact with id or address"),
        (("contacts", "set", "dana@contoso.test", "--account", "abc"), "is not an id"),
        (
            ("contacts", "set", "dana@contoso.test", "--account", CONTOSO),
            f"account With Id = {CONTOSO} Does Not Exist",
        ),
        (("contacts", "add", "--name", "x" * 201), "fullname: longer than 200 characters"),
        (("contacts", "set", "dana@contoso.test"), "nothing to set"),
        (("import", "contacts", "/nonexistent.csv"), "cannot read"),
    ]
    for args, message in cases:
        done = cli(env, *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert message in " ".join(done.stderr.split()), (args, done.stderr)
        assert "Traceback" not in done.stderr
    with engine.connect() as conn:
        assert conn.execute(select(contact.c.fullname)).scalars().all() == ["Dana"]
