"""The admin page (issue 12): users (opt-in, disable/enable, API keys), the org tracking
switch, the opt-in gap, the scanner-noise report, teams, the bundled data lists, the
outbound queue and the reps' mailboxes. Admins only (`base.admin`: a rep gets 403).

Every form is a POST that carries the session's CSRF token, checked before anything
changes; the answer is the page again with what happened (or why it was refused) on
top. A new API key is shown in that answer only: the store keeps its hash. Every change
is audited with the actor "user:<the admin's systemuserid>" (store/audit.py) in the
transaction that makes it.

The opt-in gap is store/optin.py's, as `mailsignal users gaps` reports it: emails sent
in the last `GAP_DAYS` days untracked because their sender had not opted in (not mail
untracked for other reasons, such as the org switch or a recipient's do-not-track).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from ...enrich.network import read_manifest
from ...errors import InputError, MailSignalError, NotFoundError
from ...store import audit, mailboxes, optin, reports, teams, users
from ...store.db import writing
from . import base

router = APIRouter(include_in_schema=False)
Admin = Annotated[base.Viewer, Depends(base.admin)]
MAX_USERS = 500  # rows of the users table (an org's staff, not its contacts)
NOISE_DAYS = 30
NOISE_ROWS = 100
GAP_DAYS = 30


def _id(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFoundError(f"no {what} with id {text[:60]!r}") from None


def _opt_in_gap(conn: Connection, now: datetime) -> list[Any]:
    """(user, emails sent untracked for want of the opt-in in the last GAP_DAYS days) for
    every user without the opt-in, most untracked first."""
    return [
        (user, user["untracked"]) for user in optin.gaps(conn, now - timedelta(days=GAP_DAYS), now)
    ]


def _actor(who: base.Viewer) -> str:
    return audit.user_actor(who.user_id)


def _data_lists(data_dir: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "labels": ", ".join(spec.labels),
            "date": spec.date,
            "licence": spec.licence,
            "source": spec.source,
            "refreshed": (data_dir / "net" / f"{name}.txt").is_file(),
        }
        for name, spec in read_manifest().items()
    ]


def _outbound(data_dir: Path) -> dict[str, int]:
    """How many messages wait in the relay's outbound spool (mail/outbound.py's layout:
    `<id>.json` ready, `<id>.pending` being committed, `failed/<id>.json` set aside)."""
    root = data_dir / "outbound"
    if not root.is_dir():
        return {"ready": 0, "pending": 0, "failed": 0}
    return {
        "ready": sum(1 for _ in root.glob("*.json")),
        "pending": sum(1 for _ in root.glob("*.pending")),
        "failed": sum(1 for _ in (root / "failed").glob("*.json")),
    }


def _gather(request: Request, who: base.Viewer) -> dict[str, Any]:
    """Everything the page shows, read in one transaction."""
    settings = request.app.state.settings
    with base.engine(request).begin() as conn:  # get_org creates the row on first use
        people = users.list_all(conn)
        shown = people[:MAX_USERS]
        keys = {u["systemuserid"]: users.list_api_keys(conn, u["systemuserid"]) for u in shown}
        now = datetime.now(UTC)
        since = now - timedelta(days=NOISE_DAYS)
        return {
            "people": shown,
            "more_people": len(people) - len(shown),
            "keys": keys,
            "last_use": {
                uid: max((k["lastusedon"] for k in found if k["lastusedon"]), default=None)
                for uid, found in keys.items()
            },
            "org": users.get_org(conn),
            "gap": _opt_in_gap(conn, now),
            "gap_days": GAP_DAYS,
            "noise": reports.noise_report(conn, since, limit=NOISE_ROWS),
            "noise_days": NOISE_DAYS,
            "teams": teams.listing(conn),
            "lists": _data_lists(settings.data_dir),
            "outbound": _outbound(settings.data_dir),
            "mailboxes": [mailboxes.show(conn, uid) for uid in mailboxes.owners(conn)],
        }


async def _page(
    request: Request,
    who: base.Viewer,
    status: int = 200,
    *,
    message: str | None = None,
    error: str | None = None,
    new_key: dict[str, str] | None = None,
) -> HTMLResponse:
    data = await anyio.to_thread.run_sync(_gather, request, who)
    return base.render(
        request, "admin.html", who, status, message=message, error=error, new_key=new_key, **data
    )


async def _act(
    request: Request, who: base.Viewer, change: Callable[[Connection, Any], str]
) -> HTMLResponse:
    """Check the form's CSRF token, then `change(conn, form)` in one writing transaction;
    the page again with its message, or with the refusal (InputError, NotFoundError)."""
    form = await request.form()
    base.check_csrf(who.csrf, form)

    def run() -> str:
        with writing(base.engine(request)) as conn:
            return change(conn, form)

    try:
        message = await anyio.to_thread.run_sync(run)
    except MailSignalError as exc:
        return await _page(request, who, exc.http_status, error=exc.message)
    return await _page(request, who, message=message)


def _user(conn: Connection, user_id: str) -> dict[str, Any]:
    found = users.by_id(conn, _id(user_id, "user"))
    if found is None:
        raise NotFoundError(f"no user with id {user_id}")
    return found


def _by_address(conn: Connection, address: str) -> dict[str, Any]:
    found = users.by_address(conn, address.strip()) if address.strip() else None
    if found is None:
        raise NotFoundError(f"no user {address.strip()!r}: add them with `mailsignal users add`")
    return found


@router.get("/admin")
async def admin_page(request: Request, who: Admin) -> HTMLResponse:
    """The admin page."""
    return await _page(request, who)


@router.post("/admin/users/{user_id}/disable")
async def disable(user_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Disable a user (never oneself, never the last enabled admin)."""

    def change(conn: Connection, form: Any) -> str:
        user = users.set_disabled(
            conn, _user(conn, user_id)["systemuserid"], True, by=who.user_id, actor=_actor(who)
        )
        return f"{user['internalemailaddress']} is disabled: their keys and sessions stop working."

    return await _act(request, who, change)


