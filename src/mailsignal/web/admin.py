"""Admin REST (`/api/v1/users`, `/api/v1/audit`): list and create users, change a role,
disable or enable one, create, list and revoke a user's API keys, read the audit trail.
The same operations as `mailsignal users ...` and `mailsignal audit list` for an admin
who has no shell on the server; a rep gets 403. Every change is audited with the actor
"user:<the admin's systemuserid>" in the transaction that makes it (store/audit.py).

Disabling takes effect at once: every request, relay AUTH and relay transaction reads
the user's state (store/users.py), so there is nothing to flush. An admin cannot
disable themselves or the last enabled admin, so the API never locks everyone out.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from ..errors import ForbiddenError, InputError, NotFoundError
from ..store import audit, roles, users
from ..store.db import writing
from .api import current_user


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def admin_user(request: Request) -> dict[str, Any]:
    """The caller, who must be an enabled admin (401 without a good key, 403 for a rep)."""
    user = current_user(request)
    if user["accessrole"] != "admin":
        raise ForbiddenError("only an admin may manage users and keys")
    return user


Admin = Annotated[dict[str, Any], Depends(admin_user)]
users_router = APIRouter(prefix="/api/v1/users", tags=["admin"])
audit_router = APIRouter(prefix="/api/v1/audit", tags=["admin"])


def _actor(admin: dict[str, Any]) -> str:
    return audit.user_actor(admin["systemuserid"])


class KeyIn(BaseModel):
    """A new API key's label."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="api", max_length=100, description="A label, e.g. 'outlook'.")


class UserIn(BaseModel):
    """A new user. Without `emailengagementoptin` the `default_user_optin` setting applies."""

    model_config = ConfigDict(extra="forbid")

    internalemailaddress: str = Field(min_length=3, max_length=320)
    fullname: str = Field(default="", max_length=200)
    accessrole: Literal["rep", "admin"] = "rep"
    emailengagementoptin: bool | None = None
    timezonename: str = Field(default="UTC", max_length=64)


class RoleIn(BaseModel):
    """A user's new role."""

    model_config = ConfigDict(extra="forbid")

    accessrole: Literal["rep", "admin"]


def _user_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "systemuserid": str(row["systemuserid"]),
        "internalemailaddress": row["internalemailaddress"],
        "fullname": row["fullname"],
        "accessrole": row["accessrole"],
        "isdisabled": bool(row["isdisabled"]),
        "emailengagementoptin": bool(row["emailengagementoptin"]),
        "timezonename": row["timezonename"],
    }


def _require(request: Request, user_id: uuid.UUID) -> dict[str, Any]:
    with _engine(request).connect() as conn:
        user = users.by_id(conn, user_id)
    if user is None:
        raise NotFoundError(f"systemuser With Id = {user_id} Does Not Exist")
    return user


@users_router.get("")
def list_users(request: Request, admin: Admin) -> dict[str, Any]:
    """Every rep and admin, with role, opt-in and whether they are disabled."""
    with _engine(request).connect() as conn:
        return {"value": [_user_out(r) for r in users.list_all(conn)]}


@users_router.post("", status_code=201)
def create_user(request: Request, admin: Admin, body: UserIn) -> dict[str, Any]:
    """Create a rep or admin; the opt-in is the body's, else `default_user_optin`."""
    try:
        ZoneInfo(body.timezonename)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {body.timezonename!r}: use an IANA name") from exc
    if "@" not in body.internalemailaddress:
        raise InputError("internalemailaddress must be an email address")
    settings = request.app.state.settings
    with _engine(request).begin() as conn:
        user_id = users.add(
            conn,
            body.fullname or body.internalemailaddress.split("@")[0],
            body.internalemailaddress,
            role=body.accessrole,
            opt_in=body.emailengagementoptin,
            default_opt_in=settings.default_user_optin,
            timezone=body.timezonename,
            actor=_actor(admin),
        )
        user = users.by_id(conn, user_id)
    assert user is not None
    return _user_out(user)


