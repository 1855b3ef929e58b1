"""`mailsignal privacy consent | consent-import | consent-history` run as an operator
would (issue 13), on SQLite and PostgreSQL: a consent recorded from the command line
makes the next copy tracked under the consent basis; a bad CSV records nothing and its
error names the line; mistakes answer one `error:` line and exit status 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from conftest import cli
from helpers import add_rep
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store.schema import consentrecord
from mailsignal.tokens import Signer

DANA = "dana@contoso.fr"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_TRACKING_BASIS": "consent",
    }


def test_consent_from_the_command_line(
    env: dict[str, str], engine: Engine, settings: Settings
) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    strict = settings.model_copy(update={"tracking_basis": "consent"})
    service = outgoing.Outgoing.from_settings(strict, signer)
    with engine.begin() as conn:
        add_rep(conn)
    done = cli(env, "privacy", "consent", "Dana@Contoso.FR", "--text", "I agree", "--text-id", "v1")
    assert "recorded for dana@contoso.fr" in done.stdout
    with engine.begin() as conn:
        msg = outgoing.build_message("rep@northwind.test", [DANA], "Hi", "<p>Hi</p>", None)
        copy = service.track(conn, msg, sender="rep@northwind.test", recipients=[DANA]).copies[0]
    assert copy.decision.tracked
    history = json.loads(cli(env, "privacy", "consent-history", DANA).stdout)
    assert [(h["source"], h["textid"], h["current"]) for h in history] == [("cli", "v1", True)]
    bad = cli(env, "privacy", "consent", "nope", "--text", "x", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "address" in bad.stderr
    bad = cli(env, "privacy", "consent", DANA, "--text", "x", "--given-at", "soon", check=False)
    assert bad.returncode == 2 and "--given-at" in bad.stderr


def test_consent_import_names_the_bad_lines(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "address,given_at,source,text\n"
        f"{DANA},2026-03-01T09:00:00Z,import,I agree\n"
        "lee@fabrikam.test,2026-03-01,import,I agree\n"
        f"{DANA},2026-03-01T09:00:00Z,import\n",
        encoding="utf-8",
    )
    refused = cli(env, "privacy", "consent-import", str(bad), check=False)
    assert refused.returncode == 2, refused
    assert "line 3: given_at" in refused.stderr and "line 4: expected 4 columns" in refused.stderr
    assert "line 2" not in refused.stderr and "Traceback" not in refused.stderr
    with engine.connect() as conn:
        assert conn.execute(select(consentrecord)).all() == []
    good = tmp_path / "good.csv"
    good.write_text(
        "\ufeffaddress,given_at,source,text,language\n"
        f"{DANA},2026-03-01T09:00:00Z,import,J'accepte,fr\n",
        encoding="utf-8",
    )
    assert "1 consents recorded" in cli(env, "privacy", "consent-import", str(good)).stdout
    missing = cli(env, "privacy", "consent-import", str(tmp_path / "none.csv"), check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