@router.post("/admin/users/{user_id}/enable")
async def enable(user_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Enable a disabled user again."""

    def change(conn: Connection, form: Any) -> str:
        user = users.set_disabled(
            conn, _user(conn, user_id)["systemuserid"], False, by=who.user_id, actor=_actor(who)
        )
        return f"{user['internalemailaddress']} is enabled again."

    return await _act(request, who, change)


@router.post("/admin/users/{user_id}/keys")
async def create_key(user_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Create an API key and show it, this once."""
    form = await request.form()
    base.check_csrf(who.csrf, form)
    name = str(form.get("name") or "panel").strip()[:100] or "panel"

    def run() -> dict[str, str]:
        with base.engine(request).begin() as conn:
            user = _user(conn, user_id)
            key = users.create_api_key(conn, user["systemuserid"], name, actor=_actor(who))
        return {"address": user["internalemailaddress"], "name": name, "key": key}

    try:
        new_key = await anyio.to_thread.run_sync(run)
    except MailSignalError as exc:
        return await _page(request, who, exc.http_status, error=exc.message)
    return await _page(request, who, new_key=new_key)


@router.post("/admin/users/{user_id}/keys/revoke")
async def revoke_key(user_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Revoke one of a user's keys by its prefix."""

    def change(conn: Connection, form: Any) -> str:
        user = _user(conn, user_id)
        prefix = str(form.get("prefix") or "")[:64]
        if users.api_key_owner(conn, prefix) != user["systemuserid"]:
            raise NotFoundError(f"{user['internalemailaddress']} has no key {prefix!r}")
        users.revoke_api_keys(conn, [prefix], user_id=user["systemuserid"], actor=_actor(who))
        return f"Key {prefix} of {user['internalemailaddress']} is revoked; it stops working now."

    return await _act(request, who, change)


@router.post("/admin/org")
async def org_switch(request: Request, who: Admin) -> HTMLResponse:
    """Turn tracking on or off for the whole organization."""

    def change(conn: Connection, form: Any) -> str:
        wanted = str(form.get("monitoring") or "")
        if wanted not in ("on", "off"):
            raise InputError("choose on or off")
        users.set_org(conn, monitoring=wanted == "on", actor=_actor(who))
        if wanted == "on":
            return "Tracking is on for the organization (for users who opted in)."
        return "Tracking is off: new mail is sent without tracking."

    return await _act(request, who, change)


@router.post("/admin/teams")
async def add_team(request: Request, who: Admin) -> HTMLResponse:
    """Create a team, with a manager when one is given."""

    def change(conn: Connection, form: Any) -> str:
        name, manager = str(form.get("name") or ""), str(form.get("manager") or "")
        manager_id = _by_address(conn, manager)["systemuserid"] if manager.strip() else None
        team_id = teams.add(conn, name, manager_id)
        audit.record(
            conn,
            "team.create",
            actor=_actor(who),
            subject=str(team_id),
            details={"manager": str(manager_id) if manager_id else None},
        )
        return f"Team {name.strip()!r} is created."

    return await _act(request, who, change)


@router.post("/admin/teams/{team_id}/manager")
async def team_manager(team_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Set (or, given no address, clear) a team's manager."""

    def change(conn: Connection, form: Any) -> str:
        found = teams.get(conn, _id(team_id, "team"))
        address = str(form.get("manager") or "")
        manager = _by_address(conn, address) if address.strip() else None
        manager_id = manager["systemuserid"] if manager else None
        teams.set_manager(conn, found["teamid"], manager_id)
        audit.record(
            conn,
            "team.manager",
            actor=_actor(who),
            subject=str(found["teamid"]),
            details={"manager": str(manager_id) if manager_id else None},
        )
        if manager is None:
            return f"Team {found['name']!r} has no manager now."
        return f"{manager['internalemailaddress']} manages {found['name']!r}."

    return await _act(request, who, change)


@router.post("/admin/teams/{team_id}/members")
async def team_members(team_id: str, request: Request, who: Admin) -> HTMLResponse:
    """Add a member to a team, or remove one (`action` add or remove)."""

    def change(conn: Connection, form: Any) -> str:
        found = teams.get(conn, _id(team_id, "team"))
        user = _by_address(conn, str(form.get("address") or ""))
        address, name = user["internalemailaddress"], found["name"]
        member = {"member": str(user["systemuserid"])}
        subject = str(found["teamid"])
        if str(form.get("action") or "add") == "remove":
            if teams.remove_member(conn, found["teamid"], user["systemuserid"]):
                audit.record(
                    conn, "team.member_remove", actor=_actor(who), subject=subject, details=member
                )
                return f"{address} left {name!r}."
            return f"{address} was not a member of {name!r}."
        if teams.add_member(conn, found["teamid"], user["systemuserid"]):
            audit.record(
                conn, "team.member_add", actor=_actor(who), subject=subject, details=member
            )
            return f"{address} joined {name!r}."
        return f"{address} was already a member of {name!r}."

    return await _act(request, who, change)
