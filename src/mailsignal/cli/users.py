"""`users` (reps and admins), `org` (the tracking switch) and `keys` (the signing keyring)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..settings import rotate_secret
from ..store import users as store_users
from . import common
from .common import out

users_app = typer.Typer(no_args_is_help=True, help="Reps and admins (systemuser).")
org_app = typer.Typer(no_args_is_help=True, help="The organization and its tracking switch.")
keys_app = typer.Typer(no_args_is_help=True, help="The token signing keyring.")


@users_app.command("add")
def users_add(
    address: Annotated[str, typer.Argument(help="The user's email address.")],
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    role: Annotated[str, typer.Option(help="rep or admin.")] = "rep",
    opt_in: Annotated[
        bool, typer.Option("--opt-in/--no-opt-in", help="Personal email-engagement opt-in.")
    ] = False,
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
            timezone=timezone,
        )
        api_key = store_users.create_api_key(conn, user_id, "cli") if key else None
    out.print(f"added {role} {address} ({user_id}), opt-in {'on' if opt_in else 'off'}")
    if api_key:
        out.print(f"API key (shown once): {api_key}")


@users_app.command("list")
def users_list() -> None:
    """List users with role and opt-in."""
    settings = common.settings()
    with common.engine(settings).connect() as conn:
        rows = store_users.list_all(conn)
    table = Table("address", "name", "role", "opt-in", "id")
    for r in rows:
        table.add_row(
            r["internalemailaddress"],
            r["fullname"],
            r["accessrole"],
            "yes" if r["emailengagementoptin"] else "no",
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
        store_users.set_optin(conn, user["systemuserid"], not off)
    out.print(f"{address}: opt-in {'off' if off else 'on'}")


@users_app.command("key")
def users_key(address: str, name: Annotated[str, typer.Option(help="Label.")] = "cli") -> None:
    """Create an API key for a user and print it once (only its hash is stored)."""
    settings = common.settings()
    with common.engine(settings).begin() as conn:
        key = store_users.create_api_key(
            conn, common.require_user(conn, address)["systemuserid"], name
        )
    out.print(key)


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
        org = store_users.set_org(conn, monitoring=tracking, name=name)
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
