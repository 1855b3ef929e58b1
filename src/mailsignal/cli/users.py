"""`users` (reps and admins, their API keys, disabling, roles, the opt-in gap), `org` (the
tracking switch) and `keys` (the signing keyring). Every change is audited with the actor
"cli" (store/audit.py), in the transaction that makes it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from .. import passwords
from ..errors import InputError, NotFoundError
from ..keyring import rotate_secret
from ..store import audit, optin, roles, sessions
from ..store import users as store_users
from ..store.db import writing
from . import common
from .common import out


class _KeyGroup(TyperGroup):
    """`users key EMAIL` creates a key, as it did before `key` had subcommands (scripts
    and docs use it): arguments that do not start with a subcommand go to `create`."""

    # `Any`: the context's class lives in typer's private copy of click.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["create", *args]
        return super().parse_args(ctx, args)


users_app = typer.Typer(no_args_is_help=True, help="Reps and admins (systemuser).")
key_app = typer.Typer(
    cls=_KeyGroup,
    no_args_is_help=True,
    help="A user's API keys: create (the default: `users key EMAIL`), list, revoke.",
)
users_app.add_typer(key_app, name="key")
org_app = typer.Typer(no_args_is_help=True, help="The organization and its tracking switch.")
keys_app = typer.Typer(no_args_is_help=True, help="The token signing keyring.")


@users_app.command("add")
def users_add(
    address: Annotated[str, typer.Argument(help="The user's email address.")],
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    role: Annotated[str, typer.Option(help="rep or admin.")] = "rep",
    opt_in: Annotated[
        bool | None,
        typer.Option(
            "--opt-in/--no-opt-in",
            help="Personal email-engagement opt-in; default: the default_user_optin setting.",
        ),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")] = "UTC",
    key: Annotated[bool, typer.Option(help="Also create and print an API key.")] = False,
) -> None:
    """Add a rep or admin (systemuser with usersettings)."""
    common.check_zone(timezone)
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        user_id = store_users.add(
            conn,
            name or address.split("@")[0],
            address,
            role=role,
            opt_in=opt_in,
            default_opt_in=settings.default_user_optin,
            timezone=timezone,
            actor="cli",
        )
        api_key = store_users.create_api_key(conn, user_id, "cli", actor="cli") if key else None
        opted = store_users.by_id(conn, user_id)
    on = bool(opted and opted["emailengagementoptin"])
    out.print(f"added {role} {address} ({user_id}), opt-in {'on' if on else 'off'}")
    if api_key:
        out.print(f"API key (shown once): {api_key}")


@users_app.command("list")
def users_list() -> None:
    """List users with role, opt-in and whether they are disabled."""
    settings = common.settings()
    with common.engine(settings).connect() as conn:
        rows = store_users.list_all(conn)
    table = Table("address", "name", "role", "opt-in", "status", "id")
    for r in rows:
        table.add_row(
            r["internalemailaddress"],
            r["fullname"],
            r["accessrole"],
            "yes" if r["emailengagementoptin"] else "no",
            "disabled" if r["isdisabled"] else "enabled",
            str(r["systemuserid"]),
        )
    out.print(table)


@users_app.command("opt-in")
def users_opt_in(
    address: str,
    off: Annotated[bool, typer.Option("--off", help="Opt the user out instead.")] = False,
) -> None:
    """Set a user's personal email-engagement opt-in."""
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        user = common.require_user(conn, address)
        store_users.set_optin(conn, user["systemuserid"], not off, actor="cli")
    out.print(f"{address}: opt-in {'off' if off else 'on'}")


Address = Annotated[str, typer.Argument(help="The user's email address.")]


def _set_disabled(address: str, disabled: bool) -> None:
    settings = common.settings()
    with writing(common.engine(settings)) as conn:
        user = common.require_user(conn, address)
        store_users.set_disabled(conn, user["systemuserid"], disabled, actor="cli")


@users_app.command("disable")
def users_disable(address: Address) -> None:
    """Disable a user: their API keys, relay logins and sessions stop working at once.

    Their keys are kept (and work again on `users enable`); the last enabled admin
    cannot be disabled.
    """
    _set_disabled(address, True)
    out.print(f"{address}: disabled; their API keys and relay logins no longer work")


@users_app.command("enable")
def users_enable(address: Address) -> None:
    """Enable a disabled user again (their keys that were not revoked work again)."""
    _set_disabled(address, False)
    out.print(f"{address}: enabled")


@users_app.command("password")
def users_password(
    address: Address,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of stdin.")
    ] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the password: no panel sign-in.")
    ] = False,
) -> None:
    """Set the password a user signs in to the panel with (at least 12 characters);
    their open panel sessions end. Asked twice, hidden, unless --stdin."""
    hashed: str | None = None
    if not clear:
        if stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        hashed = passwords.make(password)
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        user = common.require_user(conn, address)
        sessions.set_password_hash(conn, user["systemuserid"], hashed)
        audit.record(
            conn,
            "user.password",
            actor="cli",
            subject=str(user["systemuserid"]),
            details={"set": hashed is not None},
        )
    out.print(f"{address}: password {'removed' if clear else 'set'}; their panel sessions ended")


