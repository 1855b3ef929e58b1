"""Admin REST (`/api/v1/users`): list users, disable or enable one, create, list and
revoke a user's API keys. The same operations as `mailsignal users ...` for an admin
who has no shell on the server; a rep gets 403.

Disabling takes effect at once: every request, relay AUTH and relay transaction reads
the user's state (store/users.py), so there is nothing to flush. An admin cannot
disable themselves or the last enabled admin, so the API never locks everyone out.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from ..errors import ForbiddenError, NotFoundError
from ..store import users
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
router = APIRouter(prefix="/api/v1/users", tags=["admin"])


class KeyIn(BaseModel):
    """A new API key's label."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="api", max_length=100, description="A label, e.g. 'outlook'.")


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


@router.get("")
def list_users(request: Request, admin: Admin) -> dict[str, Any]:
    """Every rep and admin, with role, opt-in and whether they are disabled."""
    with _engine(request).connect() as conn:
        return {"value": [_user_out(r) for r in users.list_all(conn)]}


def _set_disabled(
    request: Request, admin: dict[str, Any], user_id: uuid.UUID, off: bool
) -> dict[str, Any]:
    with writing(_engine(request)) as conn:
        user = users.set_disabled(conn, user_id, off, by=admin["systemuserid"])
    return _user_out(user)


@router.post("/{systemuserid}/disable")
def disable_user(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """Disable a user: their API keys, relay logins and relay sessions stop working at
    once (their keys stay, revoked only if you revoke them). Not yourself, not the last
    enabled admin."""
    return _set_disabled(request, admin, systemuserid, True)


@router.post("/{systemuserid}/enable")
def enable_user(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """Enable a disabled user again; their keys that were not revoked work again."""
    return _set_disabled(request, admin, systemuserid, False)


@router.get("/{systemuserid}/keys")
def list_keys(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, Any]:
    """A user's API keys: prefix, name, created, last used (to within five minutes),
    revoked. Never the key itself: only its hash is stored."""
    _require(request, systemuserid)
    with _engine(request).connect() as conn:
        return {"value": users.list_api_keys(conn, systemuserid)}


@router.post("/{systemuserid}/keys", status_code=201)
def create_key(
    systemuserid: uuid.UUID, request: Request, admin: Admin, body: KeyIn | None = None
) -> dict[str, Any]:
    """Create an API key for a user; the answer holds it, the only time it is shown."""
    _require(request, systemuserid)
    name = (body or KeyIn()).name
    with _engine(request).begin() as conn:
        key = users.create_api_key(conn, systemuserid, name)
    return {"prefix": users.key_prefix(key), "name": name, "key": key}


@router.delete("/{systemuserid}/keys", status_code=200)
def revoke_all_keys(systemuserid: uuid.UUID, request: Request, admin: Admin) -> dict[str, int]:
    """Revoke every live key of a user; answers how many were revoked."""
    _require(request, systemuserid)
    with _engine(request).begin() as conn:
        return {"revoked": users.revoke_all_api_keys(conn, systemuserid)}


@router.delete("/{systemuserid}/keys/{prefix}", status_code=204)
def revoke_key(systemuserid: uuid.UUID, prefix: str, request: Request, admin: Admin) -> Response:
    """Revoke one key by its prefix; it stops working at once. Revoking a revoked key
    again is not an error."""
    with _engine(request).begin() as conn:
        if users.api_key_owner(conn, prefix) != systemuserid:
            raise NotFoundError(f"apikey {prefix} of systemuser {systemuserid} Does Not Exist")
        users.revoke_api_keys(conn, [prefix], user_id=systemuserid)
    return Response(status_code=204)
