"""`mailsignal teams ...` run as an operator would, on SQLite and PostgreSQL: a team made
with its manager, members added and removed, the manager changed, and mistakes answered
with one `error:` line and exit status 2."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine

from conftest import cli
from mailsignal.settings import Settings
from mailsignal.store import fetch, teams, users

BOSS, ANA, BEN = "boss@northwind.test", "ana@northwind.test", "ben@northwind.test"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }
    for address in (BOSS, ANA, BEN):
        cli(env, "users", "add", address)
    return env


def test_teams_from_the_command_line(env: dict[str, str], engine: Engine) -> None:
    made = cli(env, "teams", "add", "West", "--manager", BOSS)
    assert "added team West, managed by boss@northwind.test" in made.stdout
    assert "joined West" in cli(env, "teams", "member", "add", "West", ANA).stdout
    assert "joined West" in cli(env, "teams", "member", "add", "West", BEN).stdout
    assert "already a member" in cli(env, "teams", "member", "add", "West", BEN).stdout
    assert "left West" in cli(env, "teams", "member", "remove", "West", BEN).stdout
    listed = cli(env, "teams", "list").stdout
    assert "West" in listed and BOSS in listed and ANA in listed and BEN not in listed
    with engine.connect() as conn:
        boss, ana = (users.by_address(conn, a) for a in (BOSS, ANA))
        assert boss is not None and ana is not None
        caller = fetch.load_caller(conn, boss["systemuserid"])
        assert caller.team == frozenset({ana["systemuserid"]})
    assert f"{ANA} manages West" in cli(env, "teams", "manager", "West", ANA).stdout
    with engine.connect() as conn:
        assert teams.listing(conn)[0]["manager"] == ANA


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("teams", "add", "West"), "a team named 'West' already exists"),
        (("teams", "add", "East", "--manager", "nobody@northwind.test"), "no user nobody@"),
        (("teams", "member", "add", "North", ANA), "no team named 'North'"),
        (("teams", "member", "remove", "West", "nobody@northwind.test"), "no user nobody@"),
        (("teams", "manager", "North", ANA), "no team named 'North'"),
    ],
)
def test_mistakes_are_one_error_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    cli(env, "teams", "add", "West")
    r = cli(env, *args, check=False)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
