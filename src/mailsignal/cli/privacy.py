"""`privacy`: recipients' privacy (issue 13). This module holds the sub-app; each group of
commands adds its own to `privacy_app`.

    privacy optout ADDRESS    the address stops being tracked (as the recipient's link does)
    privacy optin ADDRESS     off the do-not-track list again
    privacy dropped           hits answered but not stored, per UTC day and reason
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from ..pipeline.donottrack import opt_in, opt_out
from ..store import donottrack
from ..store.db import writing
from . import common
from .common import out

privacy_app = typer.Typer(no_args_is_help=True, help="Recipients' privacy: do-not-track.")


@privacy_app.command("optout")
def optout(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
) -> None:
    """Stop tracking ADDRESS: on the do-not-track list (by keyed hash), followemail false on
    its contacts and leads; hits on mail already sent are no longer stored."""
    settings = common.settings()
    engine = common.engine(settings)
    with writing(engine) as conn:
        done = opt_out(conn, common.signer(settings), address, settings, source="cli", actor="cli")
    state = "added to" if done.new else "already on"
    out.print(f"{address.strip().lower()} {state} the do-not-track list")
    out.print(f"contacts and leads set to followemail=false: {done.parties}")
    if settings.erase_events_on_optout:
        out.print(f"past events deleted: {done.erased}")


@privacy_app.command("optin")
def optin(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
) -> None:
    """Track ADDRESS again: off the do-not-track list, followemail true on its contacts
    and leads. Only on the recipient's own request."""
    settings = common.settings()
    engine = common.engine(settings)
    with writing(engine) as conn:
        removed, parties = opt_in(conn, common.signer(settings), address, actor="cli")
    state = "removed from" if removed else "was not on"
    out.print(f"{address.strip().lower()} {state} the do-not-track list")
    out.print(f"contacts and leads set to followemail=true: {parties}")


@privacy_app.command("dropped")
def dropped(
    days: Annotated[int, typer.Option(help="Days back, today included.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Hits the tracker answered but ingest did not store (do-not-track, org switch off),
    per UTC day and reason."""
    if days < 1:
        raise InputError("--days must be at least 1")
    settings = common.settings()
    engine = common.engine(settings)
    since = datetime.now(UTC) - timedelta(days=days - 1)
    with engine.connect() as conn:
        rows = donottrack.dropped(conn, since)
    if as_json:
        out.print_json(json.dumps([{"day": d, "reason": r, "hits": n} for d, r, n in rows]))
        return
    table = Table("day", "reason", "hits")
    for day, reason, hits in rows:
        table.add_row(day, reason, str(hits))
    out.print(table)