@users_router.post("/{systemuserid}/role")
def set_role(
    systemuserid: uuid.UUID, request: Request, admin: Admin, body: RoleIn
) -> dict[str, Any]:
    """Make a user a rep or an admin. Not yourself down, not the last enabled admin."""
    with writing(_engine(request)) as conn:
        user = roles.set_role(
            conn, systemuserid, body.accessrole, by=admin["systemuserid"], actor=_actor(admin)
        )
    return _user_out(user)


def _set_disabled(
    request: Request, admin: dict[str, Any], user_id: uuid.UUID, off: bool
) -> dict[str, Any]:
    with writing(_engine(request)) as conn:
        user = users.set_disabled(conn, user_id, off, by=admin["systemuserid"], actor=_actor(admin))
    return _user_out(user)


@users_router.post("/{systemuserid}/disable")
def disable_user(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """Disable a user: their API keys, relay logins and relay sessions stop working at
    once (their keys stay, revoked only if you revoke them). Not yourself, not the last
    enabled admin."""
    return _set_disabled(request, admin, systemuserid, True)


@users_router.post("/{systemuserid}/enable")
def enable_user(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """Enable a disabled user again; their keys that were not revoked work again."""
    return _set_disabled(request, admin, systemuserid, False)


@users_router.get("/{systemuserid}/keys")
def list_keys(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """A user's API keys: prefix, name, created, last used (to within five minutes),
    revoked. Never the key itself: only its hash is stored."""
    _require(request, systemuserid)
    with _engine(request).connect() as conn:
        return {"value": users.list_api_keys(conn, systemuserid)}


@users_router.post("/{systemuserid}/keys", status_code=201)
def create_key(
    systemuserid: uuid.UUID, request: Request, admin: Admin, body: KeyIn | None = None
) -> dict[str, Any]:
    """Create an API key for a user; the answer holds it, the only time it is shown."""
    _require(request, systemuserid)
    name = (body or KeyIn()).name
    with _engine(request).begin() as conn:
        key = users.create_api_key(conn, systemuserid, name, actor=_actor(admin))
    return {"prefix": users.key_prefix(key), "name": name, "key": key}


@users_router.delete("/{systemuserid}/keys", status_code=200)
def revoke_all_keys(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, int]:
    """Revoke every live key of a user; answers how many were revoked."""
    _require(request, systemuserid)
    with _engine(request).begin() as conn:
        return {"revoked": users.revoke_all_api_keys(conn, systemuserid, actor=_actor(admin))}


@users_router.delete("/{systemuserid}/keys/{prefix}", status_code=204)
def revoke_key(systemuserid: uuid.UUID, prefix: str, request: Request, admin: Admin) -> Response:
    """Revoke one key by its prefix; it stops working at once. Revoking a revoked key
    again is not an error."""
    with _engine(request).begin() as conn:
        if users.api_key_owner(conn, prefix) != systemuserid:
            raise NotFoundError(f"apikey {prefix} of systemuser {systemuserid} Does Not Exist")
        users.revoke_api_keys(conn, [prefix], user_id=systemuserid, actor=_actor(admin))
    return Response(status_code=204)


@audit_router.get("")
def list_audit(
    request: Request,
    admin: Admin,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = audit.DEFAULT_LIMIT,
    before: int | None = None,
) -> dict[str, Any]:
    """The audit trail, newest first, filtered; `next` continues below the last row."""
    where = audit.Filter(
        action=action,
        actor=actor,
        since=audit.parse_moment(since, "since"),
        until=audit.parse_moment(until, "until"),
        limit=limit,
        before=before,
    )
    with _engine(request).connect() as conn:
        rows = audit.search(conn, where, peek=True)
    more = len(rows) > where.limit
    rows = rows[: where.limit]
    return {
        "value": [audit.as_json(r) for r in rows],
        "next": rows[-1]["auditid"] if more else None,
    }


# app.py mounts this one router: the users' routes and the audit trail's.
router = APIRouter()
router.include_router(users_router)
router.include_router(audit_router)
