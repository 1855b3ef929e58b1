"""`mailsignal privacy optout|optin|dropped` run as an operator would, on SQLite and
PostgreSQL (issue 13): the address goes on the do-not-track list by keyed hash, its
contacts and leads get followemail false, the next copy is untracked; mistakes answer
one `error:` line and exit status 2."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import Engine, select

from conftest import cli
from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import parties
from mailsignal.store.schema import auditrecord, donottrack
from mailsignal.tokens import Signer

DANA = "dana@contoso.test"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }


def test_optout_and_optin(env: dict[str, str], engine: Engine, settings: Settings) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        add_rep(conn)
        dana = parties.add(conn, "lead", "Dana", DANA)
    done = cli(env, "privacy", "optout", "Dana@Contoso.test").stdout
    assert "dana@contoso.test added to the do-not-track list" in done
    assert "followemail=false: 1" in done
    assert "already on" in cli(env, "privacy", "optout", DANA).stdout
    with engine.begin() as conn:
        assert conn.execute(select(donottrack.c.addresshash, donottrack.c.source)).all() == [
            (signer.address_hash(DANA), "cli")
        ]
        lead = parties.get(conn, "lead", dana)
        assert lead is not None and lead["followemail"] is False
        copy = track_html(conn, signer, [DANA]).copies[0]
        actions = conn.execute(select(auditrecord.c.action, auditrecord.c.actor)).all()
    assert copy.decision.reasons == ("recipient.do_not_track", "recipient.opted_out")
    assert actions == [("recipient.optout", "cli")] * 2
    back = cli(env, "privacy", "optin", DANA).stdout
    assert "removed from the do-not-track list" in back and "followemail=true: 1" in back
    assert "was not on" in cli(env, "privacy", "optin", DANA).stdout
    with engine.begin() as conn:
        assert track_html(conn, signer, [DANA]).copies[0].decision.tracked
    assert json.loads(cli(env, "privacy", "dropped", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optout", "not-an-address"], "not an email address"),
        (["optin", "a@b@c"], "not an email address"),
        (["dropped", "--days", "0"], "--days must be at least 1"),
    ],
)
def test_mistakes_are_one_error_line(env: dict[str, str], args: list[str], message: str) -> None:
    result = cli(env, "privacy", *args, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