@users_app.command("role")
def users_role(
    address: Address,
    role: Annotated[str, typer.Argument(help="rep or admin.")],
) -> None:
    """Make a user a rep or an admin (never the last enabled admin a rep)."""
    settings = common.settings()
    with writing(common.engine(settings)) as conn:
        user = common.require_user(conn, address)
        roles.set_role(conn, user["systemuserid"], role, actor="cli")
    out.print(f"{address}: {role}")


@users_app.command("gaps")
def users_gaps(
    days: Annotated[
        int, typer.Option(min=1, max=optin.MAX_DAYS, help="The window: this many days back.")
    ] = 30,
    until: Annotated[
        str | None,
        typer.Option(help="End of the window (ISO 8601, UTC if no zone); default now."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Users who have not opted in, with how many emails each sent untracked for that
    reason (the sender's opt-in) in the last DAYS days; emails, not recipients."""
    end = audit.parse_moment(until, "--until") or datetime.now(UTC)
    start = end - timedelta(days=days)
    with common.engine(common.settings()).connect() as conn:
        found = optin.gaps(conn, start, end)
    if as_json:
        doc = {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "users": [
                {
                    "systemuserid": str(p["systemuserid"]),
                    "address": p["internalemailaddress"],
                    "disabled": bool(p["isdisabled"]),
                    "untracked": p["untracked"],
                }
                for p in found
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if not found:
        out.print("every user has opted in")
        return
    table = Table("address", "status", f"untracked emails, last {days} days")
    for p in found:
        status = "disabled" if p["isdisabled"] else "enabled"
        table.add_row(p["internalemailaddress"], status, str(p["untracked"]))
    out.print(table)


@key_app.command("create")
def key_create(address: Address, name: Annotated[str, typer.Option(help="Label.")] = "cli") -> None:
    """Create an API key for a user and print it once (only its hash is stored).

    `mailsignal users key EMAIL` is short for this.
    """
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        key = store_users.create_api_key(
            conn, common.require_user(conn, address)["systemuserid"], name, actor="cli"
        )
    out.print(key)


def _when(moment: datetime | None, never: str = "-") -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else never


@key_app.command("list")
def key_list(address: Address) -> None:
    """List a user's API keys: prefix, name, created, last used, revoked.

    "Last used" is recorded to within five minutes. The keys themselves are not stored,
    so they are never shown.
    """
    settings = common.settings()
    with common.engine(settings).connect() as conn:
        keys = store_users.list_api_keys(conn, common.require_user(conn, address)["systemuserid"])
    table = Table("prefix", "name", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k["prefix"],
            k["name"],
            _when(k["createdon"]),
            _when(k["lastusedon"], "never"),
            _when(k["revokedon"]),
        )
    out.print(table if keys else f"{address} has no API keys")


@key_app.command("revoke")
def key_revoke(
    prefix: Annotated[
        str | None,
        typer.Argument(help="The key's prefix (as `users key list` shows it), or the whole key."),
    ] = None,
    all_of: Annotated[
        str | None,
        typer.Option("--all", metavar="EMAIL", help="Revoke every key of this user instead."),
    ] = None,
) -> None:
    """Revoke an API key, or all of a user's: it stops working at once.

    For the REST API, the Web API and relay logins alike, and for relay sessions that
    logged in with it before.
    """
    if (prefix is None) == (all_of is None):
        raise InputError("give a key prefix or --all EMAIL (one of them)")
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        if all_of is not None:
            count = store_users.revoke_all_api_keys(
                conn, common.require_user(conn, all_of)["systemuserid"], actor="cli"
            )
            out.print(f"{all_of}: revoked {count} key{'' if count == 1 else 's'}")
            return
        assert prefix is not None
        prefix = store_users.key_prefix(prefix) if prefix.startswith("msk_") else prefix
        if store_users.api_key_owner(conn, prefix) is None:
            raise NotFoundError(f"no API key with prefix {prefix}: see `users key list EMAIL`")
        revoked = store_users.revoke_api_keys(conn, [prefix], actor="cli")
    out.print(f"key {prefix}: {'revoked' if revoked else 'was already revoked'}")


@org_app.command("set")
def org_set(
    tracking: Annotated[
        bool | None,
        typer.Option(
            "--tracking/--no-tracking", help="The org-wide switch (isemailmonitoringallowed)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Organization name.")] = None,
) -> None:
    """Change the organization's name or its email-tracking switch."""
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        org = store_users.set_org(conn, monitoring=tracking, name=name, actor="cli")
    out.print(f"{org['name']}: tracking {'on' if org['isemailmonitoringallowed'] else 'off'}")


@org_app.command("show")
def org_show() -> None:
    """Show the organization and its tracking switch."""
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        org = store_users.get_org(conn)
    out.print(
        f"{org['name']} ({org['organizationid']}): tracking "
        f"{'on' if org['isemailmonitoringallowed'] else 'off'}"
    )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; old keys keep verifying links already sent."""
    kid = rotate_secret(common.settings().secret_file)
    out.print(f"new signing key id {kid}; restart the server to sign with it")
