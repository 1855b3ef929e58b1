"""`mailsignal audit list`, the audit rows every `users`, `org` and `teams` command writes
(actor "cli"), `default_user_optin` on `users add`, and `users gaps` with a fixed end of
its window, run as an operator would on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from conftest import cli
from mailsignal import outgoing
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.tokens import Signer

REP, ADMIN = "rep@northwind.test", "admin@northwind.test"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
    }


def _listed(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    value = json.loads(cli(env, "audit", "list", "--json", *args).stdout)["value"]
    assert isinstance(value, list)
    return value


def test_every_command_is_audited(env: dict[str, str], engine: Engine) -> None:
    cli(env, "users", "add", ADMIN, "--role", "admin")
    cli(env, "users", "add", REP, "--opt-in")
    cli(env, "users", "opt-in", REP, "--off")
    cli(env, "users", "disable", REP)
    cli(env, "users", "enable", REP)
    cli(env, "users", "role", REP, "admin")
    cli(env, "users", "password", REP, "--stdin", input_text="a long enough password\n")
    key = cli(env, "users", "key", REP).stdout.strip()
    cli(env, "users", "key", "revoke", key)
    cli(env, "org", "set", "--no-tracking")
    cli(env, "teams", "add", "East", "--manager", ADMIN)
    cli(env, "teams", "member", "add", "East", REP)
    cli(env, "teams", "member", "add", "East", REP)  # already a member: nothing changes
    cli(env, "teams", "member", "remove", "East", REP)
    cli(env, "teams", "manager", "East", REP)
    refused = cli(env, "users", "role", REP, "owner", check=False)
    assert refused.returncode == 2 and "role must be" in refused.stderr

    rows = list(reversed(_listed(env)))
    assert [r["action"] for r in rows] == [
        "user.create",
        "user.create",
        "user.optin",
        "user.disable",
        "user.enable",
        "user.role",
        "user.password",
        "apikey.create",
        "apikey.revoke",
        "org.update",
        "team.create",
        "team.member_add",
        "team.member_remove",
        "team.manager",
    ]
    assert {r["actor"] for r in rows} == {"cli"}
    with engine.connect() as conn:
        rep = users.by_address(conn, REP)
    assert rep is not None
    assert rows[1]["subject"] == str(rep["systemuserid"])
    assert rows[1]["details"] == {"role": "rep", "opt_in": True, "opt_in_from": "request"}
    assert rows[6]["details"] == {"set": True}
    # No address of anyone in what the trail keeps (users are named by their id).
    assert "@" not in json.dumps([[r["subject"], r["details"]] for r in rows])

    # Filters: an action, a family, an actor, a time window, a limit; the table too.
    assert [r["action"] for r in _listed(env, "--action", "user.role")] == ["user.role"]
    assert len(_listed(env, "--action", "team.*")) == 4
    assert _listed(env, "--actor", "system") == []
    assert len(_listed(env, "--limit", "3")) == 3
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _listed(env, "--since", tomorrow) == []
    assert len(_listed(env, "--until", tomorrow)) == len(rows)
    newest = _listed(env, "--limit", "2")
    older = _listed(env, "--limit", "2", "--before", str(newest[-1]["id"]))
    assert [r["action"] for r in older] == ["team.member_add", "team.create"]
    table = cli(env, "audit", "list", "--action", "org.update").stdout
    assert "org.update" in table and "isemailmonitoringallowed" in table
    for bad in (["--limit", "0"], ["--limit", "5000"], ["--since", "yesterday"], ["--actor", "x"]):
        result = cli(env, "audit", "list", *bad, check=False)
        assert result.returncode == 2 and "error:" in result.stderr, bad
        assert "Traceback" not in result.stderr


def test_default_user_optin_applies_to_users_add(env: dict[str, str], engine: Engine) -> None:
    on = {**env, "MAILSIGNAL_DEFAULT_USER_OPTIN": "true"}
    assert "opt-in on" in cli(on, "users", "add", "a@northwind.test").stdout
    assert "opt-in off" in cli(on, "users", "add", "b@northwind.test", "--no-opt-in").stdout
    assert "opt-in off" in cli(env, "users", "add", "c@northwind.test").stdout
    with engine.connect() as conn:
        got = {u["internalemailaddress"]: u["emailengagementoptin"] for u in users.list_all(conn)}
    assert got == {"a@northwind.test": True, "b@northwind.test": False, "c@northwind.test": False}
    first = _listed(env, "--action", "user.create")[-1]
    assert first["details"] == {"role": "rep", "opt_in": True, "opt_in_from": "default_user_optin"}


def test_users_gaps(env: dict[str, str], engine: Engine, settings: Settings) -> None:
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    signer = Signer(*load_keyring(settings.secret_file))
    service = outgoing.Outgoing(signer, "http://track.test")
    cli(env, "users", "add", REP, "--no-opt-in")
    cli(env, "users", "add", ADMIN, "--opt-in", "--role", "admin")
    with engine.begin() as conn:
        for sender, to, days in (
            (REP, ["ana@contoso.test", "bo@contoso.test"], 1),  # one email, two recipients
            (REP, ["ana@contoso.test"], 6),
            (REP, ["ana@contoso.test"], 9),  # outside a 7-day window
            (ADMIN, ["ana@contoso.test"], 1),  # opted in: tracked
        ):
            msg = outgoing.build_message(sender, to, "Hi", "<p>Hi</p>", None)
            service.track(
                conn, msg, sender=sender, recipients=to, sent_at=end - timedelta(days=days)
            )
    doc = json.loads(
        cli(env, "users", "gaps", "--days", "7", "--until", end.isoformat(), "--json").stdout
    )
    assert doc["since"] == "2026-11-13T12:00:00+00:00"
    assert [(u["address"], u["untracked"]) for u in doc["users"]] == [(REP, 2)]
    wide = cli(env, "users", "gaps", "--days", "30", "--until", "2026-11-20T12:00:00")
    assert REP in wide.stdout and " 3" in wide.stdout and ADMIN not in wide.stdout
    later = cli(env, "users", "gaps", "--until", "2027-06-01T00:00:00Z", "--json").stdout
    assert json.loads(later)["users"][0]["untracked"] == 0
    bad = cli(env, "users", "gaps", "--until", "soon", check=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    assert cli(env, "users", "gaps", "--days", "0", check=False).returncode == 2
