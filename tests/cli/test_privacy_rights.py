"""`mailsignal privacy export|erase` run as an operator would, on SQLite and PostgreSQL
(issue 13): the export as one JSON document on stdout or in a 0600 file; erase asks
first, then deletes, and keeps a do-not-track choice by keyed hash; mistakes answer one
`error:` line and exit status 2."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from conftest import cli
from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties
from mailsignal.store.schema import auditrecord, contact, donottrack, emaildelivery
from mailsignal.tokens import Signer

DANA = "dana@contoso.test"


@pytest.fixture
def env(settings: Settings, engine: Engine) -> dict[str, str]:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        add_rep(conn)
        parties.add(conn, "contact", "Dana Whitfield", DANA)
        track_html(conn, signer, [DANA, "lee@fabrikam.test"])
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }


def test_export_to_stdout_and_to_a_private_file(env: dict[str, str], tmp_path: Path) -> None:
    doc = json.loads(cli(env, "privacy", "export", "Dana@Contoso.test").stdout)
    assert doc["address"] == DANA and len(doc["deliveries"]) == 1
    assert doc["consent"] == []  # none recorded
    target = tmp_path / "dana.json"
    target.write_text("old")
    target.chmod(0o644)
    said = cli(env, "privacy", "export", DANA, "--output", str(target)).stdout
    assert "1 deliveries" in said and DANA not in said.replace(str(target), "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["parties"]["contact"][0]["fullname"] == "Dana Whitfield"


def test_erase_asks_then_erases_and_keeps_the_opt_out(
    env: dict[str, str], engine: Engine, settings: Settings
) -> None:
    cli(env, "privacy", "optout", DANA)
    declined = cli(env, "privacy", "erase", DANA, check=False, input_text="n\n")
    assert declined.returncode == 2 and "not erased" in declined.stderr
    counts = json.loads(cli(env, "privacy", "erase", DANA, "--yes", "--json").stdout)
    signer = Signer(*load_keyring(settings.secret_file))
    assert counts["addresshash"] == signer.address_hash(DANA)
    assert counts["deliveries"] == 1 and counts["contacts"] == 1 and counts["donottrack_kept"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contact)).scalar_one() == 0
        left = conn.execute(select(emaildelivery.c.emailaddress)).scalars().all()
        listed = conn.execute(select(donottrack.c.addresshash)).scalars().all()
        actions = conn.execute(select(auditrecord.c.action).order_by(auditrecord.c.auditid))
        assert actions.scalars().all() == ["recipient.optout", "privacy.erase"]
    assert left == ["lee@fabrikam.test"] and listed == [signer.address_hash(DANA)]
    assert counts["vacuumed"] == (engine.dialect.name == "sqlite")
    again = cli(env, "privacy", "erase", DANA, "--yes", "--json", "--no-vacuum").stdout
    assert json.loads(again) | {"addresshash": ""} == dict.fromkeys(counts, 0) | {
        "addresshash": "",
        "donottrack_kept": 1,
    }


@pytest.mark.parametrize(
    "args",
    [["export", "not-an-address"], ["erase", "a@b@c", "--yes"]],
)
def test_mistakes_are_one_error_line(env: dict[str, str], args: list[str]) -> None:
    result = cli(env, "privacy", *args, check=False)
    assert result.returncode == 2 and "not an email address" in result.stderr
    assert "Traceback" not in result.stderr
