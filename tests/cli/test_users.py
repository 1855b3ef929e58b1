"""`mailsignal users key ...` and `users disable|enable`, run as an operator would, on
SQLite and PostgreSQL: keys listed without secrets and revoked, `users key EMAIL` still
creating one, users disabled and enabled, never the last admin."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine

from conftest import cli
from mailsignal.settings import Settings
from mailsignal.store import users

REP, ADMIN = "rep@northwind.test", "admin@northwind.test"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }
    cli(env, "users", "add", REP)
    cli(env, "users", "add", ADMIN, "--role", "admin")
    return env


def _works(engine: Engine, key: str) -> bool:
    try:
        users.authenticate(engine, key)
    except Exception:
        return False
    return True


def test_keys_listed_and_revoked(env: dict[str, str], engine: Engine) -> None:
    old = cli(env, "users", "key", REP).stdout.strip()  # the documented shorthand
    new = cli(env, "users", "key", "create", REP, "--name", "outlook").stdout.strip()
    named = cli(env, "users", "key", "--name", "crm", REP).stdout.strip()  # options first
    assert all(k.startswith("msk_") for k in (old, new, named))
    listed = cli(env, "users", "key", "list", REP).stdout
    for key, name in ((old, "cli"), (new, "outlook"), (named, "crm")):
        assert users.key_prefix(key) in listed and key not in listed
        assert name in listed
    assert "never" in listed  # not used yet

    revoked = cli(env, "users", "key", "revoke", users.key_prefix(old))
    assert "revoked" in revoked.stdout and not _works(engine, old)
    again = cli(env, "users", "key", "revoke", old)  # the whole key names it too
    assert "already revoked" in again.stdout
    assert _works(engine, new)
    everything = cli(env, "users", "key", "revoke", "--all", REP)
    assert "revoked 2 keys" in everything.stdout
    assert not _works(engine, new) and not _works(engine, named)
    assert cli(env, "users", "key", "list", REP).stdout.count("UTC") >= 6  # created + revoked


ERRORS = [
    (["users", "key", "revoke"], "give a key prefix or --all EMAIL"),
    (["users", "key", "revoke", "abc", "--all", REP], "one of them"),
    (["users", "key", "revoke", "000000000000"], "no API key with prefix"),
    (["users", "key", "revoke", "msk_"], "malformed API key"),
    (["users", "key", "list", "ghost@northwind.test"], "no user"),
    (["users", "key", "ghost@northwind.test"], "no user"),
    (["users", "disable", "ghost@northwind.test"], "no user"),
    (["users", "disable", ADMIN], "last enabled admin"),
]


def test_clear_errors(env: dict[str, str]) -> None:
    for args, message in ERRORS:
        result = cli(env, *args, check=False)
        assert result.returncode == 2, result
        assert message in result.stderr and "Traceback" not in result.stderr, result


def test_disable_and_enable(env: dict[str, str], engine: Engine) -> None:
    key = cli(env, "users", "key", REP).stdout.strip()
    assert "disabled" in cli(env, "users", "disable", REP).stdout
    assert not _works(engine, key)
    listed = cli(env, "users", "list").stdout
    [rep_line] = [line for line in listed.splitlines() if REP in line]
    assert "disabled" in rep_line
    assert "enabled" in cli(env, "users", "enable", REP).stdout
    assert _works(engine, key)
    # With a second admin, one of them may be disabled; then the other is the last.
    cli(env, "users", "add", "ops@northwind.test", "--role", "admin")
    cli(env, "users", "disable", "ops@northwind.test")
    last = cli(env, "users", "disable", ADMIN, check=False)
    assert last.returncode == 2 and "last enabled admin" in last.stderr
