"""`teams`: teams of reps with a manager, who reads the members' mail (issue 12). Each
change is audited with the actor "cli" (store/audit.py) in its transaction."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..store import audit
from ..store import teams as store_teams
from ..store.db import writing
from . import common
from .common import out

teams_app = typer.Typer(
    no_args_is_help=True, help="Teams: a manager reads the mail of the team's members."
)
member_app = typer.Typer(no_args_is_help=True, help="Add or remove a team's members.")
teams_app.add_typer(member_app, name="member")


@teams_app.command("add")
def teams_add(
    name: Annotated[str, typer.Argument(help="The team's name (unique).")],
    manager: Annotated[
        str | None, typer.Option(help="The manager's address (a MailSignal user).")
    ] = None,
) -> None:
    """Create a team, with a manager when given."""
    with writing(common.engine(common.settings())) as conn:
        manager_id = common.require_user(conn, manager)["systemuserid"] if manager else None
        team_id = store_teams.add(conn, name, manager_id)
        audit.record(
            conn,
            "team.create",
            actor="cli",
            subject=str(team_id),
            details={"manager": str(manager_id) if manager_id else None},
        )
    out.print(f"added team {name.strip()}" + (f", managed by {manager}" if manager else ""))


@teams_app.command("list")
def teams_list() -> None:
    """List the teams with their manager and members."""
    with common.engine(common.settings()).connect() as conn:
        found = store_teams.listing(conn)
    table = Table("team", "manager", "members")
    for team in found:
        table.add_row(team["name"], team["manager"] or "-", ", ".join(team["members"]) or "-")
    out.print(table)


@teams_app.command("manager")
def teams_manager(
    team: Annotated[str, typer.Argument(help="The team's name.")],
    address: Annotated[str, typer.Argument(help="The new manager's address.")],
) -> None:
    """Set a team's manager."""
    with writing(common.engine(common.settings())) as conn:
        found = store_teams.by_name(conn, team)
        user = common.require_user(conn, address)
        store_teams.set_manager(conn, found["teamid"], user["systemuserid"])
        audit.record(
            conn,
            "team.manager",
            actor="cli",
            subject=str(found["teamid"]),
            details={"manager": str(user["systemuserid"])},
        )
    out.print(f"{user['internalemailaddress']} manages {found['name']}")


@member_app.command("add")
def member_add(
    team: Annotated[str, typer.Argument(help="The team's name.")],
    address: Annotated[str, typer.Argument(help="The member's address.")],
) -> None:
    """Add a member to a team."""
    with writing(common.engine(common.settings())) as conn:
        found = store_teams.by_name(conn, team)
        user = common.require_user(conn, address)
        added = store_teams.add_member(conn, found["teamid"], user["systemuserid"])
        if added:
            audit.record(
                conn,
                "team.member_add",
                actor="cli",
                subject=str(found["teamid"]),
                details={"member": str(user["systemuserid"])},
            )
    who = user["internalemailaddress"]
    out.print(f"{who} {'joined' if added else 'was already a member of'} {found['name']}")


@member_app.command("remove")
def member_remove(
    team: Annotated[str, typer.Argument(help="The team's name.")],
    address: Annotated[str, typer.Argument(help="The member's address.")],
) -> None:
    """Remove a member from a team."""
    with writing(common.engine(common.settings())) as conn:
        found = store_teams.by_name(conn, team)
        user = common.require_user(conn, address)
        removed = store_teams.remove_member(conn, found["teamid"], user["systemuserid"])
        if removed:
            audit.record(
                conn,
                "team.member_remove",
                actor="cli",
                subject=str(found["teamid"]),
                details={"member": str(user["systemuserid"])},
            )
    who = user["internalemailaddress"]
    out.print(f"{who} {'left' if removed else 'was not a member of'} {found['name']}")
