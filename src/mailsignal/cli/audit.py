"""`audit list`: the append-only audit trail of admin and privacy actions (issue 13,
store/audit.py), newest first, filtered, as a table or JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from typing import Annotated

import typer
from rich.table import Table

from ..store import audit
from . import common
from .common import out

audit_app = typer.Typer(
    no_args_is_help=True, help="The audit trail of admin and privacy actions (append-only)."
)


@audit_app.command("list")
def audit_list(
    action: Annotated[
        str | None,
        typer.Option(help='Only this action (e.g. user.create), or a family ("user.*").'),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help='Only this actor: cli, recipient, system, user:<id>, or "user" (any).'),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time on (ISO 8601, UTC if no zone).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time (ISO 8601, UTC if no zone).")
    ] = None,
    limit: Annotated[
        int, typer.Option(help=f"Most rows shown, 1 to {audit.MAX_LIMIT}.")
    ] = audit.DEFAULT_LIMIT,
    before: Annotated[
        int | None, typer.Option(help="Only rows older than this audit id (the next page).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List the audit trail, newest first: when, action, actor, subject and details."""
    where = audit.Filter(
        action=action,
        actor=actor,
        since=audit.parse_moment(since, "--since"),
        until=audit.parse_moment(until, "--until"),
        limit=limit,
        before=before,
    )
    with common.engine(common.settings()).connect() as conn:
        rows = audit.search(conn, where)
    if as_json:
        sys.stdout.write(json.dumps({"value": [audit.as_json(r) for r in rows]}, indent=2) + "\n")
        return
    if not rows:
        out.print("no audit records match")
        return
    table = Table("id", "when (UTC)", "action", "actor", "subject", "details")
    for r in rows:
        table.add_row(
            str(r["auditid"]),
            f"{r['occurredon'].astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            r["action"],
            r["actor"],
            r["subject"] or "-",
            json.dumps(r["details"], sort_keys=True) if r["details"] else "-",
        )
    out.print(table)
