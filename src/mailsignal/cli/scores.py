"""`classify` (run the classifier again), `score` (recompute, explain) and `report noise`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError, NotFoundError
from . import common
from .common import out

report_app = typer.Typer(no_args_is_help=True, help="Reports.")


def classify(
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Rebuild every verdict from raw hits.")
    ] = False,
    sweep_now: Annotated[bool, typer.Option("--sweep", help="Apply time-based rules now.")] = False,
) -> None:
    """Re-run the classifier: everything (--recompute) or the periodic sweep (--sweep)."""
    from ..classify import VERSION, disabled_rules
    from ..pipeline.enrichment import default_enrichment
    from ..pipeline.sweep import deliveries_with_events, recompute_all, sweep

    settings = common.settings()
    disabled_rules(settings.disabled_rules)
    engine = common.engine(settings)
    if recompute == sweep_now:
        raise InputError("give exactly one of --recompute or --sweep")
    facts = default_enrichment(settings).facts
    if sweep_now:
        changed = sweep(engine, settings, datetime.now(UTC), facts)
        out.print(f"sweep: {changed} verdicts changed")
        return
    total = len(deliveries_with_events(engine))
    bar, task = common.progress_bar(total, f"classifier {VERSION}")
    with bar:
        revised, changed = recompute_all(engine, settings, lambda n: bar.advance(task, n), facts)
    out.print(
        f"recomputed {total} recipient timelines with classifier {VERSION}: "
        f"{changed} verdicts changed, {revised - changed} more events with new reasons"
    )


def score(
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Recompute every score and roll-up.")
    ] = False,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Show a contact/lead/account's score and its top events."),
    ] = None,
) -> None:
    """Lead scores: recompute them all, or explain one (by email address)."""
    from ..engagement import weights_of
    from ..store import parties, rescore

    settings = common.settings()
    engine = common.engine(settings)
    weights, now = weights_of(settings), datetime.now(UTC)
    if recompute == (explain is not None):
        raise InputError("give exactly one of --recompute or --explain ADDRESS")
    if explain is None:
        with engine.connect() as conn:
            total = parties.count(conn)
        bar, task = common.progress_bar(total, "scores")
        with bar:
            done = rescore.recompute_all(
                engine, weights, now, progress=lambda n: bar.advance(task, n)
            )
        out.print(f"recomputed {done} scores")
        return
    with engine.connect() as conn:
        party = parties.find(conn, explain)
        if party is None:
            raise NotFoundError(f"no contact, lead or account with address {explain}")
        points, top = rescore.explain(conn, (party[0], party[1]), weights, now)
    out.print(
        f"{party[0]} {explain}: score {points:.2f} (half-life "
        f"{settings.score_half_life_days:g} days)"
    )
    table = Table("points", "kind", "verdict", "when")
    for item in top:
        table.add_row(
            f"{item.points:.2f}", item.kind.name.lower(), str(item.verdict), str(item.at)[:19]
        )
    out.print(table)


@report_app.command("noise")
def report_noise(
    # A negative look-back is a future window; past a century the date underflows.
    days: Annotated[int, typer.Option(min=1, max=36500, help="Look back this many days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Emails flagged as scanner noise (raw opens above noise_open_threshold)."""
    from ..store.reports import noise_report

    settings = common.settings()
    with common.engine(settings).connect() as conn:
        rows = noise_report(conn, datetime.now(UTC) - timedelta(days=days))
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    table = Table("sent", "sender", "subject", "opens raw", "human", "machine", "top machine rules")
    table.add_column("activityid", no_wrap=True, min_width=36)
    for r in rows:
        table.add_row(
            str(r["senton"])[:16],
            r["sender"],
            (r["subject"] or "")[:40],
            str(r["opencount"]),
            str(r["humanopencount"]),
            str(r["machineopencount"]),
            ", ".join(r["top_rules"]),
            str(r["activityid"]),
        )
    out.print(table)
    out.print(f"{len(rows)} emails over {settings.noise_open_threshold} raw opens in {days} days")
