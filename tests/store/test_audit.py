"""The audit trail's store (store/audit.py) on SQLite and PostgreSQL: rows written in the
caller's transaction (and rolled back with it), filtered and paged newest first, refused
when they name an unknown actor; the table refuses UPDATE and DELETE (triggers of
migration 0014) on both backends; and the user functions audit what they change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from helpers import add_rep
from mailsignal.errors import InputError
from mailsignal.store import audit, roles, users
from mailsignal.store.schema import auditrecord

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def test_record_and_search(engine: Engine) -> None:
    someone = uuid.uuid4()
    with engine.begin() as conn:
        audit.record(conn, "user.create", actor="cli", subject="u1", details={"role": "rep"}, at=T0)
        audit.record(conn, "user.disable", actor=f"user:{someone}", subject="u1", at=T0)
        audit.record(
            conn, "recipient.optout", actor="recipient", subject="hmac:ab12", at=T0 + timedelta(1)
        )
        audit.record(conn, "retention.run", actor="system", at=T0 + timedelta(2))
    with engine.connect() as conn:
        newest = audit.search(conn, audit.Filter())
        assert [r["action"] for r in newest] == [
            "retention.run",
            "recipient.optout",
            "user.disable",
            "user.create",
        ]
        assert newest[-1]["details"] == {"role": "rep"} and newest[0]["details"] == {}
        assert newest[-1]["occurredon"] == T0
        users_only = audit.search(conn, audit.Filter(action="user.*"))
        assert {r["action"] for r in users_only} == {"user.create", "user.disable"}
        assert [r["action"] for r in audit.search(conn, audit.Filter(actor="user"))] == [
            "user.disable"
        ]
        assert len(audit.search(conn, audit.Filter(actor=f"user:{someone}"))) == 1
        window = audit.Filter(since=T0 + timedelta(hours=1), until=T0 + timedelta(days=2))
        assert [r["action"] for r in audit.search(conn, window)] == ["recipient.optout"]
        page = audit.search(conn, audit.Filter(limit=2))
        rest = audit.search(conn, audit.Filter(limit=2, before=page[-1]["auditid"]))
        assert [r["action"] for r in page + rest] == [r["action"] for r in newest]
        assert len(audit.search(conn, audit.Filter(limit=2), peek=True)) == 3
        shown = audit.as_json(newest[-1])
        assert shown["at"] == "2026-11-01T09:00:00+00:00" and shown["actor"] == "cli"


def test_a_row_rolls_back_with_its_change(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.record(conn, "org.update", actor="cli")
        raise RuntimeError("the change failed")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(auditrecord)).scalar_one() == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"actor": "admin"},
        {"actor": "user:42"},
        {"actor": "user:dana@contoso.test"},
        {"action": "User Create"},
        {"action": ""},
        {"subject": "x" * 201},
    ],
)
def test_bad_rows_are_refused(engine: Engine, bad: dict[str, str]) -> None:
    args = {"action": "user.create", "actor": "cli", "subject": None} | bad
    with engine.begin() as conn, pytest.raises(InputError):
        audit.record(conn, args["action"], actor=args["actor"], subject=args["subject"])


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": 0},
        {"limit": 1001},
        {"actor": "root"},
        {"action": "DROP TABLE"},
        {"since": T0 + timedelta(1), "until": T0},
        {"since": datetime(2026, 1, 1)},  # no zone
        {"before": 0},
    ],
)
def test_bad_filters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InputError):
        audit.Filter(**bad)  # type: ignore[arg-type]


def test_the_table_refuses_update_and_delete(engine: Engine) -> None:
    with engine.begin() as conn:
        audit.record(conn, "org.update", actor="cli", details={"name": "x"})
    statements = [
        update(auditrecord).values(actor="system"),
        delete(auditrecord),
    ]
    if engine.dialect.name == "postgresql":
        statements.append(text("TRUNCATE auditrecord"))
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        row = conn.execute(select(auditrecord)).mappings().one()
        assert row["actor"] == "cli" and row["details"] == {"name": "x"}


def test_user_changes_are_audited_with_their_actor(engine: Engine) -> None:
    with engine.begin() as conn:
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        actor = audit.user_actor(admin)
        rep = users.add(conn, "Rep", "rep@northwind.test", actor=actor, default_opt_in=True)
        users.set_optin(conn, rep, False, actor=actor)
        users.set_optin(conn, rep, False, actor=actor)  # no change: no row
        key = users.create_api_key(conn, rep, "outlook", actor=actor)
        users.revoke_api_keys(conn, [users.key_prefix(key)], actor=actor)
        users.revoke_api_keys(conn, [users.key_prefix(key)], actor=actor)  # already: none
        users.create_api_key(conn, rep, actor=actor)
        users.revoke_all_api_keys(conn, rep, actor=actor)
        users.set_disabled(conn, rep, True, by=admin, actor=actor)
        users.set_disabled(conn, rep, False, by=admin, actor=actor)
        roles.set_role(conn, rep, "admin", by=admin, actor=actor)
        users.set_org(conn, monitoring=False, actor=actor)
        users.set_org(conn, monitoring=False, actor=actor)  # no change: no row
        users.add(conn, "Quiet", "quiet@northwind.test")  # no actor: seeding, not audited
    with engine.connect() as conn:
        rows = list(reversed(audit.search(conn, audit.Filter())))
    assert [r["action"] for r in rows] == [
        "user.create",
        "user.optin",
        "apikey.create",
        "apikey.revoke",
        "apikey.create",
        "apikey.revoke",
        "user.disable",
        "user.enable",
        "user.role",
        "org.update",
    ]
    assert {r["actor"] for r in rows} == {actor}
    assert rows[0]["subject"] == str(rep)
    assert rows[0]["details"] == {
        "role": "rep",
        "opt_in": True,
        "opt_in_from": "default_user_optin",
    }
    assert rows[1]["details"] == {"opt_in": False}
    assert rows[3]["details"] == {"prefix": users.key_prefix(key)}
    assert rows[8]["details"] == {"from": "rep", "to": "admin"}
    assert rows[9]["details"] == {"isemailmonitoringallowed": {"from": True, "to": False}}
    assert all("@" not in str(r["subject"]) + str(r["details"]) for r in rows)


def test_roles_never_leave_no_admin(engine: Engine) -> None:
    with engine.begin() as conn:
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        other = add_rep(conn, "other@northwind.test", role="admin")
        with pytest.raises(InputError, match="role must be"):
            roles.set_role(conn, other, "owner")
        with pytest.raises(InputError, match="your own"):
            roles.set_role(conn, admin, "rep", by=admin)
        roles.set_role(conn, other, "rep", by=admin)
        with pytest.raises(InputError, match="last enabled admin"):
            roles.set_role(conn, admin, "rep", by=other)
        assert users.by_id(conn, admin)["accessrole"] == "admin"  # type: ignore[index]


def test_new_users_take_the_default_opt_in_unless_told(engine: Engine) -> None:
    with engine.begin() as conn:
        on = users.add(conn, "A", "a@northwind.test", default_opt_in=True)
        told = users.add(conn, "B", "b@northwind.test", opt_in=False, default_opt_in=True)
        off = users.add(conn, "C", "c@northwind.test")
        got = {u: users.by_id(conn, u)["emailengagementoptin"] for u in (on, told, off)}  # type: ignore[index]
    assert got == {on: True, told: False, off: False}
